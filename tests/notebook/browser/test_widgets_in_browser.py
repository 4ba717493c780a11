"""
MiniAgents' notebook widgets in a real JupyterLab, in a real (headless) Chromium, installed from the built
wheel (issue 4, acceptance 1 and 4). Each test runs a notebook as a user would, watches the widget's DOM
change over time and saves a screenshot under test-artifacts/browser/.

The DOM contract these tests read:
- stream: `.miniagents-stream` > `.miniagents-message[data-status=streaming|done|failed]`
  > `.miniagents-message-header` (sender alias) + `.miniagents-message-body`
- tree: `.miniagents-tree` > `.miniagents-call[data-agent][data-status=running|finished|failed]`, children
  nested inside their parent's element, `.miniagents-call-error` with the error text
- chat: `.miniagents-chat` > `textarea.miniagents-chat-input` (Enter sends), `.miniagents-chat-transcript`
  > `.miniagents-message`, `button.miniagents-chat-stop`
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .notebook_page import NotebookPage

if TYPE_CHECKING:
    from playwright.sync_api import Locator

pytestmark = pytest.mark.timeout(300)  # the first test of a run also builds the venv and starts JupyterLab

OpenNotebook = Callable[[list[str]], NotebookPage]

SETUP_CELL = """\
import asyncio

import miniagents.notebook as mn
from miniagents import InteractionContext, miniagent
from miniagents.ext.llm.offline import create_offline_agent

mn.activate()
"""

STREAM_REPLY = (
    "Tokens arrive one word at a time while the cell has long finished and the kernel is free "
    "for the next cell so the reader watches this sentence grow in place until the very last word"
)
CHAT_REPLY_TAIL = "and this reply streams into the transcript word by word until it is complete"
# `**markdown**` proves the reply went through the widgets' markdown rendering, not only a text node.
XSS_PAYLOAD = (
    'Payload: **markdown** <img src=x onerror="window.__pwned=1"> then <script>window.__pwned=1</script> '
    "then [click](javascript:window.__pwned=1) end"
)


def shows_finished(prompt: str | None) -> bool:
    """Whether a cell prompt reads `[n]:` (executed), not `[ ]:` or `[*]:`."""
    return bool(prompt) and prompt.startswith("[") and prompt.endswith("]:") and prompt[1:-2].isdigit()


def normalized(text: str) -> str:
    return " ".join(text.split())


def streaming_lengths(samples: list[dict[str, Any]], is_sample_relevant: Callable[[Any], bool]) -> list[int]:
    """The distinct body lengths seen, in order, in samples accepted by `is_sample_relevant`."""
    lengths: list[int] = []
    for sample in samples:
        value = sample["value"]
        if is_sample_relevant(value) and (not lengths or lengths[-1] != value["length"]):
            lengths.append(value["length"])
    return lengths


# ------------------------------------------------------------------------------------------- (a) stream

STREAM_SNAPSHOT = """() => {{
    const output = {output};
    const message = output?.querySelector('.miniagents-stream .miniagents-message');
    return {{
        prompt: {prompt},
        nextPrompt: {next_prompt},
        status: message?.dataset.status ?? null,
        length: message?.querySelector('.miniagents-message-body')?.textContent.length ?? 0,
    }};
}}"""


def test_stream_text_grows_after_cell_reports_finished(open_notebook: OpenNotebook) -> None:
    notebook = open_notebook(
        [
            SETUP_CELL + f"llm = create_offline_agent(reply_function=lambda messages: {STREAM_REPLY!r}, "
            "token_delay=0.06)",
            'llm.inquire("hi")',
            '"the kernel is free while the reply streams"',
        ]
    )
    recording = notebook.record(
        STREAM_SNAPSHOT.format(
            output=notebook.output_js(1), prompt=notebook.prompt_js(1), next_prompt=notebook.prompt_js(2)
        )
    )
    notebook.run_all()
    notebook.wait_executed(1)
    stream = notebook.output(1).locator(".miniagents-stream")
    stream.locator(".miniagents-message[data-status=streaming]").wait_for()
    notebook.screenshot("mid-stream")
    message = stream.locator(".miniagents-message[data-status=done]")
    message.wait_for(timeout=30_000)
    samples = recording.stop()
    notebook.screenshot()

    assert stream.locator(".miniagents-message").count() == 1
    assert "OFFLINE_LLM" in message.locator(".miniagents-message-header").inner_text()
    assert normalized(message.locator(".miniagents-message-body").inner_text()) == STREAM_REPLY
    grew_after_finish = streaming_lengths(
        samples, lambda value: shows_finished(value["prompt"]) and value["status"] == "streaming"
    )
    assert len(grew_after_finish) >= 3, f"visible text did not grow after the cell finished: {samples}"
    assert grew_after_finish == sorted(grew_after_finish)
    assert any(
        shows_finished(sample["value"]["nextPrompt"]) and sample["value"]["status"] == "streaming" for sample in samples
    ), f"the next cell did not run while the reply streamed: {samples}"


# --------------------------------------------------------------------------------------------- (b) tree

TREE_AGENTS_CELL = """\
llm = create_offline_agent(
    reply_function=lambda messages: "notes on " + str(messages[-1]) + " gathered word by word " * 4,
    token_delay=0.1,
)


@miniagent
async def researcher(ctx: InteractionContext) -> None:
    notes = llm.inquire(ctx.messages)
    ctx.reply(notes)
    await notes.aresolve_messages()  # stays running while its LLM call streams


@miniagent
async def fact_checker(ctx: InteractionContext) -> None:
    await asyncio.sleep(0.8)
    raise RuntimeError(FACT_CHECKER_ERROR)


@miniagent
async def orchestrator(ctx: InteractionContext) -> None:
    ctx.reply(researcher.inquire(ctx.messages))
    await asyncio.sleep(0.3)  # the second sub-agent joins later, so the tree visibly grows
    ctx.reply(fact_checker.inquire(ctx.messages))
"""

TREE_SNAPSHOT = """() => {{
    const tree = {output}?.querySelector('.miniagents-tree');
    return [...(tree?.querySelectorAll('.miniagents-call') ?? [])].map(node => ({{
        agent: node.dataset.agent,
        status: node.dataset.status,
        parent: node.parentElement?.closest('.miniagents-call')?.dataset.agent ?? null,
    }}));
}}"""


def call_node(notebook: NotebookPage, cell: int, agent: str, status: str | None = None) -> Locator:
    status_filter = f'[data-status="{status}"]' if status else ""
    return notebook.output(cell).locator(f'.miniagents-tree .miniagents-call[data-agent="{agent}"]{status_filter}')


def own_error_text(node: Locator) -> str:
    """The error text shown by this call node itself (not by a nested call)."""
    return node.evaluate(
        """node => [...node.querySelectorAll('.miniagents-call-error')]
            .filter(error => error.closest('.miniagents-call') === node)
            .map(error => error.textContent).join(' ')"""
    )


def test_tree_shows_parallel_nested_calls_live_and_failed_agent_as_failed(open_notebook: OpenNotebook) -> None:
    error = "fact source unreachable"
    notebook = open_notebook(
        [
            SETUP_CELL + f"FACT_CHECKER_ERROR = {error!r}\n" + TREE_AGENTS_CELL,
            "tree = mn.MessageTree()\ntree",
            'orchestrator.inquire("the history of the printing press")',
        ]
    )
    recording = notebook.record(TREE_SNAPSHOT.format(output=notebook.output_js(1)))
    notebook.run_all()
    for cell in range(3):
        notebook.wait_executed(cell)
    fact_checker = call_node(notebook, 1, "FACT_CHECKER", "failed")
    researcher = call_node(notebook, 1, "RESEARCHER", "finished")
    fact_checker.wait_for()
    researcher.wait_for(timeout=30_000)
    call_node(notebook, 1, "OFFLINE_LLM", "finished").wait_for()
    samples = [sample["value"] for sample in recording.stop()]
    notebook.screenshot(focus=notebook.output(1))

    final = {node["agent"]: node for node in samples[-1]}
    assert final["ORCHESTRATOR"]["parent"] is None
    assert final["RESEARCHER"]["parent"] == "ORCHESTRATOR"
    assert final["FACT_CHECKER"]["parent"] == "ORCHESTRATOR"
    assert final["OFFLINE_LLM"]["parent"] == "RESEARCHER"
    assert error in own_error_text(fact_checker)
    assert own_error_text(researcher).strip() == ""

    def statuses(sample: list[dict[str, str]]) -> dict[str, str]:
        return {node["agent"]: node["status"] for node in sample}

    node_counts = [len(sample) for sample in samples]
    assert node_counts[0] == 0 and max(node_counts) >= 4, f"tree did not grow live: {node_counts}"
    assert len(set(node_counts)) >= 3, f"tree did not grow step by step: {node_counts}"
    assert any(
        statuses(sample).get("RESEARCHER") == "running" and statuses(sample).get("FACT_CHECKER") == "running"
        for sample in samples
    ), f"the two sub-agents were never shown running at the same time: {samples}"
    assert any(
        statuses(sample).get("FACT_CHECKER") == "failed" and statuses(sample).get("RESEARCHER") == "running"
        for sample in samples
    ), f"the failure was not shown while the sibling still ran: {samples}"


# --------------------------------------------------------------------------------------------- (c) chat

CHAT_SNAPSHOT = """() => {{
    const transcript = {output}?.querySelector('.miniagents-chat .miniagents-chat-transcript');
    return [...(transcript?.querySelectorAll('.miniagents-message') ?? [])].map(message => ({{
        header: message.querySelector('.miniagents-message-header')?.textContent ?? '',
        status: message.dataset.status ?? null,
        length: message.querySelector('.miniagents-message-body')?.textContent.length ?? 0,
    }}));
}}"""


def chat_notebook(open_notebook: OpenNotebook, reply_expression: str) -> NotebookPage:
    notebook = open_notebook(
        [
            SETUP_CELL + f"assistant = create_offline_agent(reply_function=lambda messages: {reply_expression}, "
            'token_delay=0.05, alias="ASSISTANT")',
            "mn.chat(assistant)",
        ]
    )
    notebook.run_all()
    notebook.wait_executed(1)
    return notebook


def send_chat_message(notebook: NotebookPage, cell: int, text: str) -> None:
    chat_input = notebook.output(cell).locator(".miniagents-chat textarea.miniagents-chat-input")
    chat_input.wait_for()
    chat_input.click()
    chat_input.fill(text)
    chat_input.press("Enter")


def test_chat_turn_streams_reply_into_transcript_after_enter(open_notebook: OpenNotebook) -> None:
    user_text = "hello from the browser"
    notebook = chat_notebook(open_notebook, f'"You said: " + str(messages[-1]) + " {CHAT_REPLY_TAIL}"')
    chat = notebook.output(1).locator(".miniagents-chat")
    chat.locator("button.miniagents-chat-stop").wait_for()
    recording = notebook.record(CHAT_SNAPSHOT.format(output=notebook.output_js(1)))
    send_chat_message(notebook, 1, user_text)

    transcript = chat.locator(".miniagents-chat-transcript")
    transcript.locator(".miniagents-message[data-status=streaming]").wait_for()
    notebook.screenshot("mid-stream")
    reply = transcript.locator(".miniagents-message[data-status=done]", has_text="You said:")
    reply.wait_for(timeout=30_000)
    samples = recording.stop()
    notebook.screenshot()

    texts = [normalized(text) for text in transcript.locator(".miniagents-message-body").all_inner_texts()]
    assert user_text in texts
    assert texts[-1] == f"You said: {user_text} {CHAT_REPLY_TAIL}"
    assert "ASSISTANT" in reply.locator(".miniagents-message-header").inner_text()
    reply_lengths = streaming_lengths(
        [{"value": sample["value"][-1]} for sample in samples if len(sample["value"]) >= 2],
        lambda value: value["status"] == "streaming",
    )
    assert len(reply_lengths) >= 3, f"the reply did not stream into the transcript: {samples}"


# ---------------------------------------------------------------------------------------------- (d) XSS

UNSAFE_IN_WIDGET = """root => ({
    onerrorImages: root.querySelectorAll('img[onerror]').length,
    scripts: root.querySelectorAll('script').length,
    javascriptLinks: [...root.querySelectorAll('[href], [src], [action], [formaction]')]
        .filter(el => /^\\s*javascript:/i.test(el.getAttribute('href') ?? el.getAttribute('src')
            ?? el.getAttribute('action') ?? el.getAttribute('formaction') ?? '')).length,
    eventAttributes: [...root.querySelectorAll('*')]
        .filter(el => [...el.attributes].some(attribute => attribute.name.startsWith('on'))).length,
})"""


def assert_payload_inert(notebook: NotebookPage, widget_root: Locator) -> None:
    """
    Click the payload's link, then run two canaries of the same kinds, inserted by the test as live HTML:
    an <img onerror> and a clicked javascript: link. Once both fired, a live copy of the payload (loaded
    or clicked earlier) would have fired too; then check that nothing ran and nothing unsafe is in the DOM.
    """
    links = widget_root.locator("a", has_text="click")
    for index in range(links.count()):
        links.nth(index).click()
    if links.count() == 0:  # rendered as plain text: click where the link would be
        widget_root.get_by_text("click").last.click()
    page = notebook.page
    page.evaluate(CANARIES)
    page.locator("#miniagents-test-canary-link").click()
    page.wait_for_function("() => window.__canaryImage === 1 && window.__canaryLink === 1")
    page.evaluate("() => document.getElementById('miniagents-test-canary-link').remove()")

    assert page.evaluate("() => typeof window.__pwned") == "undefined", "the payload ran in the page"
    assert "/lab/" in page.url, f"clicking the payload link navigated away: {page.url}"
    assert widget_root.evaluate(UNSAFE_IN_WIDGET) == {
        "onerrorImages": 0, "scripts": 0, "javascriptLinks": 0, "eventAttributes": 0,
    }  # fmt: skip


CANARIES = """() => {
    document.createElement('div').innerHTML = '<img src="x-canary" onerror="window.__canaryImage = 1">';
    const link = document.createElement('a');
    link.id = 'miniagents-test-canary-link';
    link.href = 'javascript:window.__canaryLink = 1';
    link.textContent = 'canary';
    link.style.cssText = 'position: fixed; top: 0; left: 0; z-index: 100000; background: white;';
    document.body.appendChild(link);
}"""


def test_stream_reply_with_html_and_javascript_link_executes_nothing(open_notebook: OpenNotebook) -> None:
    notebook = open_notebook(
        [
            SETUP_CELL + f"llm = create_offline_agent(reply_function=lambda messages: {XSS_PAYLOAD!r})",
            'llm.inquire("hi")',
        ]
    )
    notebook.run_all()
    notebook.wait_executed(1)
    stream = notebook.output(1).locator(".miniagents-stream")
    stream.locator(".miniagents-message[data-status=done]").wait_for()

    assert_payload_inert(notebook, stream)
    body = stream.locator(".miniagents-message-body")
    assert body.locator("strong", has_text="markdown").count() == 1, "the reply was not rendered as markdown"
    assert "end" in body.inner_text()
    notebook.screenshot()


def test_chat_with_html_and_javascript_link_both_ways_executes_nothing(open_notebook: OpenNotebook) -> None:
    notebook = chat_notebook(open_notebook, f"{XSS_PAYLOAD!r}")
    send_chat_message(notebook, 1, XSS_PAYLOAD)  # the user's own text is shown in the transcript too
    chat = notebook.output(1).locator(".miniagents-chat")
    reply = chat.locator(".miniagents-chat-transcript .miniagents-message[data-status=done]").nth(1)
    reply.wait_for(timeout=30_000)

    assert_payload_inert(notebook, chat)
    assert reply.locator("strong", has_text="markdown").count() == 1, "the reply was not rendered as markdown"
    notebook.screenshot()


def test_tree_error_text_with_html_executes_nothing(open_notebook: OpenNotebook) -> None:
    notebook = open_notebook(
        [
            SETUP_CELL + f"FACT_CHECKER_ERROR = {XSS_PAYLOAD!r}\n" + TREE_AGENTS_CELL,
            "tree = mn.MessageTree()\ntree",
            'orchestrator.inquire("anything")',
        ]
    )
    notebook.run_all()
    notebook.wait_executed(2)
    failed = call_node(notebook, 1, "FACT_CHECKER", "failed")
    failed.wait_for()
    tree = notebook.output(1).locator(".miniagents-tree")

    assert "Payload:" in own_error_text(failed)
    assert_payload_inert(notebook, tree)
    notebook.screenshot(focus=tree)


# ------------------------------------------------------------------------------- (e) markdown while streaming

MARKDOWN_SNAPSHOT = """() => {{
    const body = {output}?.querySelector('.miniagents-stream .miniagents-message-body');
    const message = body?.closest('.miniagents-message');
    return {{
        status: message?.dataset.status ?? null,
        strong: body ? body.querySelectorAll('strong').length : 0,
        lineBreaks: body ? body.querySelectorAll('br').length : 0,
        monospace: body ? getComputedStyle(body).fontFamily.includes('monospace') : false,
        length: body?.textContent.length ?? 0,
    }};
}}"""


def test_streaming_reply_is_shown_as_markdown_from_its_first_lines_to_its_end(open_notebook: OpenNotebook) -> None:
    reply = "\n".join(f"line **{i}** of the reply" for i in range(12))
    notebook = open_notebook(
        [
            SETUP_CELL + f"llm = create_offline_agent(reply_function=lambda messages: {reply!r}, token_delay=0.05)",
            'llm.inquire("hi")',
        ]
    )
    recording = notebook.record(MARKDOWN_SNAPSHOT.format(output=notebook.output_js(1)))
    notebook.run_all()
    done = notebook.output(1).locator(".miniagents-message[data-status=done]")
    done.wait_for(timeout=30_000)
    samples = [sample["value"] for sample in recording.stop()]

    streaming = [sample for sample in samples if sample["status"] == "streaming" and sample["length"] > 0]
    assert len({sample["strong"] for sample in streaming}) >= 3, f"markdown did not grow while streaming: {samples}"
    assert not any(sample["monospace"] for sample in samples), "the text was shown in a monospace block"
    final = samples[-1]
    assert (final["strong"], final["lineBreaks"]) == (12, 11)  # one block of 12 lines: the line breaks are kept
    assert all(sample["strong"] <= final["strong"] for sample in samples)  # it only grew: no jump at the end
    assert done.locator(".miniagents-message-body").inner_text().strip() == reply.replace("**", "")
