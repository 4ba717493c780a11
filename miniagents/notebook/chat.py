"""
Chat in a cell: the notebook twin of the console user agent.

`create_notebook_user_agent()` gives an agent that stands for the user: it shows the messages it receives
in a transcript as they stream, waits for what the user types in the widget's input box (Enter sends,
Shift+Enter inserts a new line), and replies with the whole chat history, so
`await adialog_loop(user_agent, assistant_agent)` is a working chat. `chat(assistant_agent)` shows the
widget and runs that loop in the background, so the cell returns at once. The stop button ends the loop
cleanly (and cancels a reply in progress when the loop was started by `chat()`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import traitlets

from miniagents.chat_history import ChatHistory, InMemoryChatHistory
from miniagents.ext.llm.llm_common import UserMessage
from miniagents.messages import MessagePromise
from miniagents.miniagents import InteractionContext, MiniAgent, MiniAgents
from miniagents.notebook import assets
from miniagents.notebook.live_widget import IdList, LiveWidget
from miniagents.notebook.message_record import ErrorRecord, MessageRecord, apieces
from miniagents.notebook.rendering import entry_html, static_html
from miniagents.notebook.run_scope import RunScope, attribute_calls_to_scopes, current_scope
from miniagents.utils import adialog_loop


class ChatStopped(Exception):
    """The user pressed the stop button of a notebook chat: the reply that ends the dialog loop."""


class ChatWidget(LiveWidget):
    """
    The transcript and input box of a notebook chat. `phase` is 'waiting' (for the user to type),
    'replying' (the other side is answering) or 'stopped'. What the user sends while the other side
    replies is kept, in order, for the next turns.
    """

    _esm = assets.widget_module("chat.js")
    phase = traitlets.Unicode("waiting").tag(sync=True)
    # names this chat in the page, where its views keep the user's draft when one view replaces another
    chat_id = traitlets.Unicode().tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(chat_id=uuid.uuid4().hex, **kwargs)
        self._transcript = IdList("order")
        self._inputs: deque[str] = deque()
        self._input_waiter: asyncio.Future[str] | None = None
        self.scope = RunScope("chat", background=True)  # (trees made in other cells leave its calls out)
        self.loop_task: asyncio.Task[None] | None = None
        self.user_agent: MiniAgent | None = None
        self._flush()

    # ------------------------------------------------------------ transcript

    def add_message(
        self, piece: MessagePromise | BaseException, sender: str | None = None
    ) -> MessageRecord | ErrorRecord:
        """
        Show a message (streamed live) or an error at the end of the transcript. `sender` heads a message
        whose metadata names no agent.
        """
        if isinstance(piece, MessagePromise):
            record: MessageRecord | ErrorRecord = self._record_for(piece, sender)[0]
        else:
            record = self._error_record(piece)
        self._transcript.ids.append(record.id)
        self._mark_changed(self._transcript)
        return record

    # ------------------------------------------------------------ input

    async def aread_user_input(self) -> str:
        """The next message the user sends. Raises ChatStopped once the stop button was pressed."""
        if self.phase == "stopped":
            raise ChatStopped("the user stopped the chat")
        if not self._inputs:  # (else the user typed ahead: no need to wait)
            self.set_phase("waiting")
            self._input_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._input_waiter
            finally:
                self._input_waiter = None
            self.set_phase("replying")
        return self._inputs.popleft()

    def send_user_input(self, text: str) -> None:
        """What the input box does on Enter: hand `text` to the waiting user agent (ignored if blank)."""
        if not text.strip() or self.phase == "stopped":
            return
        self._inputs.append(text)
        if self._input_waiter is not None and not self._input_waiter.done():
            self._input_waiter.set_result(text)

    def stop(self) -> None:
        """
        End the chat: the user agent replies ChatStopped (at once if it is waiting for the user, else on
        its next turn). When the dialog loop was started by `chat()`, the reply in progress is cancelled.
        """
        if self.phase == "stopped":
            return
        replying = self.phase == "replying"
        self.set_phase("stopped")
        if self._input_waiter is not None and not self._input_waiter.done():
            self._input_waiter.set_exception(ChatStopped("the user stopped the chat"))
        if replying:  # the user agent is spared: it shows the cut reply, then replies ChatStopped
            self.scope.cancel(spare=[self.user_agent] if self.user_agent is not None else [])

    def _on_custom_message(self, content: dict[str, Any]) -> None:
        if content.get("type") == "user-input":
            self.send_user_input(str(content.get("text", "")))
        elif content.get("type") == "stop":
            self.stop()

    def set_phase(self, phase: str) -> None:
        """Show `phase` ("waiting", "replying", "stopped"): the transcript so far is flushed first."""
        self._flush()  # the transcript first, so the page never shows the new phase before it
        self.phase = phase
        self._state_stale = True
        self._request_flush()

    # ------------------------------------------------------------ the loop

    def start_dialog(self, user_agent: MiniAgent, assistant_agent: MiniAgent) -> asyncio.Task[None]:
        """Run `adialog_loop(user_agent, assistant_agent)` in the background, in this chat's RunScope."""
        attribute_calls_to_scopes(MiniAgents.get_current())
        self.loop_task = asyncio.get_running_loop().create_task(self._adialog(user_agent, assistant_agent))
        return self.loop_task

    async def _adialog(self, user_agent: MiniAgent, assistant_agent: MiniAgent) -> None:
        current_scope.set(self.scope)  # this task's own context: the calls of the loop join the scope
        try:
            await adialog_loop(user_agent, assistant_agent)
        except ChatStopped:
            pass
        except asyncio.CancelledError:
            if self.phase != "stopped":
                raise  # this task was cancelled from outside
        except BaseException as exc:
            if self.phase != "stopped":  # (after a stop, the cancelled reply's error is expected)
                self.add_message(exc)  # the loop ended with an error: show it, do not lose it
        finally:
            self.set_phase("stopped")

    async def adone(self) -> None:
        """Wait until the dialog loop started by `chat()` has ended."""
        if self.loop_task is not None:
            await asyncio.wait([self.loop_task])

    # ------------------------------------------------------------ reading

    def _is_live(self) -> bool:
        return self.phase == "replying" or super()._is_live()

    def _is_interactive(self) -> bool:
        return self.phase != "stopped"

    def _snapshot(self) -> dict[str, Any]:
        return {**super()._snapshot(), "order": list(self._transcript.ids)}

    def to_text(self) -> str:
        blocks = [entry.to_text() for entry in self._entries(self._transcript.ids)]
        return "\n\n".join(blocks) if blocks else "(empty chat)"

    def to_html(self) -> str:
        blocks = "".join(entry_html(entry) for entry in self._entries(self._transcript.ids))
        return static_html(
            "miniagents-chat", f'<div class="miniagents-chat-transcript">{blocks}</div>', phase=self.phase
        )

    def __repr__(self) -> str:
        return f"<ChatWidget: {len(self._transcript.ids)} message(s), {self.phase}>"


class _NotebookChat:
    """The user's side of a notebook chat: the widget and the chat history."""

    def __init__(self, chat_history: ChatHistory) -> None:
        self.chat_history = chat_history
        self.widget = ChatWidget()
        self._history_shown = False

    async def arun(self, ctx: InteractionContext) -> None:
        """The agent function: show and log the input, wait for the user, reply with the whole history."""
        if self.widget.phase != "stopped":
            self.widget.set_phase("replying")
        if not self._history_shown:
            self._history_shown = True
            for message in await self.chat_history.aload_chat_history():
                self.widget.add_message(message.as_promise)
        incoming = []
        async for piece in apieces(ctx.messages):
            self.widget.add_message(piece)
            if isinstance(piece, MessagePromise):
                incoming.append(piece)
        for message_promise in incoming:
            try:
                message = await message_promise
            except Exception:  # shown as failed in the transcript; the chat goes on
                continue
            await self.chat_history.alog_message(message)
        try:
            text = await self.widget.aread_user_input()
        except ChatStopped as exc:
            ctx.reply(exc)  # delivered, not raised: the dialog loop ends without an error being logged
            return
        user_message = UserMessage(text=text)
        self.widget.add_message(user_message.as_promise, sender=ctx.this_agent.alias)
        await self.chat_history.alog_message(user_message)
        ctx.reply(await self.chat_history.aload_chat_history())


class NotebookUserAgent(MiniAgent):
    """The agent standing for the user in a notebook chat; it displays as its chat widget."""

    def __init__(self, chat: _NotebookChat, alias: str, **miniagent_kwargs: Any) -> None:
        miniagent_kwargs.setdefault("description", "The user, chatting in a notebook cell.")
        super().__init__(chat.arun, alias=alias, **miniagent_kwargs)
        self.chat_widget = chat.widget
        self.chat_history = chat.chat_history
        chat.widget.user_agent = self

    @property
    def is_waiting_for_user(self) -> bool:
        """Whether this agent waits for the user to type (a tree shows its call as waiting, not running)."""
        return self.chat_widget.phase == "waiting"

    def on_waiting_change(self, callback: Callable[[], None]) -> None:
        """Call `callback()` whenever `is_waiting_for_user` may have changed."""
        self.chat_widget.observe(lambda _: callback(), names="phase")

    def _ipython_display_(self) -> None:
        self.chat_widget._ipython_display_()

    def __repr__(self) -> str:
        return f"NotebookUserAgent({self.alias!r})"


def create_notebook_user_agent(
    chat_history: ChatHistory | None = None, alias: str = "USER", **miniagent_kwargs: Any
) -> NotebookUserAgent:
    """
    An agent that stands for the user in a notebook cell (display it to get its chat widget).

    Each call shows the incoming messages in the transcript as they stream, logs them to
    `chat_history` (an InMemoryChatHistory if none is given), waits for the user's next message from
    the input box, logs it too and replies with the whole chat history. The stop button makes it reply
    ChatStopped, which ends `adialog_loop`. Extra kwargs go to `MiniAgent` (`description`, ...).
    """
    chat = _NotebookChat(chat_history if chat_history is not None else InMemoryChatHistory())
    return NotebookUserAgent(chat, alias=alias, **miniagent_kwargs)


def chat(assistant_agent: MiniAgent, chat_history: ChatHistory | None = None, user_alias: str = "USER") -> ChatWidget:
    """
    Show a chat with `assistant_agent` in this cell and run the dialog loop in the background; the cell
    returns at once. Returns the ChatWidget (`stop()`, `await adone()`, `user_agent`, `loop_task`).
    """
    user_agent = create_notebook_user_agent(chat_history, alias=user_alias)
    widget = user_agent.chat_widget
    widget.show()
    widget.start_dialog(user_agent, assistant_agent)
    return widget
