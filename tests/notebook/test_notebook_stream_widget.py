"""
A reply as the value of a cell renders as the live stream widget (SPEC 5.2, 5.5; issue 4, acceptance 2),
checked in a real kernel by reading the outputs and the widget's comm messages on the iopub channel.
"""

from __future__ import annotations

from typing import Any

import pytest
from html_inspection import assert_inert, without_own_stylesheet
from kernel_session import IopubMessage, KernelSession

from miniagents import Message, MiniAgents
from miniagents.ext.llm.offline import create_offline_agent
from miniagents.notebook import MessageStreamWidget

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SETUP = """
import asyncio
import miniagents.notebook
from miniagents.ext.llm.offline import create_offline_agent
miniagents.notebook.activate()
"""


def _custom_contents(messages: list[IopubMessage]) -> list[dict[str, Any]]:
    return [m.content["data"]["content"] for m in messages if m.content["data"].get("method") == "custom"]


def _streamed_text(messages: list[IopubMessage], message_id: str = "m1") -> str:
    """The text of one message as the front end assembles it from the text deltas, checking their order."""
    chunks = []
    for content in _custom_contents(messages):
        for event in content.get("events", []):
            if event[0] == "text" and event[1] == message_id:
                assert event[2] == len(chunks), "text deltas out of order"
                chunks.append(event[3])
    return "".join(chunks)


def _final_state(kernel_session: KernelSession, model_id: str, timeout: float = 30) -> dict[str, Any]:
    """The `state` trait as synced at the end of the stream."""
    update = kernel_session.wait_for(
        lambda m: (
            m.msg_type == "comm_msg"
            and m.content.get("comm_id") == model_id
            and m.content["data"].get("method") == "update"
            and m.content["data"]["state"].get("state", {}).get("live") is False
        ),
        timeout=timeout,
    )
    return update.content["data"]["state"]["state"]


def test_reply_as_cell_value_renders_a_widget_with_text_and_html_forms(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "llm = create_offline_agent(lambda m: 'Hello **world**')")

    output = kernel_session.run("llm.inquire('hi')").result

    assert set(output) == {"text/plain", "text/html", WIDGET_VIEW}
    assert output[WIDGET_VIEW]["model_id"]
    assert output["text/plain"] == "(waiting for messages...)"  # the agent starts after the cell returns
    assert (
        without_own_stylesheet(output["text/html"]) == '<div class="miniagents-stream" data-status="streaming"></div>'
    )


def test_finished_reply_as_cell_value_shows_its_whole_text_statically(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "llm = create_offline_agent(lambda m: 'Hello **world**')")

    output = kernel_session.run("replies = llm.inquire('hi')\nawait replies.aresolve_messages()\nreplies").result

    assert output["text/plain"] == "OFFLINE_LLM (assistant · offline-stand-in):\nHello **world**"
    assert "<strong>world</strong>" in output["text/html"]
    assert 'class="miniagents-message" data-status="done"' in output["text/html"]


def test_complete_message_promise_as_cell_value_shows_only_its_static_forms(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "from miniagents import Message")

    output = kernel_session.run("Message('plain *text*', role='user').as_promise").result

    assert output["text/plain"] == "user:\nplain *text*"
    assert "<em>text</em>" in output["text/html"]
    assert WIDGET_VIEW not in output  # nothing will change: no live view, nothing for a reopened notebook to miss


def test_cell_returns_while_the_reply_is_still_streaming(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "llm = create_offline_agent(lambda m: 'tick ' * 40, token_delay=0.02)")

    cell = kernel_session.run("llm.inquire('go')")
    model_id = cell.result[WIDGET_VIEW]["model_id"]
    state = _final_state(kernel_session, model_id)

    deltas = [
        m
        for m in kernel_session.comm_messages(model_id)
        if any(e[0] == "text" for c in _custom_contents([m]) for e in c.get("events", []))
    ]
    assert cell.finished_at - cell.started_at < 0.5  # the stream takes ~0.8 s
    after_the_cell = [delta for delta in deltas if delta.received_at > cell.finished_at]
    assert len(after_the_cell) >= 5  # tokens kept arriving after the cell was done: the page saw the text grow
    assert _streamed_text(kernel_session.comm_messages(model_id)) == "tick " * 40
    assert state["messages"]["m1"]["text"] == "tick " * 40
    assert state["messages"]["m1"]["status"] == "done"
    assert kernel_session.value("1 + 1") == 2


def test_a_view_rendered_mid_stream_gets_a_snapshot_then_the_next_deltas(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "llm = create_offline_agent(lambda m: 'tock ' * 100, token_delay=0.01)")
    model_id = kernel_session.run("llm.inquire('go')").result[WIDGET_VIEW]["model_id"]
    kernel_session.wait_for(lambda m: m.content.get("comm_id") == model_id and "text" in str(m.content))

    kernel_session.send_to_widget(model_id, {"type": "snapshot-request", "request": "view-2"})
    reply = kernel_session.wait_for(lambda m: m.content.get("comm_id") == model_id and "view-2" in str(m.content))
    _final_state(kernel_session, model_id)

    snapshot = reply.content["data"]["content"]["state"]["messages"]["m1"]
    later = kernel_session.comm_messages(model_id)
    later = later[later.index(reply) + 1 :]
    rest = [e for c in _custom_contents(later) for e in c.get("events", []) if e[0] == "text"]
    assert rest[0][2] == snapshot["seq"]  # the first delta after the snapshot continues it
    assert snapshot["text"] + "".join(e[3] for e in rest) == "tock " * 100


def test_failed_reply_shows_a_failed_block_with_the_error(kernel_session: KernelSession) -> None:
    kernel_session.run(
        SETUP + "from miniagents import miniagent\n@miniagent\nasync def broken(ctx):\n"
        "    ctx.reply('before')\n    raise ValueError('no <b>luck</b>')"
    )

    output = kernel_session.run(
        "replies = broken.inquire()\ntry:\n    await replies\nexcept ValueError:\n    pass\nreplies"
    )
    text = output.result["text/plain"]

    assert text.startswith("BROKEN:\nbefore\n\nERROR:\n[failed: ValueError: no <b>luck</b>")
    assert "no &lt;b&gt;luck&lt;/b&gt;" in output.result["text/html"]
    assert 'data-status="failed"' in output.result["text/html"]


@pytest.mark.timeout(120)
def test_100k_tokens_at_full_speed_send_at_most_30_updates_per_second_and_the_exact_text(
    kernel_session: KernelSession,
) -> None:
    kernel_session.run(
        SETUP + "TEXT = ''.join(f' t{i}' for i in range(100_000))\n"
        "llm = create_offline_agent(lambda m: TEXT, token_delay=0)"
    )

    cell = kernel_session.run("llm.inquire('go')")
    model_id = cell.result[WIDGET_VIEW]["model_id"]
    state = _final_state(kernel_session, model_id, timeout=100)

    messages = kernel_session.comm_messages(model_id)
    duration = messages[-1].received_at - cell.finished_at
    expected = kernel_session.value("TEXT")
    assert state["messages"]["m1"]["tokens"] == 100_000
    assert state["messages"]["m1"]["text"] == expected
    assert _streamed_text(messages) == expected
    print(f"\n100k tokens: {len(messages)} comm messages in {duration:.2f} s = {len(messages) / duration:.1f}/s")
    assert duration > 0.5, "the stream was too short to measure a rate"
    assert len(messages) <= 30 * duration + 2  # + the final flush and the final state


async def test_stream_widget_follows_a_sequence_in_process() -> None:
    async with MiniAgents():
        llm = create_offline_agent(lambda messages: f"re: {messages[-1]}")
        widget = MessageStreamWidget([llm.inquire("a"), Message("between", role="user"), llm.inquire("b")])

        await widget.adone()

        assert widget.text == "re: a\n\nbetween\n\nre: b"
        assert repr(widget) == "<MessageStreamWidget: 3 message(s), done>"
        assert [widget.state["messages"][i]["status"] for i in widget.state["order"]] == ["done"] * 3
        assert_inert(widget.to_html())


def test_streaming_message_reaches_the_page_as_markdown_while_it_grows(kernel_session: KernelSession) -> None:
    kernel_session.run(
        SETUP + "llm = create_offline_agent(lambda m: 'line **one**\\nline two\\n' * 20, token_delay=0.01)"
    )

    model_id = kernel_session.run("llm.inquire('go')").result[WIDGET_VIEW]["model_id"]
    _final_state(kernel_session, model_id)

    renders = [
        event[2]
        for content in _custom_contents(kernel_session.comm_messages(model_id))
        for event in content.get("events", [])
        if event[0] == "message" and "html_upto" in event[2]
    ]
    assert len(renders) >= 3, "the growing text was not rendered as it grew"
    assert [render["html_upto"] for render in renders] == sorted({render["html_upto"] for render in renders})
    assert all("<strong>one</strong><br />" in render["html"] for render in renders[1:])
    assert_inert(renders[-1]["html"])
