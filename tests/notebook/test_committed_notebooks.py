"""
Committed notebooks read without a kernel (SPEC 5.7; issue 13): no saved widget state, every widget output
with its final static form. The test command strips widget state from a committed notebook that carries it
(`notebooks/saved_outputs.py`) and fails, so the stripped file gets committed; what stripping cannot fix
(a static form caught mid-stream) fails with the notebook and cell named.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
VIEW = {"model_id": "0123abcd", "version_major": 2, "version_minor": 0}
FINAL_HTML = '<div class="miniagents-stream" data-status="done"><div class="miniagents-message" data-status="done">'


def _load_saved_outputs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("saved_outputs", NOTEBOOKS / "saved_outputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


saved_outputs = _load_saved_outputs()


def _notebook(*outputs: dict[str, Any], widgets: bool = False) -> dict[str, Any]:
    cell = {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": list(outputs), "source": "x"}
    metadata: dict[str, Any] = {"kernelspec": {"name": "python3"}}
    if widgets:
        metadata["widgets"] = {saved_outputs.WIDGET_STATE: {"state": {}, "version_major": 2, "version_minor": 0}}
    return {"cells": [cell], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


def _display(**data: Any) -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {}, "data": data}


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda path: path.name)
def test_committed_notebook_carries_no_widget_state_and_final_static_forms(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    stripped = saved_outputs.strip_widget_state(notebook)
    if stripped:
        saved_outputs.write_notebook(path, notebook)

    assert not stripped, f"{path.name} carried widget state: stripped it now, commit the stripped file"
    assert saved_outputs.problems(notebook) == []


def test_saved_widget_state_is_reported_and_stripped() -> None:
    notebook = _notebook(_display(**{"text/plain": "A", "text/html": FINAL_HTML, saved_outputs.WIDGET_VIEW: VIEW}))
    notebook["metadata"]["widgets"] = {"state": {}}

    assert saved_outputs.problems(notebook) == [
        "metadata.widgets: saved widget state (strip it)",
        "code cell 1: a widget view next to its static form (strip it)",
    ]
    assert saved_outputs.strip_widget_state(notebook) is True
    assert saved_outputs.problems(notebook) == []
    assert notebook["cells"][0]["outputs"][0]["data"] == {"text/plain": "A", "text/html": FINAL_HTML}
    assert "widgets" not in notebook["metadata"]


def test_widget_output_without_a_static_form_is_reported_and_kept() -> None:
    notebook = _notebook(_display(**{"text/plain": "MessageTree()", saved_outputs.WIDGET_VIEW: VIEW}))

    assert saved_outputs.strip_widget_state(notebook) is False  # dropping the view would lose the output
    assert saved_outputs.problems(notebook) == ["code cell 1: a widget output without a text/html static form"]


@pytest.mark.parametrize(
    ("html", "status"),
    [
        ('<style>x</style><div class="miniagents-stream" data-status="streaming"></div>', "streaming"),
        ('<div class="miniagents-call" data-agent="A" data-status="running"><details open>', "running"),
        ('<div class="miniagents-call" data-agent="A" data-status="pending">', "pending"),
    ],
)
def test_static_form_caught_before_the_widget_was_quiet_is_reported(html: str, status: str) -> None:
    notebook = _notebook(_display(**{"text/plain": "...", "text/html": html}))

    assert saved_outputs.problems(notebook) == [
        f"code cell 1: a static form that is not final (data-status={status!r})"
    ]


def test_model_text_that_mentions_a_status_is_not_mistaken_for_one() -> None:
    text = "&lt;div class=&quot;miniagents-stream&quot; data-status=&quot;streaming&quot;&gt;"
    notebook = _notebook(_display(**{"text/plain": "x", "text/html": f"{FINAL_HTML}<p>{text}</p></div></div>"}))

    assert saved_outputs.problems(notebook) == []
