"""
Tool calls, tool results and error messages render compactly (issue 11): in the stream and chat widgets, their
live fields and their static text/HTML forms, a tool call or result is one collapsed line (`<details>`) with the
whole arguments / output inside, never a wall of JSON; an ErrorMessage is an error block. Model and tool output
is untrusted: escaped everywhere (hypothesis over arbitrary names, arguments and output).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from html_inspection import assert_inert, elements, live_markup, without_own_stylesheet
from hypothesis import given, settings
from hypothesis import strategies as st

from miniagents import InteractionContext, Message, MiniAgents, miniagent
from miniagents.agent_call import ErrorMessage
from miniagents.ext.llm import ToolResultMessage
from miniagents.ext.llm.offline import OfflineModel, OfflineReply, OfflineToolCall, create_offline_agent
from miniagents.notebook import ChatWidget, MessageStreamWidget
from miniagents.notebook.message_forms import PREVIEW_CHARS, MessageForm, preview
from miniagents.notebook.rendering import MessageHeader, message_block_html, message_block_text

TIMEOUT = 10.0
LONG_ARGUMENT = "x" * 500  # a long argument: the summary line is cut, the detail holds it whole


def search_papers(topic: str, limit: int = 2) -> list[dict[str, Any]]:
    """Search papers."""
    return [{"title": f"{topic} paper {i}", "citations": 10 * i} for i in range(limit)]


@miniagent
async def summarizer(ctx: InteractionContext) -> None:
    """Summarises a topic."""
    ctx.reply(f"summary of {await ctx.messages.aresolve_messages()}")


def research_model() -> OfflineModel:
    return OfflineModel(
        [
            OfflineReply(
                text="Let me look.",
                tool_calls=[
                    OfflineToolCall("search_papers", {"topic": "octopus", "limit": 2}),
                    OfflineToolCall("SUMMARIZER", {"input": LONG_ARGUMENT}),
                ],
            ),
            OfflineReply(text="Two papers found."),
        ]
    )


async def _research_widget() -> MessageStreamWidget:
    llm = create_offline_agent(research_model(), tools=[search_papers, summarizer], alias="RESEARCHER")
    widget = MessageStreamWidget(llm.inquire("octopus"))
    await asyncio.wait_for(widget.adone(), TIMEOUT)
    return widget


# ------------------------------------------------------------------------------------------- stream widget


async def test_stream_text_form_shows_each_tool_call_and_result_on_one_line() -> None:
    async with MiniAgents():
        widget = await _research_widget()
        text = widget.to_text()

    lines = text.splitlines()
    assert '[tool call] search_papers(topic="octopus", limit=2)' in lines
    summarizer_call = next(line for line in lines if line.startswith("[tool call] SUMMARIZER("))
    assert len(summarizer_call) < PREVIEW_CHARS + 40 and summarizer_call.endswith("…)")
    result = next(line for line in lines if line.startswith("[tool result] search_papers: "))
    assert result == "[tool result] search_papers: " + preview(
        json.dumps(search_papers("octopus"), separators=(",", ":"))
    )
    assert any(line.startswith("[tool result] SUMMARIZER: summary of") for line in lines)
    assert LONG_ARGUMENT not in text  # no wall: the long argument is cut in the text form
    assert lines[-1] == "Two papers found."


async def test_stream_html_form_collapses_tool_calls_and_results_with_the_whole_content_inside() -> None:
    async with MiniAgents():
        widget = await _research_widget()
        html = widget.to_html()

    calls = elements(html, "miniagents-tool-call")
    assert [tag for tag, _, _ in calls] == ["details", "details"]
    assert all("open" not in attrs for _, _, attrs in calls)  # collapsed
    summaries = [text for _, text, _ in elements(html, "miniagents-tool-summary")]
    assert summaries[0] == 'search_papers(topic="octopus", limit=2)'
    assert summaries[1].startswith("SUMMARIZER(input=") and len(summaries[1]) <= PREVIEW_CHARS + len("SUMMARIZER()")
    details = [json.loads(text) for _, text, _ in elements(html, "miniagents-tool-detail")]
    assert details == [{"topic": "octopus", "limit": 2}, {"input": LONG_ARGUMENT}]  # whole, once expanded
    results = elements(html, "miniagents-tool-result")
    assert [tag for tag, _, _ in results] == ["details", "details"]
    assert all("open" not in attrs and "data-error" not in attrs for _, _, attrs in results)
    assert [text for _, text, _ in elements(html, "miniagents-tool-summary")][2:] == ["search_papers", "SUMMARIZER"]
    kinds = [attrs.get("data-kind") for _, _, attrs in elements(html, "miniagents-message")]
    assert kinds == ["tool-calls", "tool-result", "tool-result", None]
    assert_inert(html)


async def test_live_fields_mark_a_tool_result_from_its_first_token_and_tool_calls_once_resolved() -> None:
    async with MiniAgents():
        widget = await _research_widget()
        state = widget._snapshot()  # what a new view receives
    forms = [state["messages"][message_id]["form"] for message_id in state["order"]]
    assert forms[0]["kind"] == "tool-calls"
    assert [call["summary"] for call in forms[0]["tool_calls"]] == [
        'search_papers(topic="octopus", limit=2)',
        f'SUMMARIZER(input="{LONG_ARGUMENT[: PREVIEW_CHARS - len("input=") - 2]}…)',
    ]
    assert [(form["kind"], form["tool_name"], form["is_error"]) for form in forms[1:3]] == [
        ("tool-result", "search_papers", False),
        ("tool-result", "SUMMARIZER", False),
    ]
    assert forms[3] is None


async def test_failed_tool_result_is_marked_as_a_tool_error() -> None:
    def citation_count(title: str) -> int:
        """Citations."""
        raise LookupError(f"no paper titled {title!r}")

    model = OfflineModel(
        [OfflineReply(tool_calls=[OfflineToolCall("citation_count", {"title": "X"})]), OfflineReply(text="Sorry.")]
    )
    async with MiniAgents():
        llm = create_offline_agent(model, tools=[citation_count])
        widget = MessageStreamWidget(llm.inquire("how many?"))
        await asyncio.wait_for(widget.adone(), TIMEOUT)
        text, html = widget.to_text(), widget.to_html()

    assert "[tool error] citation_count: Error: citation_count failed: LookupError: no paper titled 'X'" in text
    ((_, _, attrs),) = elements(html, "miniagents-tool-result")
    assert attrs.get("data-error") == "true"
    assert [text for _, text, _ in elements(html, "miniagents-tool-tag")] == ["tool call", "tool error"]


# --------------------------------------------------------------------------------------------- chat widget


async def test_chat_transcript_shows_tool_messages_collapsed() -> None:
    async with MiniAgents():
        llm = create_offline_agent(research_model(), tools=[search_papers, summarizer], alias="RESEARCHER")
        chat = ChatWidget()
        chat.add_message(Message("octopus", role="user").as_promise)
        async for promise in llm.inquire("octopus"):
            chat.add_message(promise)
        await asyncio.wait_for(chat.aquiet(), TIMEOUT)
        text, html = chat.to_text(), chat.to_html()

    assert '[tool call] search_papers(topic="octopus", limit=2)' in text
    assert "[tool result] SUMMARIZER: summary of" in text
    assert len(elements(html, "miniagents-tool-call")) == 2 and len(elements(html, "miniagents-tool-result")) == 2
    assert_inert(html)


# ------------------------------------------------------------------------------------------- error messages


async def test_error_message_renders_as_an_error_block_with_its_class_text_and_trace() -> None:
    @miniagent(errors_as_messages=True)
    async def fragile(ctx: InteractionContext) -> None:
        raise ValueError("the <b>source</b> is gone")

    async with MiniAgents():
        widget = MessageStreamWidget(fragile.inquire("x"))
        await asyncio.wait_for(widget.adone(), TIMEOUT)
        text, html = widget.to_text(), widget.to_html()

    assert text.splitlines()[1:] == ["[error: ValueError] the <b>source</b> is gone", "(via FRAGILE)"]
    (block,) = elements(html, "miniagents-message")
    assert block[2].get("data-kind") == "error"
    assert [text for _, text, _ in elements(html, "miniagents-error-class")] == ["ValueError"]
    assert [text for _, text, _ in elements(html, "miniagents-error-text")] == ["the <b>source</b> is gone"]
    assert [text for _, text, _ in elements(html, "miniagents-error-trace")] == ["via FRAGILE"]
    assert "b" not in live_markup(without_own_stylesheet(html)).tags
    assert elements(html, "miniagents-message-body") == []  # not a markdown body


def test_message_with_error_class_field_but_not_an_error_message_is_plain_text() -> None:
    form = MessageForm.of({"error_class": "ValueError"}, Message("fine", error_class="ValueError"))
    assert form.kind == "text" and form.as_fields() is None


def test_error_message_form_from_a_resolved_error_message() -> None:
    message = ErrorMessage.from_exception(KeyError("k"))
    form = MessageForm.of({}, message)
    assert (form.kind, form.error_class) == ("error", "KeyError")


# ------------------------------------------------------------------------------------------ untrusted input

_names = st.text(min_size=1, max_size=40)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=60),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
_arguments = st.one_of(
    st.text(max_size=200),  # anything the model wrote, JSON or not
    st.dictionaries(st.text(max_size=20), _values, max_size=4).map(lambda value: json.dumps(value)),
)
_ALLOWED_TAGS = {"div", "span", "code", "pre", "details", "summary", "p", "br"}


@settings(max_examples=150, deadline=None)
@given(name=_names, arguments=_arguments, text=st.text(max_size=200))
def test_tool_call_block_of_arbitrary_names_and_arguments_injects_no_markup(
    name: str, arguments: str, text: str
) -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}]
    form = MessageForm.of({"tool_calls": calls})
    html = message_block_html(MessageHeader(sender="LLM"), text, "done", form=form)

    assert_inert(html)
    markup = live_markup(html)
    assert set(markup.tags) <= _ALLOWED_TAGS | {
        "strong",
        "em",
        "a",
        "ul",
        "ol",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "blockquote",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "s",
    }  # fmt: skip  (markdown of the text itself)
    ((_, summary, _),) = elements(html, "miniagents-tool-summary")
    ((_, detail, _),) = elements(html, "miniagents-tool-detail")
    assert summary == form.tool_calls[0].summary and summary.startswith(name)  # text, round-tripped exactly
    assert detail == form.tool_calls[0].detail
    assert "\n" not in form.tool_calls[0].summary[len(name) :]  # one line (a name is shown as given)
    text_form = message_block_text(MessageHeader(sender="LLM"), text, "done", form=form)
    assert f"[tool call] {form.tool_calls[0].summary}" in text_form


@settings(max_examples=150, deadline=None)
@given(name=_names, output=st.text(max_size=300), is_error=st.booleans())
def test_tool_result_block_of_arbitrary_names_and_output_injects_no_markup(
    name: str, output: str, is_error: bool
) -> None:
    form = MessageForm.of({"tool_call_id": "c1", "tool_name": name, "is_error": is_error})
    html = message_block_html(MessageHeader(sender="LLM"), output, "done", form=form)

    assert_inert(html)
    ((tag, _, attrs),) = elements(html, "miniagents-tool-result")
    assert tag == "details" and "open" not in attrs and (attrs.get("data-error") == "true") is is_error
    ((_, shown_name, _),) = elements(html, "miniagents-tool-summary")
    ((_, shown_preview, _),) = elements(html, "miniagents-tool-preview")
    assert (shown_name, shown_preview) == (name, preview(output))
    assert len(shown_preview) <= PREVIEW_CHARS and "\n" not in shown_preview


@settings(max_examples=100, deadline=None)
@given(error_class=_names, text=st.text(max_size=200), trace=st.lists(_names, max_size=3))
def test_error_block_of_arbitrary_class_text_and_trace_injects_no_markup(
    error_class: str, text: str, trace: list[str]
) -> None:
    message = ErrorMessage(text=text, error_class=error_class, agent_trace=tuple(trace))
    form = MessageForm.of({}, message)
    html = message_block_html(MessageHeader(sender="AGENT"), text, "done", form=form)

    assert_inert(html)
    assert set(live_markup(html).tags) <= {"div", "span"}
    assert [t for _, t, _ in elements(html, "miniagents-error-class")] == [error_class]
    assert [t for _, t, _ in elements(html, "miniagents-error-text")] == [text]


def test_tool_result_message_made_by_hand_renders_as_a_tool_result() -> None:
    message = ToolResultMessage(text='{"a": 1}', tool_call_id="c1", tool_name="lookup")
    form = MessageForm.of(json.loads(message.serialized), message)
    assert (form.kind, form.tool_name, form.is_error) == ("tool-result", "lookup", False)
    assert form.text_lines(message.text or "") == ['[tool result] lookup: {"a": 1}']
