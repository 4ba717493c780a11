"""
Batch runs in a notebook (SPEC 5.9): `await mn.amap(agent, inputs, concurrency=8, **kwargs)` runs the core's
`miniagents.batch.amap` and shows its progress live in the cell: done / failed / running, a progress bar, the
rate, the ETA, the providers' token usage, and the failed inputs with their errors.

The widget follows the core's `on_progress` / `on_row` hooks with O(1) work per row; its document reaches the
page as coalesced events (at most `max_updates_per_second` messages a second, however many rows finish), and
when the batch ends its output is updated with the final static form (counts, tokens, failures: no timings,
so it is deterministic), which is what a saved notebook shows without a kernel.

Interrupting the cell cancels the batch: the running calls are cancelled and no further input starts. The
rows finished until then are kept: the widget's final form says how many, and `mn.last_batch()` gives them
(`.rows`, `.dataframe()`).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Iterable
from typing import Any

from miniagents.batch import BatchProgress, BatchRow, rows_to_dataframe
from miniagents.batch import amap as core_amap
from miniagents.miniagent_typing import MessageType
from miniagents.miniagents import MiniAgent
from miniagents.notebook import assets
from miniagents.notebook.live_widget import LiveWidget
from miniagents.notebook.rendering import describe_error, escape, static_html
from miniagents.promising.ext.frozen import Frozen

MAX_FAILURES_SHOWN = 20  # failed rows listed (with input and error) in the widget and its static forms
_INPUT_CHARS = 80  # an input is shown by its repr, cut to this many characters


class _Summary:
    """The counts of the batch as one entity of the widget's document: `["summary", "summary", fields]`."""

    __slots__ = ("id", "widget")

    def __init__(self, widget: BatchProgressWidget) -> None:
        self.id = "summary"
        self.widget = widget

    def take_events(self) -> list[list[Any]]:
        return [["summary", self.id, self.widget.summary_fields()]]


class _Failure:
    """One failed row, as the widget lists it: `["failure", "f<index>", {index, input, error}]`."""

    __slots__ = ("error", "id", "index", "input")

    def __init__(self, row: BatchRow) -> None:
        self.id = f"f{row.index}"
        self.index = row.index
        self.input = describe_input(row.input)
        self.error = describe_error(row.error) if row.error is not None else ""

    def fields(self) -> dict[str, Any]:
        return {"id": self.id, "index": self.index, "input": self.input, "error": self.error}

    def take_events(self) -> list[list[Any]]:
        return [["failure", self.id, self.fields()]]


class BatchProgressWidget(LiveWidget):
    """
    The live progress of one batch run: counts, a bar, rate, ETA, token usage and the failed inputs. Made and
    shown by `mn.amap`; `rows` holds the rows finished so far (in input order), `dataframe()` the same as a
    pandas DataFrame.
    """

    _esm = assets.widget_module("batch.js")
    max_updates_per_second = 10.0  # a progress bar needs no more; 8,000 rows still make a handful of messages

    def __init__(self, agent: str, total: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.agent = agent
        self.progress = BatchProgress(total=total)
        self.status = "running"  # then "done", "interrupted" or "failed" (amap itself raised)
        self.error: str | None = None  # why amap raised, when it did
        self._rows: dict[int, BatchRow] = {}
        self._failures: list[_Failure] = []  # the first MAX_FAILURES_SHOWN failed rows, in finishing order
        self._summary = _Summary(self)
        self._mark_changed(self._summary)

    # ------------------------------------------------------------ following the batch

    def on_progress(self, progress: BatchProgress) -> None:
        """The core's `on_progress` hook: the counts changed."""
        self.progress = progress
        self._mark_changed(self._summary)

    def on_row(self, row: BatchRow) -> None:
        """The core's `on_row` hook: a row finished."""
        self._rows[row.index] = row
        if not row.ok and len(self._failures) < MAX_FAILURES_SHOWN:
            failure = _Failure(row)
            self._failures.append(failure)
            self._mark_changed(failure)

    def end(self, error: BaseException | None = None) -> None:
        """The batch ended (with `error` if amap raised): send the last counts and show the final static form."""
        if error is None:
            self.status = "done"
        elif isinstance(error, (asyncio.CancelledError, KeyboardInterrupt)):
            self.status = "interrupted"
        else:
            self.status = "failed"
            self.error = describe_error(error)
        self._mark_changed(self._summary)
        self._flush()  # now, while the cell still runs: the final form is what nbclient saves

    # ------------------------------------------------------------ reading

    @property
    def rows(self) -> list[BatchRow]:
        """The rows finished so far, in input order (all of them once the batch is done)."""
        return [self._rows[index] for index in sorted(self._rows)]

    def dataframe(self) -> Any:
        """`rows` as a pandas DataFrame (`miniagents.batch.rows_to_dataframe`); ImportError without pandas."""
        return rows_to_dataframe(self.rows)

    def summary_fields(self) -> dict[str, Any]:
        """The counts, rate, ETA and tokens as the front end shows them."""
        progress = self.progress
        eta = progress.eta_seconds
        return {
            "agent": self.agent,
            "status": self.status,
            "error": self.error,
            "total": progress.total,
            "done": progress.done,
            "failed": progress.failed,
            "running": progress.running,
            "input_tokens": progress.input_tokens,
            "output_tokens": progress.output_tokens,
            "elapsed": round(progress.elapsed, 3),
            "rate": round(progress.rate, 3),
            "eta": None if eta is None or self.status != "running" else round(eta, 3),
            "shown_failures": len(self._failures),
        }

    def _is_live(self) -> bool:
        return self.status == "running"

    def _snapshot(self) -> dict[str, Any]:
        return {
            **super()._snapshot(),
            "summary": self.summary_fields(),
            "failures": [failure.fields() for failure in self._failures],
        }

    # ------------------------------------------------------------ static forms (deterministic: no timings)

    def _headline(self) -> str:
        progress = self.progress
        finished = progress.finished
        counts = f"{_count(progress.done)} done, {_count(progress.failed)} failed"
        if self.status == "done":
            return f"{counts} (of {_count(progress.total)})"
        if self.status == "running":
            return f"running: {_count(finished)} of {_count(progress.total)} ({counts}, {progress.running} running)"
        ended = "interrupted" if self.status == "interrupted" else f"stopped by {self.error}"
        return f"{ended} after {_count(finished)} of {_count(progress.total)} ({counts}); the rows finished are kept"

    def _tokens_line(self) -> str:
        progress = self.progress
        return f"tokens: {_count(progress.input_tokens)} in, {_count(progress.output_tokens)} out"

    def _has_tokens(self) -> bool:
        """Whether any reply reported token usage (agents that call no model report none: no tokens line)."""
        return bool(self.progress.input_tokens or self.progress.output_tokens)

    def _more_failures(self) -> int:
        return self.progress.failed - len(self._failures)

    def to_text(self) -> str:
        lines = [f"{self.agent} over {_count(self.progress.total)} inputs: {self._headline()}"]
        if self._has_tokens():
            lines.append(self._tokens_line())
        if self._failures:
            lines.append("failed:")
            lines.extend(f"  [{failure.index}] {failure.input}: {failure.error}" for failure in self._failures)
            if self._more_failures() > 0:
                lines.append(f"  ... and {_count(self._more_failures())} more")
        return "\n".join(lines)

    def to_html(self) -> str:
        progress = self.progress
        total = max(progress.total, 1)
        done_width = f"{100 * progress.done / total:.1f}%"
        failed_width = f"{100 * progress.failed / total:.1f}%"
        parts = [
            '<div class="miniagents-batch-header">',
            f'<span class="miniagents-batch-agent">{escape(self.agent)}</span>',
            f'<span class="miniagents-batch-inputs">over {_count(progress.total)} inputs</span>',
            f'<span class="miniagents-batch-status">{escape(self.status)}</span>',
            "</div>",
            f'<div class="miniagents-batch-bar" role="progressbar" aria-valuemin="0" '
            f'aria-valuemax="{progress.total}" aria-valuenow="{progress.finished}">'
            f'<div class="miniagents-batch-bar-done" style="width:{done_width}"></div>'
            f'<div class="miniagents-batch-bar-failed" style="width:{failed_width}"></div></div>',
            f'<div class="miniagents-batch-counts">{escape(self._headline())}</div>',
        ]
        if self._has_tokens():
            parts.append(f'<div class="miniagents-batch-tokens">{escape(self._tokens_line())}</div>')
        if self._failures:
            items = "".join(
                f'<li><span class="miniagents-batch-index">[{failure.index}]</span> '
                f'<code class="miniagents-batch-input">{escape(failure.input)}</code> '
                f'<span class="miniagents-batch-error">{escape(failure.error)}</span></li>'
                for failure in self._failures
            )
            more = self._more_failures()
            if more > 0:
                items += f'<li class="miniagents-batch-more">... and {_count(more)} more</li>'
            parts.append(
                f'<div class="miniagents-batch-failures-title">failed</div><ul class="miniagents-batch-failures">'
                f"{items}</ul>"
            )
        return static_html("miniagents-batch", "".join(parts), status=self.status)

    def __repr__(self) -> str:
        return f"<BatchProgressWidget {self.agent}: {self._headline()}>"


_last: BatchProgressWidget | None = None


def last_batch() -> BatchProgressWidget | None:
    """
    The progress widget of the latest `mn.amap` in this kernel (None before the first): after an interrupt,
    its `rows` / `dataframe()` hold the rows that finished.
    """
    return _last


async def amap(
    agent: MiniAgent,
    inputs: Iterable[MessageType],
    concurrency: int = 8,
    on_progress: Callable[[BatchProgress], None] | None = None,
    on_row: Callable[[BatchRow], None] | None = None,
    **function_kwargs: Any,
) -> Any:
    """
    Run `agent` once per input, at most `concurrency` calls at a time, with a live progress widget in the cell
    (see `miniagents.batch.amap`, which this wraps: the same arguments, hooks and errors). Returns one row per
    input, in input order, a failed call keeping its error in its row: a pandas DataFrame (`rows_to_dataframe`)
    when pandas is installed, else the list of BatchRow.

    Interrupting the cell cancels the batch (running calls included) and raises CancelledError; the rows that
    finished before are kept in `mn.last_batch()`.
    """
    widget: BatchProgressWidget | None = None

    def follow_progress(progress: BatchProgress) -> None:
        nonlocal widget
        global _last
        if widget is None:  # the core has checked the arguments: the batch starts now
            widget = _last = BatchProgressWidget(agent.alias, progress.total)
            widget.show()
        widget.on_progress(progress)
        if on_progress is not None:
            on_progress(progress)

    def follow_row(row: BatchRow) -> None:
        if widget is not None:
            widget.on_row(row)
        if on_row is not None:
            on_row(row)

    try:
        rows = await core_amap(
            agent, inputs, concurrency, on_progress=follow_progress, on_row=follow_row, **function_kwargs
        )
    except BaseException as exc:
        if widget is not None:
            widget.end(exc)
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(
                    f"mn.amap: {widget.progress.finished} of {widget.progress.total} inputs had finished; those rows "
                    "are kept in mn.last_batch().rows (and .dataframe())"
                )
        raise
    if widget is not None:
        widget.end()
    if importlib.util.find_spec("pandas") is None:
        return rows
    return rows_to_dataframe(rows)


def describe_input(item: Any) -> str:
    """An input as a failure lists it: a message by its text's repr, anything else by its repr, cut short."""
    if isinstance(item, Frozen) and isinstance(item.get("text"), str):
        shown = repr(item.get("text"))
    else:
        shown = repr(item)
    return shown if len(shown) <= _INPUT_CHARS else shown[: _INPUT_CHARS - 1] + "…"


def _count(number: int) -> str:
    return f"{number:,}"
