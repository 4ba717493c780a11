"""
The message tree in a real JupyterLab and Chromium (issue 13): a forwarded reply shows in full once, with
references at the forwarding levels that lead to it; a collapsed call with a failure below it says so; the
durations survive a page reload; light and dark screenshots (test-artifacts/browser/tree-light.png and
tree-dark.png).

DOM read here (see widgets/tree.js): `.miniagents-call[data-agent][data-status][data-failed-inside]`, its
`summary` with `.miniagents-call-failed-inside` and `.miniagents-call-meta`, `.miniagents-home` (a message in
full) and `.miniagents-reference` (a link to it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from .notebook_page import ARTIFACTS_DIR, NotebookPage

if TYPE_CHECKING:
    from playwright.sync_api import Locator

pytestmark = pytest.mark.timeout(300)  # the first test of a run also builds the venv and starts JupyterLab

OpenNotebook = Callable[[list[str]], NotebookPage]

ANSWER = "the one long answer of the model"
AGENTS_CELL = f"""\
import asyncio

import miniagents.notebook as mn
from miniagents import InteractionContext, miniagent
from miniagents.ext.llm.offline import create_offline_agent

mn.activate()
llm = create_offline_agent(lambda messages: "{ANSWER} " * 12, token_delay=0.01)


@miniagent
async def checker(ctx: InteractionContext) -> None:
    await asyncio.sleep(0.2)
    raise RuntimeError("the source is unreachable")


@miniagent
async def researcher(ctx: InteractionContext) -> None:
    ctx.reply(llm.inquire(ctx.messages))


release = asyncio.Event()


@miniagent
async def orchestrator(ctx: InteractionContext) -> None:
    ctx.reply(researcher.inquire(ctx.messages))  # forwards what the LLM replied to the researcher
    try:
        await checker.inquire().aresolve_messages()
    except RuntimeError:
        pass  # handled: the orchestrator finishes, with a failure inside it
    await release.wait()  # the run stays live (the widget view stays in the output) until the test ends it
"""
START_CELL = 'replies = orchestrator.inquire("tell me about printing")'
END_CELL = "release.set()\nawait replies.aresolve_messages()\nawait tree.aquiet()"


def _tree_notebook(open_notebook: OpenNotebook) -> NotebookPage:
    """The run under way: the LLM call and the failing checker are done, the orchestrator still runs."""
    notebook = open_notebook([AGENTS_CELL, "tree = mn.MessageTree()\ntree", START_CELL, END_CELL])
    for cell in range(3):
        notebook.run_cell(cell)
        notebook.wait_executed(cell)
    tree = notebook.output(1).locator(".miniagents-tree")
    tree.locator('.miniagents-call[data-agent="CHECKER"][data-status="failed"]').wait_for()
    tree.locator('.miniagents-call[data-agent="OFFLINE_LLM"][data-status="finished"]').wait_for()
    tree.locator('.miniagents-call[data-agent="RESEARCHER"][data-status="finished"]').wait_for()
    return notebook


def _end_run(notebook: NotebookPage) -> None:
    notebook.run_cell(3)
    notebook.wait_executed(3)


# collects the text of every element that gets the highlight class (it is taken off again after 1.5 s)
HIGHLIGHTS_JS = """() => {
    window.__highlights = [];
    new MutationObserver((changes) => {
        for (const change of changes) {
            const target = change.target;
            if (target.classList.contains('miniagents-highlight')) window.__highlights.push(target.textContent);
        }
    }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['class']});
}"""


def _call(notebook: NotebookPage, agent: str) -> Locator:
    return notebook.output(1).locator(f'.miniagents-tree .miniagents-call[data-agent="{agent}"]').first


def test_a_forwarded_reply_shows_once_with_references_that_lead_to_it(open_notebook: OpenNotebook) -> None:
    notebook = _tree_notebook(open_notebook)
    tree = notebook.output(1).locator(".miniagents-tree")

    in_full = tree.locator(".miniagents-home .miniagents-message", has_text=ANSWER)
    assert in_full.count() == 1
    assert in_full.first.evaluate("el => el.closest('.miniagents-call').dataset.agent") == "OFFLINE_LLM"
    references = tree.locator(".miniagents-reference", has_text="forwarded from")
    assert references.count() == 2  # (the question passed down shows once too: "↳ input of ORCHESTRATOR")
    assert tree.locator(".miniagents-reference", has_text="input of ORCHESTRATOR").count() == 2
    assert all(
        re.fullmatch(r"↳ forwarded from OFFLINE_LLM #[0-9a-f]{8}", text) for text in references.all_inner_texts()
    )

    _call(notebook, "RESEARCHER").locator(":scope > details > summary").click()  # collapse the level below
    notebook.page.evaluate(HIGHLIGHTS_JS)
    references.first.locator("a").click()  # the reference of the orchestrator opens the way back to the reply
    notebook.page.wait_for_function("() => window.__highlights.length > 0")
    highlighted = notebook.page.evaluate("() => window.__highlights")
    assert ANSWER in highlighted[0]
    _end_run(notebook)
    static = notebook.output(1).locator(".miniagents-tree")  # the final static form: the same, as plain HTML
    assert static.locator(".miniagents-home .miniagents-message", has_text=ANSWER).count() == 1
    assert static.locator(".miniagents-reference", has_text="forwarded from").count() == 2


def test_a_collapsed_call_shows_the_failure_inside_it(open_notebook: OpenNotebook) -> None:
    notebook = _tree_notebook(open_notebook)
    orchestrator = _call(notebook, "ORCHESTRATOR")
    orchestrator.locator(":scope > details > summary").click()

    assert orchestrator.evaluate("el => el.querySelector(':scope > details').open") is False
    mark = orchestrator.locator(":scope > details > summary .miniagents-call-failed-inside")
    assert mark.is_visible() and mark.inner_text() == "1 failed inside"
    assert orchestrator.get_attribute("data-status") == "running"  # (it waits for the test to end the run)
    assert orchestrator.get_attribute("data-failed-inside") == "1"
    notebook.screenshot("collapsed", focus=orchestrator)

    _end_run(notebook)  # the final static form says the same, collapsed with a click
    orchestrator = _call(notebook, "ORCHESTRATOR")
    assert orchestrator.get_attribute("data-status") == "finished"
    orchestrator.locator(":scope > details > summary").click()
    mark = orchestrator.locator(":scope > details > summary .miniagents-call-failed-inside")
    assert mark.is_visible() and mark.inner_text() == "1 failed inside"


def test_durations_survive_a_page_reload_and_the_tree_reads_in_light_and_dark(open_notebook: OpenNotebook) -> None:
    notebook = _tree_notebook(open_notebook)
    before = _call(notebook, "OFFLINE_LLM").locator(":scope > details > summary .miniagents-call-meta").inner_text()

    notebook.save()
    notebook.page.reload()  # the kernel lives on: the view is rebuilt from the widget model's synced state
    panel = notebook.page.wait_for_function(
        """() => {
            const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            return panel && panel.content && panel.content.widgets.length === 4 ? panel.id : false;
        }""",
        timeout=60_000,
    )
    notebook.panel_id = str(panel.json_value())
    after_meta = _call(notebook, "OFFLINE_LLM").locator(":scope > details > summary .miniagents-call-meta")
    # the view is built first, its times filled in when the synced state reaches it: wait for them
    expect(after_meta).to_have_text(re.compile(r"^[\d.]+ (ms|s)\b"), timeout=30_000)
    after = after_meta.inner_text()

    duration = re.match(r"([\d.]+) (ms|s)\b", after)
    assert duration is not None, after
    seconds = float(duration.group(1)) / (1000 if duration.group(2) == "ms" else 1)
    assert seconds >= 0.1, after  # twelve repetitions of 7 words, 0.01 s apart
    assert after.split(" · ")[0] == before.split(" · ")[0]
    assert "chunks" in after and "tokens:" in after

    tree = notebook.output(1).locator(".miniagents-tree")
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    for theme, name in (("JupyterLab Light", "tree-light.png"), ("JupyterLab Dark", "tree-dark.png")):
        notebook.set_theme(theme)
        tree.scroll_into_view_if_needed()
        tree.screenshot(path=str(ARTIFACTS_DIR / name))
    agent_name = _call(notebook, "ORCHESTRATOR").locator(".miniagents-call-agent").first
    colour = agent_name.evaluate("el => getComputedStyle(el).color")
    assert _luminance(colour) > 0.5, f"agent names are dark on the dark theme: {colour}"
    notebook.set_theme("JupyterLab Light")
    _end_run(notebook)


def _luminance(css_colour: str) -> float:
    red, green, blue = (int(part) / 255 for part in re.findall(r"\d+", css_colour)[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue
