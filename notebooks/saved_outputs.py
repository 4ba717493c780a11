"""
The committed notebooks are read without a kernel (GitHub, nbconvert, a reader opening them): they must carry
no widget state and show every widget by its final static form (SPEC 5.7).

    .venv/bin/python notebooks/saved_outputs.py            # strip widget state from notebooks/*.ipynb
    .venv/bin/python notebooks/saved_outputs.py --check    # only report (exit status 1 if any problem)

Stripping removes `metadata.widgets` (saved by nbclient or JupyterLab) and the widget view of every output
that also has its text/html form (without the model the view can only fail: "model not found"); the script also
drops the per-cell run timestamps nbclient records (`metadata.execution`), noise in every diff. What it
cannot fix is reported: a widget output without a text/html form, or a MiniAgents widget whose static form is
not final (still streaming or running: re-execute the notebook, see notebooks/README.md).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# A MiniAgents static form caught before its widget was quiet: a message still streaming, a call running.
_NOT_FINAL = re.compile(r'class="miniagents-[a-z-]+"[^>]*data-status="(streaming|running|pending)"')
NOTEBOOKS = Path(__file__).resolve().parent


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def problems(notebook: dict[str, Any]) -> list[str]:
    """What a reader without a kernel would miss in `notebook` (nbformat JSON), one line each."""
    found = []
    if "widgets" in notebook.get("metadata", {}):
        found.append("metadata.widgets: saved widget state (strip it)")
    code_cell = 0
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        code_cell += 1
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            where = f"code cell {code_cell}"
            if WIDGET_VIEW in data:
                if "text/html" in data:
                    found.append(f"{where}: a widget view next to its static form (strip it)")
                else:
                    found.append(f"{where}: a widget output without a text/html static form")
            match = _NOT_FINAL.search(_text(data.get("text/html", "")))
            if match:
                found.append(f"{where}: a static form that is not final (data-status={match.group(1)!r})")
    return found


def strip_widget_state(notebook: dict[str, Any]) -> bool:
    """Remove saved widget state and the views of outputs that have a static form; True if it changed."""
    changed = notebook.get("metadata", {}).pop("widgets", None) is not None
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                changed = True
            if WIDGET_STATE in data:
                del data[WIDGET_STATE]
                changed = True
    return changed


def strip_execution_timing(notebook: dict[str, Any]) -> bool:
    """Remove the run timestamps nbclient records per cell (noise in every diff); True if it changed."""
    changed = False
    for cell in notebook.get("cells", []):
        changed = cell.get("metadata", {}).pop("execution", None) is not None or changed
    return changed


def write_notebook(path: Path, notebook: dict[str, Any]) -> None:
    """Write a notebook as nbformat does (sorted keys, 1-space indent, non-ASCII kept, final newline)."""
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def main(arguments: list[str]) -> int:
    check_only = "--check" in arguments
    paths = [Path(a) for a in arguments if a != "--check"] or sorted(NOTEBOOKS.glob("*.ipynb"))
    failed = False
    for path in paths:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        if not check_only:
            stripped = strip_widget_state(notebook)
            if strip_execution_timing(notebook) or stripped:
                write_notebook(path, notebook)
            if stripped:
                print(f"{path}: widget state stripped")
        for problem in problems(notebook):
            failed = True
            print(f"{path}: {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
