"""
A batch run's progress in a real JupyterLab and Notebook 7 (SPEC 5.9; issue 13, acceptance 4): `await mn.amap(...)`
shows a live widget whose counts grow while the batch runs, and ends as its final static summary (totals, the
failed inputs with their errors, shown as text: an HTML payload in an error runs nothing). The summary and the
live view read in the light and the dark theme; screenshots land in test-artifacts/browser/ (batch-light.png,
batch-dark.png, batch-running-light.png, batch-running-dark.png).

DOM read here: `.miniagents-batch[data-status=running|done|interrupted]` > `.miniagents-batch-bar[aria-valuenow]`,
`.miniagents-batch-counts`, `.miniagents-batch-tokens`, `.miniagents-batch-failures li` (`.miniagents-batch-input`,
`.miniagents-batch-error`); the live view alone has `.miniagents-batch-stats` (rate, ETA, elapsed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from .lab_server import LabServer
from .notebook_page import NotebookPage
from .test_saved_notebooks_in_browser import CONTRAST, widget_screenshot
from .test_widgets_in_browser import SETUP_CELL

pytestmark = pytest.mark.timeout(300)  # the first test of a run also builds the venv and starts JupyterLab

OpenNotebook = Callable[..., NotebookPage]
PAYLOAD = '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=1</script>'

AGENTS_CELL = (
    SETUP_CELL
    + f"PAYLOAD = {PAYLOAD!r}\n"
    + """
llm = create_offline_agent(reply_function=lambda messages: "summary of " + str(messages[-1]))
release = asyncio.Event()


@miniagent
async def summarizer(ctx: InteractionContext, pace: float = 0.0) -> None:
    [message] = await ctx.messages.aresolve_messages()
    if pace:
        await asyncio.sleep(pace)  # the workload: each call takes a while, so the batch takes a few seconds
    elif not message.text.startswith("quick"):
        await release.wait()  # held until a later cell releases it: the batch stays running meanwhile
    if message.text.endswith("7"):
        raise ValueError(f"cannot summarize {message.text}: {PAYLOAD}")
    ctx.reply(llm.inquire(message))
"""
)

BATCH_SNAPSHOT = """() => {{
    const root = {output}?.querySelector('.miniagents-batch');
    if (!root) return null;
    return {{
        view: root.querySelector('.miniagents-batch-stats') ? 'live' : 'static',
        status: root.dataset.status ?? null,
        finished: Number(root.querySelector('.miniagents-batch-bar')?.getAttribute('aria-valuenow') ?? -1),
        failures: root.querySelectorAll('.miniagents-batch-failures li:not(.miniagents-batch-more)').length,
    }};
}}"""


def batch_root(notebook: NotebookPage, cell: int, status: str) -> Any:
    return notebook.output(cell).locator(f'.miniagents-batch[data-status="{status}"]')


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_batch_progress_updates_live_and_ends_at_the_final_summary(open_notebook: OpenNotebook, ui: str) -> None:
    inputs = [f"doc {i}" for i in range(30)]
    notebook = open_notebook(
        [AGENTS_CELL, f"df = await mn.amap(summarizer, {inputs!r}, concurrency=3, pace=0.2)\ndf.shape"], ui
    )
    notebook.run_cell(0)
    notebook.wait_executed(0)
    recording = notebook.record(BATCH_SNAPSHOT.format(output=notebook.output_js(1)))
    notebook.run_cell(1)
    notebook.wait_executed(1, timeout_ms=60_000)
    final = batch_root(notebook, 1, "done")
    final.wait_for()
    samples = [sample["value"] for sample in recording.stop() if sample["value"] is not None]
    notebook.screenshot(focus=notebook.output(1))

    live_counts = [sample["finished"] for sample in samples if sample["view"] == "live"]
    distinct_live_counts = sorted(set(live_counts))
    assert len(distinct_live_counts) >= 3, f"the progress did not update live: {samples}"
    assert live_counts == sorted(live_counts), f"the progress went backwards: {live_counts}"
    assert samples[-1] == {"view": "static", "status": "done", "finished": 30, "failures": 3}
    assert final.locator(".miniagents-batch-counts").inner_text() == "27 done, 3 failed (of 30)"
    assert final.locator(".miniagents-batch-tokens").inner_text().startswith("tokens: ")
    errors = final.locator(".miniagents-batch-error").all_inner_texts()
    assert errors[0] == f"ValueError: cannot summarize doc 7: {PAYLOAD}"  # shown as text...
    assert notebook.page.evaluate("() => typeof window.__pwned") == "undefined"  # ...and nothing of it ran
    assert final.locator("img, script").count() == 0
    assert [text.strip() for text in final.locator(".miniagents-batch-input").all_inner_texts()] == [
        "'doc 7'",
        "'doc 17'",
        "'doc 27'",
    ]
    assert notebook.text_output(1).endswith("(30, 7)")  # the DataFrame: 30 rows
    assert "Error displaying widget" not in notebook.output(1).inner_text()


# what is read in the batch widget, live and final, and the contrast it needs (WCAG AA: 4.5 text, 3 details)
READ_IN_BOTH_THEMES = [
    (".miniagents-batch-agent", 4.5),
    (".miniagents-batch-status", 4.5),
    (".miniagents-batch-counts", 4.5),
    (".miniagents-batch-tokens", 3.0),
    (".miniagents-batch-error", 4.5),
    (".miniagents-batch-input", 4.5),
    (".miniagents-batch-index", 3.0),
]


def contrasts(notebook: NotebookPage, cell: int) -> dict[str, float]:
    batch = notebook.output(cell).locator(".miniagents-batch")
    return {
        selector: batch.locator(selector).first.evaluate(CONTRAST)["contrast"] for selector, _ in READ_IN_BOTH_THEMES
    }


def test_batch_live_view_and_summary_read_in_light_and_dark_themes(
    open_notebook: OpenNotebook, lab_server: LabServer
) -> None:
    # the widget's files ship in the wheel the server runs (widgets/ is force-included as miniagents/notebook/widgets)
    shipped = lab_server.venv.site_packages / "miniagents" / "notebook" / "widgets"
    assert (shipped / "batch.js").is_file() and ".miniagents-batch-bar" in (shipped / "messages.css").read_text()
    inputs = [*(f"quick {i}" for i in range(9)), *(f"held {i}" for i in range(6))]
    notebook = open_notebook(
        [
            AGENTS_CELL,
            f"batch = asyncio.ensure_future(mn.amap(summarizer, {inputs!r}, concurrency=3))",
            "release.set()\ndf = await batch",
        ]
    )
    notebook.run_cell(0)
    notebook.run_cell(1)
    notebook.wait_executed(1)
    running = batch_root(notebook, 1, "running")
    notebook.page.wait_for_function(f"() => ({BATCH_SNAPSHOT.format(output=notebook.output_js(1))})()?.finished >= 9")
    stats = running.locator(".miniagents-batch-stats").inner_text()
    assert re.fullmatch(r"[\d.]+/s · ETA \S+ · elapsed \d+s", stats), stats  # rate, ETA and elapsed, live only
    assert running.locator(".miniagents-batch-counts").inner_text() == "9 / 15 · 8 done · 1 failed · 3 running"
    readings: dict[str, dict[str, float]] = {}
    try:
        for theme, label in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
            notebook.set_theme(theme)
            widget_screenshot(notebook, notebook.output(1), f"batch-running-{label}")
            readings[f"running {label}"] = contrasts(notebook, 1)
        notebook.set_theme("JupyterLab Light")
        notebook.run_cell(2)
        notebook.wait_executed(2)
        batch_root(notebook, 1, "done").wait_for()
        for theme, label in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
            notebook.set_theme(theme)
            widget_screenshot(notebook, notebook.output(1), f"batch-{label}")
            readings[f"final {label}"] = contrasts(notebook, 1)
        final_counts = batch_root(notebook, 1, "done").locator(".miniagents-batch-counts").inner_text()
    finally:
        notebook.set_theme("JupyterLab Light")  # the theme is a user setting: the next tests start light

    assert final_counts == "14 done, 1 failed (of 15)"
    needed = dict(READ_IN_BOTH_THEMES)
    too_faint = {
        f"{when} {selector}": round(contrast, 2)
        for when, values in readings.items()
        for selector, contrast in values.items()
        if contrast < needed[selector]
    }
    assert too_faint == {}
