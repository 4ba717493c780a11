"""
Driving one notebook in JupyterLab through Playwright: write the .ipynb, open it, run cells with Lab's own
commands, read prompts, outputs and errors, record how a part of the DOM changes over time, screenshot.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .lab_server import LabServer
from .wheel_venv import PROJECT_ROOT

if TYPE_CHECKING:  # imported lazily so the suite can skip cleanly where Playwright is not installed
    from playwright.sync_api import Locator, Page

ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts" / "browser"
KERNEL_READY_TIMEOUT_MS = 60_000
CELL_TIMEOUT_MS = 30_000
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# The notebook panel Lab shows, reached through window.jupyterapp (the server runs with expose_app_in_browser).
_PANEL_JS = "window.jupyterapp && window.jupyterapp.shell.currentWidget"


class CellError(AssertionError):
    """A cell raised in the kernel; the message holds the exception and its traceback."""


def write_notebook(path: Path, cells: list[str]) -> Path:
    """Write a v4 notebook of code cells with no outputs, for the python3 kernel."""
    notebook = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {}, "outputs": [],
             "source": source}
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    path.write_text(json.dumps(notebook, indent=1))
    return path


@dataclass
class NotebookPage:
    """One open notebook: cells are addressed by their 0-based index."""

    page: Page
    server: LabServer
    name: str
    panel_id: str  # the DOM id of this notebook's panel: every selector is scoped to it
    artifact_name: str  # screenshots are test-artifacts/browser/<artifact_name>[-<label>].png
    ui: str = "lab"  # "lab" (JupyterLab) or "notebook" (Notebook 7)

    @classmethod
    def open(cls, page: Page, server: LabServer, test_name: str, cells: list[str], ui: str = "lab") -> NotebookPage:
        """
        Write a notebook for `test_name` into the server's root, open it in `ui` ("lab" or "notebook"),
        wait for an idle kernel.
        """
        artifact_name = _safe_name(test_name)
        name = f"{artifact_name}-{secrets.token_hex(3)}"
        write_notebook(server.root_dir / f"{name}.ipynb", cells)
        notebook = cls(page, server, name, "", artifact_name, ui)
        notebook.panel_id = notebook._goto(len(cells))
        return notebook

    def _goto(self, cells: int) -> str:
        """Load this notebook's page, wait for its panel with `cells` cells and an idle kernel; its DOM id."""
        self.page.goto(self.server.url_for(self.ui, f"{self.name}.ipynb"), wait_until="domcontentloaded")
        handle = self.page.wait_for_function(
            f"""() => {{
                const panel = {_PANEL_JS};
                const kernel = panel && panel.sessionContext && panel.sessionContext.session
                    && panel.sessionContext.session.kernel;
                const ready = !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle'
                    && panel.context.path === '{self.name}.ipynb' && panel.content.widgets.length === {cells};
                return ready ? panel.id : false;
            }}""",
            timeout=KERNEL_READY_TIMEOUT_MS,
        )
        return str(handle.json_value())

    # ------------------------------------------------------------------ the document
    def save(self) -> None:
        """Save the notebook (as File > Save does) and wait until the file on disk holds it."""
        self.page.evaluate(
            f"""async () => {{
                const panel = {_PANEL_JS};
                await panel.context.save();
            }}"""
        )

    def saved_notebook(self) -> dict[str, Any]:
        """The notebook file as saved on disk (nbformat JSON)."""
        return json.loads((self.server.root_dir / f"{self.name}.ipynb").read_text())

    def reopen(self) -> None:
        """
        Shut the notebook's kernel down (its widget models are gone with it), then load the page again, as
        a reader opening the saved notebook later: the saved outputs are shown, nothing is run.
        """
        cells = self.cell_count()
        self.server.shut_down_sessions()
        self.panel_id = self._goto(cells)

    def set_theme(self, theme: str) -> None:
        """Switch the UI's theme ("JupyterLab Light" or "JupyterLab Dark") and wait until it applies."""
        self.page.evaluate("(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", theme)
        light = "true" if "Light" in theme else "false"
        # (JupyterLab covers the page with its splash screen while the theme's CSS loads)
        self.page.wait_for_function(
            f"() => document.body.dataset.jpThemeLight === '{light}' && !document.querySelector('#jupyterlab-splash')"
        )

    @property
    def cells_selector(self) -> str:
        return f"#{self.panel_id} .jp-Notebook .jp-Cell"

    # ------------------------------------------------------------------ running
    def run_all(self) -> None:
        """Queue every cell for execution, as Run > Run All Cells does."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    def run_cell(self, index: int) -> None:
        """Queue one cell for execution, as Shift+Enter on it does (without moving on)."""
        self.page.evaluate(
            f"""(index) => {{
                const panel = {_PANEL_JS};
                panel.content.activeCellIndex = index;
                return window.jupyterapp.commands.execute('notebook:run-cell');
            }}""",
            index,
        )

    def wait_executed(self, index: int, timeout_ms: int = CELL_TIMEOUT_MS) -> int:
        """Wait until cell `index` shows a finished prompt `[n]:`, check it did not raise, and return n."""
        handle = self.page.wait_for_function(
            """([selector, index]) => {
                const prompt = document.querySelectorAll(selector)[index]
                    ?.querySelector('.jp-InputArea-prompt')?.textContent?.trim() ?? '';
                const match = /^\\[(\\d+)\\]:$/.exec(prompt);
                return match ? Number(match[1]) : false;
            }""",
            arg=[self.cells_selector, index],
            timeout=timeout_ms,
        )
        self.raise_on_error(index)
        return int(handle.json_value())

    def run_all_and_wait(self, timeout_ms: int = CELL_TIMEOUT_MS) -> None:
        self.run_all()
        for index in range(self.cell_count()):
            self.wait_executed(index, timeout_ms)

    # ------------------------------------------------------------------ reading
    def cell_count(self) -> int:
        return self.page.locator(self.cells_selector).count()

    def cell(self, index: int) -> Locator:
        return self.page.locator(self.cells_selector).nth(index)

    def output(self, index: int) -> Locator:
        return self.cell(index).locator(".jp-OutputArea")

    def prompt(self, index: int) -> str:
        return self.cell(index).locator(".jp-InputArea-prompt").inner_text().strip()

    def prompt_js(self, index: int) -> str:
        """A JS expression for cell `index`'s prompt text ('[ ]:', '[*]:', '[3]:'), for use in `record`."""
        return (
            f"(document.querySelectorAll({json.dumps(self.cells_selector)})[{index}]"
            "?.querySelector('.jp-InputArea-prompt')?.textContent?.trim() ?? null)"
        )

    def output_js(self, index: int) -> str:
        """A JS expression for cell `index`'s output area element (or null), for use in `record`."""
        return (
            f"(document.querySelectorAll({json.dumps(self.cells_selector)})[{index}]"
            "?.querySelector('.jp-OutputArea') ?? null)"
        )

    def outputs_json(self, index: int) -> list[dict[str, Any]]:
        """The cell's outputs as Lab's model holds them (nbformat JSON)."""
        return self.page.evaluate(f"(index) => {_PANEL_JS}.content.model.cells.get(index).outputs.toJSON()", index)

    def raise_on_error(self, index: int) -> None:
        """Raise CellError with the kernel's traceback if cell `index` has an error output."""
        for output in self.outputs_json(index):
            if output.get("output_type") == "error":
                traceback = _ANSI.sub("", "\n".join(output.get("traceback", [])))
                raise CellError(
                    f"cell {index} raised {output.get('ename')}: {output.get('evalue')}\n{traceback[-3000:]}"
                )

    def text_output(self, index: int) -> str:
        """Everything the cell printed or returned as text/plain, joined."""
        parts: list[str] = []
        for output in self.outputs_json(index):
            if output.get("output_type") == "stream":
                parts.append(_joined(output.get("text", "")))
            elif "data" in output:
                parts.append(_joined(output["data"].get("text/plain", "")))
        return "".join(parts)

    # ------------------------------------------------------------------ evidence
    def screenshot(self, label: str | None = None, focus: Locator | None = None) -> Path:
        """
        Save the page as test-artifacts/browser/<test>[-<label>].png and return the path; `focus` is
        scrolled into view first (the notebook scrolls inside the page, so a full-page shot would not).
        """
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        if focus is not None:
            focus.scroll_into_view_if_needed()
        path = ARTIFACTS_DIR / f"{self.artifact_name}{f'-{label}' if label else ''}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def record(self, snapshot_js: str) -> DomRecording:
        """
        Start recording `snapshot_js` (a JS arrow function returning JSON-able data) after every DOM change
        in the page, keeping each distinct consecutive value with its time. Mutation-driven, not polled.
        """
        self.page.evaluate(
            """(source) => {
                const snapshot = new Function(`return (${source});`)();
                const samples = [];
                let last = null;
                const take = () => {
                    const value = snapshot();
                    const key = JSON.stringify(value);
                    if (key !== last) { last = key; samples.push({t: performance.now(), value}); }
                };
                const observer = new MutationObserver(take);
                observer.observe(document.body, {subtree: true, childList: true, characterData: true,
                                                 attributes: true});
                take();
                window.__miniagentsRecording = {samples, observer, take};
            }""",
            snapshot_js,
        )
        return DomRecording(self.page)


@dataclass
class DomRecording:
    """A recording started by NotebookPage.record; `stop()` returns the samples as [{t, value}, ...]."""

    page: Page

    def stop(self) -> list[dict[str, Any]]:
        return self.page.evaluate(
            """() => {
                const recording = window.__miniagentsRecording;
                recording.take();
                recording.observer.disconnect();
                return recording.samples;
            }"""
        )


def _safe_name(name: str) -> str:
    """`test_x[param]` -> `test_x-param`: usable in a file name and a URL path."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


def _joined(text: str | list[str]) -> str:
    return text if isinstance(text, str) else "".join(text)
