"""
An LLM agent's tool calls in a real JupyterLab (issue 11, acceptance 5): the offline stand-in asks for a Python
function tool and a MiniAgent tool at once; the tree shows both as calls nested under the LLM call, with their
arguments and results, live (the function tool waits on an event the test sets from a later cell, so the tree is
read while it runs); the reply's stream widget shows the tool calls and results as collapsed blocks that open on
a click, and an agent's ErrorMessage as an error block.

DOM contract read here, besides test_widgets_in_browser's: `.miniagents-message[data-kind=tool-calls|tool-result
|error]`, `details.miniagents-tool-call` / `details.miniagents-tool-result` > summary (`.miniagents-tool-tag`,
`.miniagents-tool-summary`, `.miniagents-tool-preview`), `.miniagents-tool-detail` (the whole arguments),
`.miniagents-error-block` > `.miniagents-error-class` + `.miniagents-error-text`.
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

SETUP_CELL = '''\
import asyncio

import miniagents.notebook as mn
from miniagents import InteractionContext, miniagent
from miniagents.ext.llm.offline import OfflineModel, OfflineReply, OfflineToolCall, create_offline_agent

mn.activate()
gate = asyncio.Event()  # the function tool waits for it: the test reads the tree while the tool runs


async def lookup(topic: str) -> str:
    """Look up papers on a topic."""
    await gate.wait()
    return f"3 papers on {topic}"


@miniagent
async def summarizer(ctx: InteractionContext) -> None:
    """Writes an overview of a topic."""
    ctx.reply("overview of " + str((await ctx.messages.aresolve_messages())[-1]))


@miniagent(errors_as_messages=True)
async def fragile(ctx: InteractionContext) -> None:
    raise LookupError("the index is <b>offline</b>")


model = OfflineModel(
    [
        OfflineReply(
            text="Let me look that up.",
            tool_calls=[
                OfflineToolCall("lookup", {"topic": "cephalopod arms"}),
                OfflineToolCall("SUMMARIZER", {"input": "octopus cognition"}),
            ],
        ),
        OfflineReply(text="Found **3 papers**."),
    ]
)
researcher = create_offline_agent(model, tools=[lookup, summarizer], alias="RESEARCHER", token_delay=0.02)
'''
TREE_CELL, REPLY_CELL, RELEASE_CELL, ERROR_CELL = 1, 2, 3, 4
CELLS = [
    SETUP_CELL,
    "tree = mn.MessageTree()\ntree",
    'reply = researcher.inquire("octopus cognition")\nreply',
    "gate.set()",
    'fragile.inquire("anything")',
]

# What a call node shows itself (not its nested calls): parent, summary line, and its input / replies sections.
OWN_VIEW = """node => {
    const own = (selector) => [...node.querySelectorAll(selector)]
        .filter(el => el.closest('.miniagents-call') === node);
    const section = (title) => own('.miniagents-call-section').find(el =>
        el.querySelector('.miniagents-call-section-title')?.textContent === title);
    return {
        parent: node.parentElement?.closest('.miniagents-call')?.dataset.agent ?? null,
        summary: own('summary')[0]?.textContent ?? '',
        input: section('input')?.textContent ?? '',
        replies: section('replies')?.textContent ?? '',
        toolCalls: own('.miniagents-tool-call .miniagents-tool-summary').map(el => el.textContent),
        toolResults: own('.miniagents-tool-result > summary').map(el => [
            el.querySelector('.miniagents-tool-summary')?.textContent,
            el.querySelector('.miniagents-tool-preview')?.textContent,
        ]),
    };
}"""


def call_node(notebook: NotebookPage, agent: str, status: str | None = None) -> Locator:
    status_filter = f'[data-status="{status}"]' if status else ""
    return notebook.output(TREE_CELL).locator(f'.miniagents-tree .miniagents-call[data-agent="{agent}"]{status_filter}')


def own_view(node: Locator) -> dict[str, Any]:
    return node.evaluate(OWN_VIEW)


def test_tool_calls_show_nested_under_the_llm_call_live_and_collapsed_in_the_reply(
    open_notebook: OpenNotebook,
) -> None:
    notebook = open_notebook(CELLS)
    for cell in (0, TREE_CELL, REPLY_CELL):
        notebook.run_cell(cell)
        notebook.wait_executed(cell)

    # ---- while the function tool runs (it waits for the gate)
    lookup = call_node(notebook, "lookup", "running")
    lookup.wait_for()
    summarizer = call_node(notebook, "SUMMARIZER", "finished")
    summarizer.wait_for()
    summarizer.locator(".miniagents-call-section", has_text="overview of octopus cognition").wait_for()
    researcher = call_node(notebook, "RESEARCHER", "running")
    researcher.locator(".miniagents-tool-result", has_text="overview of octopus cognition").wait_for()
    notebook.screenshot("tool-running", focus=notebook.output(TREE_CELL))

    running = own_view(lookup)
    assert running["parent"] == "RESEARCHER"
    assert "cephalopod arms" in running["summary"], f"the tool's arguments are not shown: {running}"
    assert "3 papers" not in running["replies"]
    done_summarizer = own_view(summarizer)
    assert done_summarizer["parent"] == "RESEARCHER"
    assert "octopus cognition" in done_summarizer["input"]
    assert "overview of octopus cognition" in done_summarizer["replies"]
    llm_call = own_view(researcher)
    assert llm_call["parent"] is None
    assert llm_call["toolCalls"] == ['lookup(topic="cephalopod arms")', 'SUMMARIZER(input="octopus cognition")']
    assert ["SUMMARIZER", "overview of octopus cognition"] in llm_call["toolResults"]

    # ---- the tool returns: its result reaches its node, the LLM call's replies and the model's answer
    notebook.run_cell(RELEASE_CELL)
    notebook.wait_executed(RELEASE_CELL)
    lookup = call_node(notebook, "lookup", "finished")
    lookup.wait_for()
    researcher = call_node(notebook, "RESEARCHER", "finished")
    researcher.wait_for(timeout=30_000)
    assert "3 papers on cephalopod arms" in own_view(lookup)["replies"]
    assert ["lookup", "3 papers on cephalopod arms"] in own_view(researcher)["toolResults"]
    notebook.screenshot("tree", focus=notebook.output(TREE_CELL))

    # ---- the reply's stream widget: compact, collapsed blocks that open on a click
    stream = notebook.output(REPLY_CELL).locator(".miniagents-stream")
    stream.locator(".miniagents-message[data-status=done]", has_text="Found 3 papers").wait_for(timeout=30_000)
    kinds = stream.locator(".miniagents-message").evaluate_all("blocks => blocks.map(b => b.dataset.kind ?? null)")
    assert kinds == ["tool-calls", "tool-result", "tool-result", None]
    assert stream.locator("details[open]").count() == 0, "tool blocks must start collapsed"
    visible = stream.inner_text()
    assert '"topic": "cephalopod arms"' not in visible  # the whole arguments only show once opened

    call = stream.locator("details.miniagents-tool-call").first
    detail = call.locator(".miniagents-tool-detail")
    assert not detail.is_visible()
    call.locator("summary").click()
    detail.wait_for(state="visible")
    assert call.evaluate("details => details.open") is True
    assert '"topic": "cephalopod arms"' in detail.inner_text()

    result = stream.locator("details.miniagents-tool-result", has_text="lookup")
    body = result.locator(".miniagents-message-body")
    assert not body.is_visible()
    result.locator("summary").click()
    body.wait_for(state="visible")
    assert body.inner_text().strip() == "3 papers on cephalopod arms"
    notebook.screenshot("expanded", focus=stream)

    # ---- an agent's error as a message: an error block, its text shown as text
    notebook.run_cell(ERROR_CELL)
    notebook.wait_executed(ERROR_CELL)
    error = notebook.output(ERROR_CELL).locator('.miniagents-message[data-kind="error"] .miniagents-error-block')
    error.wait_for()
    assert error.locator(".miniagents-error-class").inner_text() == "LookupError"
    assert error.locator(".miniagents-error-text").inner_text() == "the index is <b>offline</b>"
    assert error.locator("b").count() == 0
    colour = error.evaluate("el => getComputedStyle(el).color")
    assert colour != notebook.output(ERROR_CELL).evaluate("el => getComputedStyle(el).color"), "not styled as an error"
    notebook.screenshot(focus=notebook.output(REPLY_CELL))
