"""
The notebooks are executable documentation and regression tests: pytest runs every one of them with nbval
(`--nbval` in the `[tool.pytest.ini_options]` of pyproject.toml), executing each code cell in a fresh kernel of
this interpreter and comparing its outputs (`text/plain`, `text/html`, streams, errors) with those saved in the
notebook.

An output that genuinely cannot be compared may be excluded with a marker, and the marker needs a reason: a
comment line of its own in the same cell. This plugin reports, at the end of the run, per notebook and overall,
the fraction of code cells whose output is not compared (ignored, skipped, expected to raise, or never run), so
that this number stays small (the aim is under 20%).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nbval.plugin import find_comment_markers, find_metadata_tags

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
        write(f"markers without a reason comment in the cell: {', '.join(total.without_reason)}", red=True)
