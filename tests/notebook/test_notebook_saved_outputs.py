"""
Saved notebooks read without a kernel (SPEC 5.7, issue 13): a widget's outputs are displayed with a display id
and updated with the widget's static forms each time it goes quiet, parented so that both JupyterLab / Notebook
7 (the cell that displayed it) and nbclient (the cell running then) apply the update. Checked in a real kernel
by reading the iopub messages.
"""

from __future__ import annotations

from typing import Any

from html_inspection import assert_inert
from kernel_session import CellResult, IopubMessage, KernelSession

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SETUP = """
import asyncio
import miniagents.notebook as mn
from miniagents import Message, miniagent
from miniagents.ext.llm.offline import create_offline_agent
from miniagents.notebook.stream_widget import show_reply
mn.activate()
"""
POEM = "Tokens arrive fast,\nstreaming flows word by word:\nthe promise replays."


def _request_id(cell: CellResult) -> str:
    """The msg_id of the execute request of a cell (what its outputs' parent headers name)."""
    return cell.messages[0].parent_id or ""


def _displays(messages: list[IopubMessage]) -> list[IopubMessage]:
    return [m for m in messages if m.msg_type == "display_data"]


def _display_id(message: IopubMessage) -> str:
    return message.content["transient"]["display_id"]


def _updates(kernel_session: KernelSession, display_id: str) -> list[IopubMessage]:
    return [
        m
        for m in kernel_session.iopub
        if m.msg_type == "update_display_data" and m.content["transient"]["display_id"] == display_id
    ]


def _wait_update(kernel_session: KernelSession, display_id: str, parent: str, **wanted: Any) -> IopubMessage:
    """The first update of `display_id` parented to request `parent` whose data has the `wanted` items."""

    def matches(message: IopubMessage) -> bool:
        if message.msg_type != "update_display_data" or message.parent_id != parent:
            return False
        if message.content["transient"]["display_id"] != display_id:
            return False
        data = message.content["data"]
        return all(wanted_value(data.get(key)) for key, wanted_value in wanted.items())

    return kernel_session.wait_for(matches)


def test_reply_shown_while_streaming_gets_its_final_static_form_in_the_same_output(
    kernel_session: KernelSession,
) -> None:
    kernel_session.run(SETUP + f"llm = create_offline_agent(lambda m: {POEM!r}, token_delay=0.02)")

    cell = kernel_session.run("widget = show_reply(llm.inquire('hi'))")
    (shown,) = _displays(cell.messages)
    final = _wait_update(kernel_session, _display_id(shown), _request_id(cell), **{"text/plain": lambda t: t})

    assert WIDGET_VIEW in shown.content["data"]  # live while it streams
    assert shown.content["data"]["text/plain"] == "(waiting for messages...)"
    assert final.content["data"]["text/plain"] == f"OFFLINE_LLM (assistant · offline-stand-in):\n{POEM}"
    assert WIDGET_VIEW not in final.content["data"]  # complete: a reader without the model sees the text
    assert "Tokens arrive fast,<br />" in final.content["data"]["text/html"]  # the line breaks are kept
    assert 'data-status="done"' in final.content["data"]["text/html"]
    assert final.content["data"]["text/html"].startswith("<style>")  # it carries its own stylesheet
    assert_inert(final.content["data"]["text/html"])


def test_update_made_while_a_later_cell_runs_is_also_parented_to_that_cell(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "llm = create_offline_agent(lambda m: 'tick ' * 30, token_delay=0.02)")
    first = kernel_session.run("widget = show_reply(llm.inquire('hi'))")
    display_id = _display_id(_displays(first.messages)[0])

    later = kernel_session.run("await widget.adone()")  # the reply completes while this cell runs

    parents = {m.parent_id for m in _updates(kernel_session, display_id)}
    assert parents == {_request_id(first), _request_id(later)}
    assert all(WIDGET_VIEW not in m.content["data"] for m in later.messages if m.msg_type == "update_display_data")


def test_update_made_while_no_cell_runs_is_sent_again_when_the_next_cell_starts(
    kernel_session: KernelSession,
) -> None:
    kernel_session.run(SETUP + "llm = create_offline_agent(lambda m: 'tock ' * 10, token_delay=0.02)")
    first = kernel_session.run("widget = show_reply(llm.inquire('hi'))")
    display_id = _display_id(_displays(first.messages)[0])
    _wait_update(kernel_session, display_id, _request_id(first), **{"text/plain": bool})

    nothing_to_do = kernel_session.run("pass")

    (resent,) = [m for m in nothing_to_do.messages if m.msg_type == "update_display_data"]
    assert resent.content["transient"]["display_id"] == display_id
    assert "tock tock" in resent.content["data"]["text/plain"]


def test_complete_reply_is_shown_by_its_static_forms_only(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "llm = create_offline_agent(lambda m: 'done already')")

    cell = kernel_session.run(
        "replies = llm.inquire('hi')\nawait replies.aresolve_messages()\nwidget = show_reply(replies)"
    )

    (shown,) = _displays(cell.messages)
    assert set(shown.content["data"]) == {"text/plain", "text/html"}
    assert shown.content["data"]["text/plain"] == "OFFLINE_LLM (assistant · offline-stand-in):\ndone already"


def test_tree_shown_before_its_calls_holds_the_live_view_only_while_they_run(kernel_session: KernelSession) -> None:
    kernel_session.run(
        SETUP + "llm = create_offline_agent(lambda m: 'notes ' * 20, token_delay=0.02, alias='RESEARCHER')"
    )
    shown = _displays(kernel_session.run("tree = mn.show_tree()").messages)[0]
    display_id = _display_id(shown)

    kernel_session.run("replies = llm.inquire('octopus')")
    live = kernel_session.wait_for(
        lambda m: (
            m.msg_type == "update_display_data"
            and m.content["transient"]["display_id"] == display_id
            and WIDGET_VIEW in m.content["data"]
        )
    )
    kernel_session.run("await tree.aquiet()")
    final = _updates(kernel_session, display_id)[-1]

    assert set(shown.content["data"]) == {"text/plain", "text/html", "text/vnd.mermaid"}  # no calls: static
    assert "no agent calls yet" in shown.content["data"]["text/plain"]
    assert live.content["transient"]["display_id"] == display_id
    assert WIDGET_VIEW not in final.content["data"]
    assert final.content["data"]["text/plain"].startswith("RESEARCHER [finished] in: 1, replies: 1")


def test_chat_keeps_its_live_view_until_stopped_then_shows_its_transcript(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "assistant = create_offline_agent(lambda m: 'hello ' + str(m[-1]), alias='BOT')")
    shown = _displays(kernel_session.run("chat = mn.chat(assistant)").messages)[0]
    display_id = _display_id(shown)
    model_id = shown.content["data"][WIDGET_VIEW]["model_id"]

    kernel_session.send_to_widget(model_id, {"type": "user-input", "text": "first line\nsecond line"})
    waiting = kernel_session.wait_for(
        lambda m: m.msg_type == "update_display_data" and "hello first line" in m.content["data"]["text/plain"]
    )
    kernel_session.send_to_widget(model_id, {"type": "stop"})
    stopped = kernel_session.wait_for(
        lambda m: m.msg_type == "update_display_data" and WIDGET_VIEW not in m.content["data"]
    )

    assert waiting.content["transient"]["display_id"] == display_id
    assert WIDGET_VIEW in waiting.content["data"]  # waiting for the user: still to be used
    assert stopped.content["data"]["text/plain"] == (
        "USER (user):\nfirst line\nsecond line\n\nBOT (assistant · offline-stand-in):\nhello first line\nsecond line"
    )
    assert "<p>first line<br />\nsecond line</p>" in stopped.content["data"]["text/html"]
    assert 'data-phase="stopped"' in stopped.content["data"]["text/html"]


def test_closed_widget_output_falls_back_to_its_static_forms(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "assistant = create_offline_agent(lambda m: 'hi', alias='BOT')")
    shown = _displays(kernel_session.run("chat = mn.chat(assistant)").messages)[0]

    cell = kernel_session.run("chat.close()")

    (update,) = [m for m in cell.messages if m.msg_type == "update_display_data"]
    assert update.content["transient"]["display_id"] == _display_id(shown)
    assert set(update.content["data"]) == {"text/plain", "text/html"}


def test_reply_as_cell_value_gets_its_final_static_form(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + f"llm = create_offline_agent(lambda m: {POEM!r}, token_delay=0.01)")

    cell = kernel_session.run("replies = llm.inquire('hi')\nreplies")
    (shown,) = [m for m in cell.messages if m.msg_type in ("display_data", "execute_result")]
    final = _wait_update(
        kernel_session,
        _display_id(shown),
        _request_id(cell),
        **{"text/plain": lambda text: text and POEM in text},
    )

    assert WIDGET_VIEW not in final.content["data"]
