"""
The timeline (SPEC 5.8, issue 13) in a real JupyterLab: bars appear while the calls run and grow on the page's
clock, nested under their caller; when the run is over the output holds the static SVG waterfall, every bar
finished or failed. Screenshots of the live and the final waterfall, light and dark, land in
test-artifacts/browser/ (timeline-live-light.png, timeline-live-dark.png, timeline-light.png, timeline-dark.png),
and the names and durations stay readable in the dark theme; in Notebook 7 too (timeline-notebook-*.png).

The DOM contract read here (live rows are divs, static rows SVG groups; both carry the same classes):
`.miniagents-timeline-row[data-agent][data-status=running|finished|failed][data-critical]`
> `.miniagents-timeline-label`, `.miniagents-timeline-bar`, `.miniagents-timeline-time`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .notebook_page import NotebookPage
from .test_saved_notebooks_in_browser import CONTRAST, widget_screenshot
from .test_widgets_in_browser import SETUP_CELL

pytestmark = pytest.mark.timeout(300)  # the first test of a run also builds the venv and starts JupyterLab

OpenNotebook = Callable[..., NotebookPage]
UIS = ["lab", "notebook"]

AGENTS_CELL = (
    SETUP_CELL
    + """
gate = asyncio.Event()


@miniagent
async def researcher(ctx: InteractionContext, topic: str) -> None:
    await gate.wait()
    ctx.reply(f"notes on {topic}")


@miniagent
async def fact_checker(ctx: InteractionContext) -> None:
    raise LookupError("no sources found")


@miniagent
async def lead(ctx: InteractionContext) -> None:
    ctx.reply([researcher.inquire(topic=topic) for topic in ("history", "methods", "open questions")])
    ctx.reply(fact_checker.inquire())
"""
)

FINISH_CELL = """\
gate.set()
try:
    await replies.aresolve_messages()
except LookupError:
    pass
await timeline.aquiet()
"""

ROWS = """() => {{
    const output = {output};
    return [...(output?.querySelectorAll('.miniagents-timeline-row') ?? [])].map(row => ({{
        agent: row.dataset?.agent ?? row.getAttribute('data-agent'),
        status: row.dataset?.status ?? row.getAttribute('data-status'),
        svg: row.tagName.toLowerCase() === 'g',
    }}));
}}"""

# the colour of SVG text is its fill
SVG_TEXT_CONTRAST = CONTRAST.replace("getComputedStyle(element).color", "getComputedStyle(element).fill")


@pytest.mark.parametrize("ui", UIS)
def test_timeline_bars_appear_grow_and_finish_then_the_output_holds_the_svg(
    open_notebook: OpenNotebook, ui: str
) -> None:
    notebook = open_notebook(
        [AGENTS_CELL, "timeline = mn.Timeline()\ntimeline", "replies = lead.inquire()", FINISH_CELL], ui
    )
    shot = "timeline" if ui == "lab" else f"timeline-{ui}"
    output = notebook.output(1)
    recording = notebook.record(ROWS.format(output=notebook.output_js(1)))
    for cell in (0, 1, 2):
        notebook.run_cell(cell)
        notebook.wait_executed(cell)

    # live: the lead and its researchers run (they wait at the gate), the fact checker failed at once
    output.locator('.miniagents-timeline-row[data-agent="RESEARCHER"][data-status="running"]').nth(2).wait_for()
    output.locator('.miniagents-timeline-row[data-agent="FACT_CHECKER"][data-status="failed"]').wait_for()
    lead_time = output.locator('.miniagents-timeline-row[data-agent="LEAD"] .miniagents-timeline-time')
    first = lead_time.text_content()
    live_title = output.locator('.miniagents-timeline-row[data-agent="LEAD"]').get_attribute("title") or ""
    notebook.page.wait_for_function(  # the running bar grows between the kernel's batches
        "([element, first]) => element.textContent !== first", arg=[lead_time.element_handle(), first]
    )
    try:
        for theme, label in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
            notebook.set_theme(theme)
            widget_screenshot(notebook, output, f"{shot}-live-{label}")
        live_label = output.locator(".miniagents-timeline-label").first.evaluate(CONTRAST)
    finally:
        notebook.set_theme("JupyterLab Light")

    notebook.run_cell(3)
    notebook.wait_executed(3)
    output.locator("svg.miniagents-timeline-svg").wait_for()
    samples = [sample["value"] for sample in recording.stop()]
    try:
        for theme, label in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
            notebook.set_theme(theme)
            widget_screenshot(notebook, output, f"{shot}-{label}")
        static_title = output.locator("svg .miniagents-timeline-row title").first.text_content() or ""
        static_label = output.locator("svg .miniagents-timeline-label").first.evaluate(SVG_TEXT_CONTRAST)
        static_time = output.locator("svg .miniagents-timeline-time").first.evaluate(SVG_TEXT_CONTRAST)
    finally:
        notebook.set_theme("JupyterLab Light")

    assert re.fullmatch(
        r"LEAD · running · \d+\.\d{3} s \(0\.000 s to \d+\.\d{3} s, running\) · critical path", live_title
    )
    assert re.fullmatch(r"LEAD · finished · \d+\.\d{3} s \(0\.000 s to \d+\.\d{3} s\) · critical path", static_title)
    live_rows = [row for sample in samples for row in sample if not row["svg"]]
    assert {"LEAD", "RESEARCHER", "FACT_CHECKER"} <= {row["agent"] for row in live_rows if row["status"]}
    assert any(row["status"] == "running" for row in live_rows)
    final = samples[-1]
    assert all(row["svg"] for row in final)
    assert [(row["agent"], row["status"]) for row in final] == [
        ("LEAD", "finished"),
        *[("RESEARCHER", "finished")] * 3,
        ("FACT_CHECKER", "failed"),
    ]
    assert live_label["contrast"] >= 4.5 and live_label["background"] < 0.3  # the dark theme's own background
    assert static_label["contrast"] >= 4.5 and static_time["contrast"] >= 3.0 and static_label["background"] < 0.3


def test_tree_has_a_timeline_tab_drawing_the_same_calls_live(open_notebook: OpenNotebook) -> None:
    finish = FINISH_CELL.replace("timeline.aquiet()", "tree.aquiet()")
    notebook = open_notebook([AGENTS_CELL, "tree = mn.show_tree()", "replies = lead.inquire()", finish])
    output = notebook.output(1)
    for cell in (0, 1, 2):
        notebook.run_cell(cell)
        notebook.wait_executed(cell)
    output.locator('.miniagents-call[data-agent="RESEARCHER"][data-status="running"]').nth(2).wait_for()
    tab = output.get_by_role("tab", name="Timeline")
    tab.click()
    rows = output.locator(".miniagents-timeline-row")
    rows.locator("xpath=self::*[@data-status='running' and @data-agent='RESEARCHER']").nth(2).wait_for()
    output.locator('.miniagents-timeline-row[data-agent="FACT_CHECKER"][data-status="failed"]').wait_for()
    widget_screenshot(notebook, output, "tree-timeline-tab")
    shown = rows.evaluate_all(
        "rows => rows.map(row => [row.dataset.agent, row.querySelector('.miniagents-timeline-label')"
        ".style.paddingLeft])"
    )
    tree_hidden = output.locator(".miniagents-tree").evaluate("tree => getComputedStyle(tree).display === 'none'")
    output.get_by_role("tab", name="Tree").click()
    tree_shown_again = output.locator(".miniagents-tree").evaluate("tree => getComputedStyle(tree).display !== 'none'")
    timeline_hidden = output.locator(".miniagents-timeline").evaluate("el => getComputedStyle(el).display === 'none'")

    notebook.run_cell(3)
    notebook.wait_executed(3)

    assert shown == [
        ["LEAD", "0px"],
        *[["RESEARCHER", "12px"]] * 3,
        ["FACT_CHECKER", "12px"],
    ]
    assert tree_hidden and tree_shown_again and timeline_hidden
