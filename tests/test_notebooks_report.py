"""
The notebooks' bookkeeping: the report of cells whose output nbval does not compare (`notebooks/conftest.py`),
the rule that every excluded output says why, and the self-development example script, which replays the
recordings of notebook 09.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

PROJECT = Path(__file__).resolve().parents[1]
NOTEBOOKS = PROJECT / "notebooks"
SELF_DEV_SCRIPT = PROJECT / "examples" / "self_dev" / "self_dev.py"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebooks_report", NOTEBOOKS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _code_cell(source: str, executed: bool = True, tags: list[str] | None = None) -> dict:
    return {
        "cell_type": "code",
        "execution_count": 1 if executed else None,
        "metadata": {"tags": tags} if tags else {},
        "outputs": [],
        "source": source,
    }


def _write_notebook(path: Path, cells: list[dict]) -> Path:
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


def test_report_counts_each_kind_of_cell_whose_output_is_not_compared(report: ModuleType, tmp_path: Path) -> None:
    path = _write_notebook(
        tmp_path / "example.ipynb",
        [
            {"cell_type": "markdown", "metadata": {}, "source": "# not a code cell"},
            _code_cell("print('compared')"),
            _code_cell("# NBVAL_IGNORE_OUTPUT\n# the time of day differs on every run\nprint(now())"),
            _code_cell("# NBVAL_SKIP\nslow()"),
            _code_cell("raise ValueError('on purpose')", tags=["raises-exception"]),
            _code_cell("never_run()", executed=False),
            _code_cell("x = 1", tags=["nbval-ignore-output"]),
        ],
    )
    counts = report.count_outputs(path)
    assert counts.code_cells == 6
    assert (counts.ignored, counts.skipped, counts.raising, counts.unrun) == ([2, 6], [3], [4], [5])
    assert counts.without_reason == [3, 6]
    assert counts.fraction == pytest.approx(5 / 6)


def test_report_in_lax_mode_counts_every_cell_not_marked_for_checking(report: ModuleType, tmp_path: Path) -> None:
    path = _write_notebook(tmp_path / "lax.ipynb", [_code_cell("a()"), _code_cell("# NBVAL_CHECK_OUTPUT\nb()")])
    assert report.count_outputs(path, lax=True).ignored == [1]


def test_notebooks_compare_almost_every_output_and_say_why_when_they_do_not(report: ModuleType) -> None:
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert len(notebooks) >= 9
    counts = [report.count_outputs(path) for path in notebooks]
    assert [(each.name, each.without_reason) for each in counts if each.without_reason] == []
    assert [each.name for each in counts if each.unrun] == []
    not_compared = sum(each.not_compared for each in counts)
    assert not_compared / sum(each.code_cells for each in counts) < report.AIM


def _run_self_dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SELF_DEV_SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=PROJECT
    )


def test_self_dev_example_drafts_a_section_per_module_offline_by_default() -> None:
    result = _run_self_dev()
    assert result.returncode == 0, result.stderr
    assert "NOT a real model" in result.stderr
    assert "_Drafted by the offline stand-in LLM: a template, not a real model._" in result.stdout
    assert "## `miniagents.promising.sentinels`" in result.stdout
    assert "- constants: `NO_VALUE`, `DEFAULT`, `FAILED`, `END_OF_QUEUE`, `AWAIT`, `CLEAR`" in result.stdout


def test_self_dev_example_replays_the_recordings_of_notebook_09(tmp_path: Path) -> None:
    """The script sends exactly the notebook's requests, so the notebook's recordings answer all of them."""
    page = tmp_path / "promising.md"
    result = _run_self_dev("--llm", "replay", "--output", str(page))
    assert result.returncode == 0, result.stderr
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# ")
    modules = [path for path in (PROJECT / "miniagents" / "promising").rglob("*.py") if path.name != "__init__.py"]
    assert text.count("\n## `miniagents.promising.") == len(modules)  # one section per module
