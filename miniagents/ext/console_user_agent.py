"""
The user's side of a console chat: prints what the other agents say as it streams, reads what the
user types, and replies with the whole chat history.

`adialog_loop(create_console_user_agent(chat_history=...), llm_agent)` is a working chat. Input is
read with prompt_toolkit (the `console` extra), imported only when the agent is created.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
from typing import Any

from miniagents.chat_history import ChatHistory, InMemoryChatHistory
from miniagents.ext.llm.llm_common import UserMessage
from miniagents.messages import Message, MessagePromise
from miniagents.miniagents import InteractionContext, MiniAgent, MiniAgents, miniagent

__all__ = ["create_console_user_agent"]

USAGE_HINT = "(Enter sends; Alt+Enter or Esc then Enter inserts a new line; Ctrl-D or Ctrl-C ends the chat)"
_BOLD_CYAN = "\033[1;36m"
_DIM = "\033[2m"
_RESET = "\033[0m"


def create_console_user_agent(
    chat_history: ChatHistory | None = None, alias: str = "USER_AGENT", **miniagent_kwargs: Any
) -> MiniAgent:
    """
    An agent that stands for the user at the console.

    Each call prints the incoming messages token by token as they stream (headed by the sender's
    alias or role, and model), logs them to `chat_history` (an InMemoryChatHistory if none is given),
    reads the user's next message (Enter sends, Alt+Enter / Esc Enter inserts a new line), logs it
    too, and replies with the whole chat history. Ctrl-C or Ctrl-D at the prompt ends the chat: the
    reply sequence raises KeyboardInterrupt. Extra kwargs go to `miniagent` (`description`, ...) or
    are bound to the agent: `user_prompt` (default "USER: "), `colors` (default: when stdout is a
    terminal and NO_COLOR is not set).

    Raises ImportError if prompt_toolkit is not installed (`pip install 'miniagents[console]'`).
    """
    if importlib.util.find_spec("prompt_toolkit") is None:
        raise ImportError("create_console_user_agent needs prompt_toolkit: pip install 'miniagents[console]'")
    console_chat = _ConsoleChat(chat_history if chat_history is not None else InMemoryChatHistory())
    miniagent_kwargs.setdefault("description", "The user, chatting at the console.")
    return miniagent(console_chat.arun, alias=alias, **miniagent_kwargs)


class _ConsoleChat:
    """The state behind one console user agent: its chat history and its prompt session."""

    def __init__(self, chat_history: ChatHistory) -> None:
        self.chat_history = chat_history
        self._prompt_session: Any = None
        self._greeted = False
        self._last_log: asyncio.Task[Any] | None = None

    async def arun(self, ctx: InteractionContext, user_prompt: str = "USER: ", colors: bool | None = None) -> None:
        """The agent function: echo and log the input, ask the user, reply with the whole history."""
        use_colors = colors if colors is not None else sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        async for message_promise in ctx.messages:
            # logged by a handler task as soon as it resolves, so Ctrl-C during the echo loses nothing
            self._log_in_order(message_promise)
            await self._aecho(message_promise, use_colors)

        if not self._greeted:
            self._greeted = True
            earlier = len(await self.chat_history.aload_chat_history())
            note = f"{USAGE_HINT}\n(continuing a chat of {earlier} earlier messages)" if earlier else USAGE_HINT
            _write(f"{_DIM}{note}{_RESET}\n\n" if use_colors else f"{note}\n\n")

        try:
            text = await self._aread_user_input(user_prompt)
        except (KeyboardInterrupt, EOFError):
            # delivered, not raised: an exception raised in an agent task would escape the event loop
            ctx.reply(KeyboardInterrupt("the user ended the chat"))
            return
        self._log_in_order(UserMessage(text=text))
        if self._last_log is not None:
            await self._last_log
        ctx.reply(await self.chat_history.aload_chat_history())

    def _log_in_order(self, message: Message | MessagePromise) -> None:
        """Log to the chat history in a task the context lets finish even when the chat is interrupted."""
        previous = self._last_log

        async def alog() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)  # its error was already logged
            await self.chat_history.alog_message(
                message if isinstance(message, Message) else await _aresolved_or_partial(message)
            )

        self._last_log = MiniAgents.get_current().start_asap(alog(), log_level_for_errors=logging.ERROR)

    async def _aecho(self, message_promise: MessagePromise, colors: bool) -> None:
        metadata = message_promise.preliminary_metadata
        sender = getattr(metadata, "agent_alias", None) or getattr(metadata, "role", None) or "MESSAGE"
        model = getattr(metadata, "model", None)
        header = f"{sender} ({model}):" if model else f"{sender}:"
        _write(f"\n{_BOLD_CYAN}{header}{_RESET} " if colors else f"\n{header} ")
        async for token in message_promise:
            _write(token)
        _write("\n\n")

    async def _aread_user_input(self, user_prompt: str) -> str:
        """The user's next non-blank message. Raises KeyboardInterrupt (Ctrl-C) or EOFError (Ctrl-D)."""
        from prompt_toolkit.formatted_text import FormattedText

        session = self._session()
        while True:
            text: str = await session.prompt_async(FormattedText([("class:user-prompt", user_prompt)]))
            if text.strip():
                return text

    def _session(self) -> Any:
        if self._prompt_session is None:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.key_binding import KeyBindings
            from prompt_toolkit.styles import Style

            bindings = KeyBindings()

            @bindings.add("enter")
            def _send(event: Any) -> None:
                event.current_buffer.validate_and_handle()

            @bindings.add("escape", "enter")
            def _new_line(event: Any) -> None:
                event.current_buffer.insert_text("\n")

            self._prompt_session = PromptSession(
                multiline=True,
                key_bindings=bindings,
                prompt_continuation=lambda width, line_number, is_soft_wrap: "." * (width - 1) + " ",
                style=Style.from_dict({"user-prompt": "bold ansiyellow"}),
            )
        return self._prompt_session


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


INTERRUPTED_MARK = "[interrupted]"


async def _aresolved_or_partial(message_promise: MessagePromise) -> Message:
    """
    The message, or, when its stream was cut (Ctrl-C, a stop, a provider error), what arrived of it, marked
    with INTERRUPTED_MARK on a line of its own: a partial reply is kept in the history, never lost.
    """
    try:
        return await message_promise
    except Exception as exc:
        pieces, _ = message_promise.snapshot()
        text = "".join(piece for piece in pieces if isinstance(piece, str))
        metadata = dict(message_promise.preliminary_metadata.frozen_fields_and_values())
        metadata.pop("text", None)
        reason = type(exc).__name__
        return Message(
            text=f"{text}\n\n{INTERRUPTED_MARK} ({reason})" if text else f"{INTERRUPTED_MARK} ({reason})", **metadata
        )
