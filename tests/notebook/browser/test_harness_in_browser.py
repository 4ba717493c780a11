"""
The harness proves itself, independent of MiniAgents' widgets: an anywidget defined in a cell renders and
keeps updating from a background task after its cell finished, and the kernel runs the installed wheel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .lab_server import LabServer
from .notebook_page import NotebookPage
from .wheel_venv import PROJECT_ROOT

pytestmark = pytest.mark.timeout(300)  # the first test also builds the venv and starts JupyterLab

INLINE_COUNTER_CELL = '''
import asyncio

import anywidget
import traitlets


class Counter(anywidget.AnyWidget):
    _esm = """
    function render({ model, el }) {
      const span = document.createElement("span");
      span.className = "harness-counter";
      const update = () => { span.textContent = String(model.get("value")); };
      model.on("change:value", update);
      update();
      el.appendChild(span);
    }
    export default { render };
    """
    value = traitlets.Int(0).tag(sync=True)


counter = Counter()


async def count_up():
    for _ in range(5):
        await asyncio.sleep(0.25)
        counter.value += 1


task = asyncio.ensure_future(count_up())
counter
'''


def test_inline_anywidget_updates_after_cell_finished(open_notebook: Callable[[list[str]], NotebookPage]) -> None:
    notebook = open_notebook([INLINE_COUNTER_CELL])
    recording = notebook.record(
        f"() => [{notebook.prompt_js(0)}, document.querySelector('.harness-counter')?.textContent ?? null]"
    )
    notebook.run_all()
    notebook.wait_executed(0)
    notebook.page.locator(".harness-counter", has_text="5").wait_for()
    samples = [sample["value"] for sample in recording.stop()]

    values_after_finish = [int(value) for prompt, value in samples if prompt == "[1]:" and value is not None]
    assert values_after_finish[-1] == 5
    assert len(set(values_after_finish)) >= 3, f"widget did not update live after the cell finished: {samples}"
    notebook.screenshot()


def test_kernel_imports_miniagents_from_installed_wheel_not_source_tree(
    open_notebook: Callable[[list[str]], NotebookPage], lab_server: LabServer
) -> None:
    notebook = open_notebook(["import sys, miniagents\nprint(sys.prefix)\nprint(miniagents.__file__)"])
    notebook.run_all_and_wait()

    prefix, module_file = notebook.text_output(0).split()
    assert Path(prefix) == lab_server.venv.path
    assert Path(module_file).is_relative_to(lab_server.venv.path / "lib")
    assert not Path(module_file).is_relative_to(PROJECT_ROOT)
