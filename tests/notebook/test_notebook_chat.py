"""Chat in a cell (SPEC 5.4): the notebook user agent in a dialog loop, the chat() helper, the stop control."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from html_inspection import assert_inert
from kernel_session import KernelSession

from miniagents import Message, MiniAgents
from miniagents.chat_history import InMemoryChatHistory
from miniagents.ext.llm.offline import create_offline_agent
from miniagents.notebook import ChatStopped, ChatWidget, create_notebook_user_agent
from miniagents.utils import adialog_loop

TIMEOUT = 10
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


async def _phase(widget: ChatWidget, phase: str, messages: int | None = None) -> None:
    """Wait until the chat widget is in `phase` (with that many complete messages in its transcript)."""
    reached = asyncio.Event()

    def check(*_: Any) -> None:
        state = widget._snapshot()
        complete = [i for i in state["order"] if state["messages"][i]["status"] != "streaming"]
        if widget.phase == phase and (messages is None or len(complete) == len(state["order"]) == messages):
            reached.set()

    widget.observe(check, names=["phase", "state"])
    try:
        check()
        await asyncio.wait_for(reached.wait(), TIMEOUT)
    finally:
        widget.unobserve(check, names=["phase", "state"])


def _transcript(widget: ChatWidget) -> list[tuple[str, str]]:
    state = widget._snapshot()
    return [(state["messages"][i]["sender"], state["messages"][i]["text"]) for i in state["order"]]


async def test_notebook_user_agent_chats_in_a_dialog_loop_until_stopped() -> None:
    async with MiniAgents():
        history = InMemoryChatHistory()
        user = create_notebook_user_agent(history)
        assistant = create_offline_agent(lambda messages: f"you said: {messages[-1]}", alias="ASSISTANT")
        loop = asyncio.ensure_future(adialog_loop(user, assistant))
        widget = user.chat_widget

        await _phase(widget, "waiting")
        widget.send_user_input("hello")
        await _phase(widget, "waiting", messages=2)
        widget.stop()

        with pytest.raises(ChatStopped):
            await asyncio.wait_for(loop, TIMEOUT)
        assert _transcript(widget) == [("USER", "hello"), ("ASSISTANT", "you said: hello")]
        assert [(m.role, str(m)) for m in await history.aload_chat_history()] == [
            ("user", "hello"),
            ("assistant", "you said: hello"),
        ]
        assert widget.phase == "stopped"
        assert widget.to_text() == "USER (user):\nhello\n\nASSISTANT (assistant · offline-stand-in):\nyou said: hello"
        assert repr(widget) == "<ChatWidget: 2 message(s), stopped>"


async def test_blank_input_is_ignored() -> None:
    async with MiniAgents():
        user = create_notebook_user_agent()
        widget = user.chat_widget
        replies = user.inquire()
        await _phase(widget, "waiting")

        widget.send_user_input("  \n ")
        widget.send_user_input("real")

        assert [str(m) for m in await asyncio.wait_for(replies.aresolve_messages(), TIMEOUT)] == ["real"]


async def test_earlier_history_is_shown_when_the_chat_starts() -> None:
    async with MiniAgents():
        history = InMemoryChatHistory([Message("before", role="user"), Message("reply", role="assistant")])
        user = create_notebook_user_agent(history)
        user.inquire()
        await _phase(user.chat_widget, "waiting")

        assert _transcript(user.chat_widget) == [("user", "before"), ("assistant", "reply")]
        user.chat_widget.stop()  # the agent waits for the user until then (and the context waits for it)


async def test_a_failed_reply_shows_in_the_transcript_and_the_chat_goes_on() -> None:
    async with MiniAgents():
        user = create_notebook_user_agent()

        async def broken() -> AsyncIterator[str]:
            raise RuntimeError("the model is down")
            yield "never"

        replies = user.inquire([Message("fine", role="assistant").as_promise, broken()])
        await _phase(user.chat_widget, "waiting")
        user.chat_widget.send_user_input("again")
        await replies.aresolve_messages()

        state = user.chat_widget._snapshot()
        statuses = [(state["messages"][i]["status"], state["messages"][i]["error"]) for i in state["order"]]
        assert statuses == [("done", None), ("failed", "RuntimeError: the model is down"), ("done", None)]


async def test_transcript_static_html_is_inert() -> None:
    async with MiniAgents():
        user = create_notebook_user_agent()
        evil = Message("<script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror=alert(3)>")
        user.inquire(evil)
        await _phase(user.chat_widget, "waiting")

        assert_inert(user.chat_widget.to_html())
        user.chat_widget.stop()


def _chat_cell(kernel_session: KernelSession, reply_delay: float, with_tree: bool = False) -> str:
    kernel_session.run(
        "import miniagents.notebook\nfrom miniagents.ext.llm.offline import create_offline_agent\n"
        "miniagents.notebook.activate()\n"
        f"assistant = create_offline_agent(lambda m: 'echo ' * 50 + str(m[-1]), token_delay={reply_delay})\n"
    )
    tree = "tree = miniagents.notebook.MessageTree()\n" if with_tree else ""  # (a tree shows the chats of its cell)
    shown = kernel_session.run(f"{tree}chat = miniagents.notebook.chat(assistant)\nchat").results
    assert len(shown) == 1  # shown once, although it is also the value of the cell
    assert shown[0]["text/plain"] == "(empty chat)"
    return shown[0][WIDGET_VIEW]["model_id"]


def _wait_phase(kernel_session: KernelSession, model_id: str, phase: str) -> None:
    kernel_session.wait_for(
        lambda m: (
            m.msg_type == "comm_msg"
            and m.content.get("comm_id") == model_id
            and m.content["data"].get("state", {}).get("phase") == phase
        )
    )


def test_chat_helper_returns_at_once_and_chats_through_the_page(kernel_session: KernelSession) -> None:
    model_id = _chat_cell(kernel_session, reply_delay=0.0)

    kernel_session.send_to_widget(model_id, {"type": "user-input", "text": "hi there"})
    _wait_phase(kernel_session, model_id, "replying")
    kernel_session.wait_for(  # the state synced once the reply is complete and the chat waits again
        lambda m: (
            m.content.get("comm_id") == model_id
            and m.content["data"].get("state", {}).get("state", {}).get("live") is False
            and "echo echo" in str(m.content)
        )
    )

    assert kernel_session.value("chat.to_text().splitlines()") == [
        "USER (user):",
        "hi there",
        "",
        "OFFLINE_LLM (assistant · offline-stand-in):",
        "echo " * 50 + "hi there",
    ]
    kernel_session.send_to_widget(model_id, {"type": "stop"})
    _wait_phase(kernel_session, model_id, "stopped")
    assert kernel_session.value("await chat.adone() or chat.loop_task.exception()") is None


def test_stop_during_a_reply_cancels_it_and_ends_the_loop_cleanly(kernel_session: KernelSession) -> None:
    model_id = _chat_cell(kernel_session, reply_delay=0.05, with_tree=True)
    kernel_session.send_to_widget(model_id, {"type": "user-input", "text": "talk slowly"})
    kernel_session.wait_for(lambda m: m.content.get("comm_id") == model_id and "echo" in str(m.content))

    kernel_session.send_to_widget(model_id, {"type": "stop"})
    _wait_phase(kernel_session, model_id, "stopped")

    assert kernel_session.value("await chat.adone() or chat.loop_task.exception()") is None
    status = kernel_session.value("[(m['sender'], m['status']) for m in chat._snapshot()['messages'].values()]")
    assert status == [["USER", "done"], ["OFFLINE_LLM", "failed"]]
    calls = kernel_session.value("[(r.agent, r.status) for r in tree.calls]")
    assert calls == [["USER", "finished"], ["OFFLINE_LLM", "finished"], ["USER", "finished"]]  # the user spared
    assert len(kernel_session.value("chat._snapshot()['messages']['m2']['text']")) < len("echo " * 50)


def test_stopped_reply_reads_stopped_and_keeps_its_partial_text(kernel_session: KernelSession) -> None:
    model_id = _chat_cell(kernel_session, reply_delay=0.05)
    kernel_session.send_to_widget(model_id, {"type": "user-input", "text": "talk slowly"})
    kernel_session.wait_for(lambda m: m.content.get("comm_id") == model_id and "echo echo" in str(m.content))

    kernel_session.send_to_widget(model_id, {"type": "stop"})
    _wait_phase(kernel_session, model_id, "stopped")
    kernel_session.value("await chat.adone()")

    reply = kernel_session.value("chat._snapshot()['messages']['m2']")
    text = kernel_session.value("chat.to_text()")
    html = kernel_session.value("chat.to_html()")
    assert (reply["status"], reply["error"]) == ("failed", "stopped")  # shown as data-status="stopped"
    assert reply["text"].startswith("echo echo")
    assert text.endswith(f"{reply['text'].rstrip()}\n[stopped]")
    assert 'data-status="stopped"' in html
    assert "Cancel" not in text + html  # no PromiseCancelledError / CancelledError in red
    assert len(kernel_session.value("chat._snapshot()['order']")) == 2  # no extra error block after the cut


def test_chat_messages_sent_through_a_kernel_subshell_are_handled_on_the_chat_loop(
    kernel_session: KernelSession,
) -> None:
    # JupyterLab 4.4+ sends widget messages through a kernel subshell: another thread, another event loop
    model_id = _chat_cell(kernel_session, reply_delay=0.0)
    subshell = kernel_session.create_subshell()
    kernel_session.send_to_widget(model_id, {"type": "snapshot-request", "request": "view"}, subshell)  # a view
    kernel_session.wait_for(lambda m: m.content.get("comm_id") == model_id and '"view"' in json.dumps(m.content))

    kernel_session.send_to_widget(model_id, {"type": "user-input", "text": "through a subshell"}, subshell)
    kernel_session.wait_for(
        lambda m: (
            m.content.get("comm_id") == model_id
            and m.content["data"].get("state", {}).get("state", {}).get("live") is False
            and "echo echo" in str(m.content)
        )
    )
    kernel_session.send_to_widget(model_id, {"type": "stop"}, subshell)
    _wait_phase(kernel_session, model_id, "stopped")

    assert kernel_session.value("chat.to_text().splitlines()[:2]") == ["USER (user):", "through a subshell"]
    assert kernel_session.value("await chat.adone() or chat.loop_task.exception()") is None
