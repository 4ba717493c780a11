"""
The notebooks are executable documentation and regression tests: pytest runs every one of them with nbval
(`--nbval` in the `[tool.pytest.ini_options]` of pyproject.toml), executing each code cell in a fresh kernel of
this interpreter and comparing its outputs (`text/plain`, `text/html`, streams, errors) with those saved in the
notebook.

An output that genuinely cannot be compared may be excluded with a marker, and the marker needs a reason: a
comment line of its own in the same cell. This plugin reports, at the end of the run, per notebook and overall,
the fraction of code cells whose output is not compared (ignored, skipped, expected to raise, or never run), so
that this number stays small (the aim is under 20%).

Live widgets update their outputs after their cell has finished (a reply that ends streaming while later cells
run, a tree that fills with the calls of later cells; see `miniagents.notebook.widget_outputs`), and a saved
notebook holds those final outputs. nbval alone compares what a cell showed when it finished, so this plugin
also applies display updates the way nbclient (`nbconvert --execute`, which writes the saved outputs) applies
them: an `update_display_data` parented to the running cell replaces the outputs with its display id. A cell
with such outputs is compared once the whole notebook has run, by an extra item per notebook, "final displays".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nbval.plugin import IPyNbCell, IPyNbFile, find_comment_markers, find_metadata_tags

AIM = 0.20  # the fraction of code cells whose output is not compared should stay under this


@dataclass
class NotebookOutputCounts:
    """How a notebook's code cells are checked by nbval."""

    name: str
    code_cells: int = 0
    ignored: list[int] = field(default_factory=list)  # NBVAL_IGNORE_OUTPUT (cell numbers, counting code cells)
    skipped: list[int] = field(default_factory=list)  # NBVAL_SKIP
    raising: list[int] = field(default_factory=list)  # NBVAL_RAISES_EXCEPTION: the error name and value are compared
    unrun: list[int] = field(default_factory=list)  # no execution count: nbval has nothing to compare with
    without_reason: list[int] = field(default_factory=list)  # ignored or skipped with no explaining comment

    @property
    def not_compared(self) -> int:
        return len(self.ignored) + len(self.skipped) + len(self.raising) + len(self.unrun)

    @property
    def fraction(self) -> float:
        return self.not_compared / self.code_cells if self.code_cells else 0.0


def _markers(cell: dict[str, Any]) -> dict[str, Any]:
    """nbval's own reading of a cell's markers (comment lines and metadata tags): {option: value}."""
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return dict([*find_comment_markers(source), *find_metadata_tags(cell.get("metadata", {}))])


def _has_reason(cell: dict[str, Any]) -> bool:
    """Whether the cell has a comment line other than nbval's marker lines (the reason for the marker)."""
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    comments = [line.strip().lstrip("#").strip() for line in source.splitlines() if line.strip().startswith("#")]
    return any(comment and not comment.startswith(("NBVAL_", "PYTEST_VALIDATE_")) for comment in comments)


def count_outputs(path: Path, lax: bool = False) -> NotebookOutputCounts:
    """Count the code cells of the notebook at `path` whose output nbval does not compare (`lax`: --nbval-lax)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    counts = NotebookOutputCounts(path.name)
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        counts.code_cells += 1
        number = counts.code_cells
        markers = _markers(cell)
        if markers.get("skip"):
            counts.skipped.append(number)
        elif markers.get("check_exception"):
            counts.raising.append(number)
        elif cell.get("execution_count") is None:
            counts.unrun.append(number)
        elif markers.get("check") is False or (lax and not markers.get("check")):
            counts.ignored.append(number)
        if (markers.get("skip") or markers.get("check") is False) and not _has_reason(cell):
            counts.without_reason.append(number)
    return counts


_collected: set[Path] = set()


def pytest_itemcollected(item: pytest.Item) -> None:
    path = Path(str(item.fspath))
    if path.suffix == ".ipynb":
        _collected.add(path)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _collected:
        return
    lax = bool(getattr(config.option, "nbval_lax", False))
    rows = [count_outputs(path, lax) for path in sorted(_collected)]
    total = NotebookOutputCounts("overall")
    for row in rows:
        total.code_cells += row.code_cells
        for name in ("ignored", "skipped", "raising", "unrun", "without_reason"):
            getattr(total, name).extend(f"{row.name}:{number}" for number in getattr(row, name))
    write = terminalreporter.write_line
    terminalreporter.section("notebook outputs not compared by nbval")
    write(
        f"{'notebook':<28} {'code cells':>10} {'ignored':>8} {'skipped':>8} {'raises':>7} {'unrun':>6} {'fraction':>9}"
    )
    for row in [*rows, total]:
        write(
            f"{row.name:<28} {row.code_cells:>10} {len(row.ignored):>8} {len(row.skipped):>8} {len(row.raising):>7} "
            f"{len(row.unrun):>6} {row.fraction:>9.1%}"
        )
    verdict = "within" if total.fraction < AIM else "ABOVE"
    write(
        f"{total.not_compared} of {total.code_cells} code cells ({total.fraction:.1%}) are not compared: {verdict} "
        f"the aim of under {AIM:.0%}. ('raises' cells still compare the error's name and message.)"
    )
    if total.without_reason:
        write(f"markers without a reason comment in the cell: {', '.join(map(str, total.without_reason))}", red=True)


# ----------------------------------------------------------------------------- outputs updated after their cell


class NotebookDisplays:
    """
    One notebook's outputs that have a display id, kept current from the kernel's messages as nbclient keeps
    them, and the comparisons of cells that hold such outputs, deferred until the notebook has run.
    """

    def __init__(self, notebook: IPyNbFile) -> None:
        self.by_display_id: dict[str, list[Any]] = {}  # display id -> nbval's test outputs showing it
        self.running_msg_id: str | None = None
        self.running_cell: IPyNbCell | None = None
        self.appended_next: str | None = None  # a display id whose output nbval appends after this message
        self.deferred: list[tuple[IPyNbCell, list[Any], list[Any]]] = []
        self.updates_applied = 0
        self._get_message: Callable[..., Any] = notebook.get_kernel_message
        notebook.get_kernel_message = self.get_kernel_message

    def get_kernel_message(self, timeout: float | None = None, stream: str = "iopub") -> Any:
        """nbval's way of reading the kernel, seen through: display outputs are noted and updates applied."""
        if self.appended_next is not None and self.running_cell is not None:
            outputs = self.running_cell.test_outputs or []
            if outputs:
                self.by_display_id.setdefault(self.appended_next, []).append(outputs[-1])
            self.appended_next = None
        message = self._get_message(timeout=timeout, stream=stream)
        if stream == "iopub":
            self._observe(message)
        return message

    def _observe(self, message: dict[str, Any]) -> None:
        kind = message["msg_type"]
        parent = message["parent_header"].get("msg_id")
        if kind == "execute_input":
            self.running_msg_id = parent
            return
        if parent != self.running_msg_id:  # nbclient reads only the messages of the cell it runs
            return
        display_id = (message["content"].get("transient") or {}).get("display_id")
        if display_id is None:
            return
        if kind == "display_data":
            self.appended_next = display_id
        elif kind == "update_display_data":
            for output in self.by_display_id.get(display_id, []):
                output["data"] = dict(message["content"]["data"])
                output["metadata"] = dict(message["content"].get("metadata") or {})
                self.updates_applied += 1

    def run_cell(self, cell: IPyNbCell, runtest: Callable[[], None]) -> None:
        self.running_cell = cell
        runtest()

    def compare_or_defer(self, cell: IPyNbCell, compare: Callable[..., bool], test: list[Any], ref: list[Any]) -> bool:
        """Compare now, unless some of the cell's outputs may still be updated: then after the notebook ran."""
        shown = {id(output) for outputs in self.by_display_id.values() for output in outputs}
        if any(id(output) in shown for output in test):
            self.deferred.append((cell, test, ref))
            return True
        return compare(test, ref)


class FinalDisplaysItem(pytest.Item):
    """After the last cell of a notebook: its cells whose outputs were updated later, compared as saved."""

    def __init__(self, *, displays: NotebookDisplays, compares: dict[int, Callable[..., bool]], **kwargs: Any):
        super().__init__(**kwargs)
        self.displays = displays
        self.compares = compares

    def runtest(self) -> None:
        if not self.displays.deferred:
            pytest.skip("no output of this notebook is a display that later cells update")
        failures = []
        for cell, test, ref in self.displays.deferred:
            cell.comparison_traceback = []
            if not self.compares[id(cell)](test, ref):
                failures.append(f"Cell {cell.cell_num} (its final outputs):\n" + "\n".join(cell.comparison_traceback))
        if failures:
            raise AssertionError("\n\n".join(failures))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return f"outputs as saved (after display updates) differ:\n{excinfo.value}"

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, 0, f"{self.path.name}::final displays"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    last_cell_of: dict[IPyNbFile, IPyNbCell] = {}
    for item in items:
        if isinstance(item, IPyNbCell):
            last_cell_of[item.parent] = item
    for notebook, last_cell in last_cell_of.items():
        displays = NotebookDisplays(notebook)
        compares: dict[int, Callable[..., bool]] = {}
        for item in items:
            if isinstance(item, IPyNbCell) and item.parent is notebook:
                _watch_cell(item, displays, compares)
        final = FinalDisplaysItem.from_parent(notebook, name="final displays", displays=displays, compares=compares)
        items.insert(items.index(last_cell) + 1, final)


def _watch_cell(cell: IPyNbCell, displays: NotebookDisplays, compares: dict[int, Callable[..., bool]]) -> None:
    runtest, compare = cell.runtest, cell.compare_outputs
    compares[id(cell)] = compare
    cell.runtest = lambda: displays.run_cell(cell, runtest)
    cell.compare_outputs = lambda test, ref, skip_compare=None: displays.compare_or_defer(cell, compare, test, ref)
