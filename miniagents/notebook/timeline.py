"""
Timeline: a live waterfall of the agent calls of a run, one bar per call, nested under its caller, so that
parallelism and the critical path are visible at a glance (SPEC 5.8).

It is a MessageTree drawn differently: the same calls (the same scoping: the calls made in the context from
the moment it is created on), the same statuses (a call runs until its replies have all resolved), the same
quiet points and saved-notebook behaviour. What it adds is each call's start and end, relative to the start
of the first call it saw: sent with the call events (`start`, `end`, seconds) and a clock event
`["clock", "clock", {"now": seconds}]` per batch, from which the page grows the running bars between batches.

Two scales: "seconds" (wall time, the default) and "steps" (each start or end of a call is one step, in the
order they happened): a run of agents that wait on each other, not on the clock, draws the same in steps on
every machine, so a saved notebook's timeline compares equal (nbval). Static forms: `timeline_export`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from miniagents.miniagents import MiniAgents
from miniagents.notebook import assets
from miniagents.notebook.timeline_export import SCALES, TimelineBar, timeline_html, timeline_svg, timeline_text
from miniagents.notebook.tree_widget import CallRecord, MessageTree

# The page's code: the shared live document (live.js), the waterfall drawing, then the widget's render().
TIMELINE_MODULE = "timeline.js"
WATERFALL_MODULE = "waterfall.js"


def timeline_module() -> str:
    """The ES module of the Timeline widget (also what a view embedding the waterfall needs before its code)."""
    return f"{assets.widget_module(WATERFALL_MODULE)}\n// ---- {TIMELINE_MODULE} ----\n" + assets.read_widget_file(
        TIMELINE_MODULE
    )


class _Clock:
    """The entity carrying the kernel's `now` (seconds since the tree was made) to the page with each batch."""

    __slots__ = ("timeline",)
    id = "clock"

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def take_events(self) -> list[list[Any]]:
        return [["clock", "clock", {"now": self.timeline.seconds_since_start(time.perf_counter())}]]


class Timeline(MessageTree):
    """
    A live waterfall of the agent calls made in `context` (default: the current one, e.g. the notebook's) from
    now on: display it, run agents, and bars appear and grow. `scale` is "seconds" (wall time) or "steps" (the
    order of starts and ends: deterministic for agents that do not wait on the clock). `to_text()`, `to_html()`
    and `to_svg()` export it; `bars()` gives the data. Other keyword arguments go to MessageTree. Raises
    ValueError for an unknown scale.
    """

    _esm = timeline_module()

    def __new__(cls, *args: Any, scale: str = "seconds", **kwargs: Any) -> Timeline:
        # checked before the widget exists: a widget whose constructor failed would still be closed when collected
        if scale not in SCALES:
            raise ValueError(f"Timeline scale must be one of {', '.join(map(repr, SCALES))}, got {scale!r:.40}")
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, context: MiniAgents | None = None, *, scale: str = "seconds", **kwargs: Any) -> None:
        self.scale = scale  # set before the tree's constructor, which takes the first snapshot
        self._clock = _Clock(self)
        super().__init__(context, **kwargs)

    def _mark_changed(self, entity: Any) -> None:
        if isinstance(entity, CallRecord):  # every batch with a call in it says what time it is
            super()._mark_changed(self._clock)
        super()._mark_changed(entity)

    def _snapshot(self) -> dict[str, Any]:
        snapshot = super()._snapshot()
        snapshot["now"] = self.seconds_since_start(time.perf_counter())
        snapshot["scale"] = self.scale
        return snapshot

    # ------------------------------------------------------------ reading

    def bars(self) -> list[TimelineBar]:
        """One bar per call, callers before the calls they made (depth first), in the timeline's scale."""
        return self._drawing()[0]

    def _drawing(self) -> tuple[list[TimelineBar], float]:
        """The bars, and where the running ones end now."""
        records = {record.id: record for record in self.calls}
        children: dict[str | None, list[str]] = {}
        for record in records.values():
            children.setdefault(record.parent_id if record.parent_id in records else None, []).append(record.id)
        times, now = self._times(records.values(), children)
        critical = _critical_path(children, times, now)
        ordered: list[TimelineBar] = []
        for record_id, depth in _depth_first(children):
            record = records[record_id]
            start, end = times[record_id]
            bar = TimelineBar(
                record_id, record.agent, depth, record.status, start, end, record.error, record_id in critical
            )
            ordered.append(bar)
        return ordered, now

    def _times(
        self, records: Iterable[CallRecord], children: dict[str | None, list[str]]
    ) -> tuple[dict[str, tuple[float | None, float | None]], float]:
        """
        Each call's start and end in the timeline's scale, from the first start (None: pending / running), and
        where the running bars end now: the kernel's clock, or one step past the last start or end.
        """
        times = _ends_owning_children({record.id: (record.started, record.ended) for record in records}, children)
        if self.scale == "steps":
            times = _as_steps(times)
            return times, float(len({point for pair in times.values() for point in pair if point is not None}))
        starts = [start for start, _ in times.values() if start is not None]
        origin = min(starts, default=0.0)
        now = (self.seconds_since_start(time.perf_counter()) or 0.0) - origin
        return {
            key: (None if start is None else round(start - origin, 6), None if end is None else round(end - origin, 6))
            for key, (start, end) in times.items()
        }, now

    def _drawing_in_scale(self) -> tuple[list[TimelineBar], str, float]:
        bars, now = self._drawing()
        return bars, self.scale, now

    def to_text(self) -> str:
        return timeline_text(*self._drawing_in_scale())

    def to_svg(self) -> str:
        """The waterfall as an SVG document."""
        return timeline_svg(*self._drawing_in_scale())

    def to_html(self) -> str:
        return timeline_html(*self._drawing_in_scale())

    def _static_forms(self) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}

    def __repr__(self) -> str:
        calls = self.calls
        failed = sum(record.status == "failed" for record in calls)
        state = "running" if self._is_live() else "idle"
        return f"<Timeline ({self.scale}): {len(calls)} call(s), {failed} failed, {state}>"


def _ends_owning_children(
    times: dict[str, tuple[float | None, float | None]], children: dict[str | None, list[str]]
) -> dict[str, tuple[float | None, float | None]]:
    """
    A call owns the calls it makes: its bar ends when they are all done too. (The tree notes each call's end as
    its reply streams are read, by tasks that may wake a caller's before its callee's: a callee could otherwise
    end a moment after its caller.)
    """
    ended = dict(times)
    for record_id, _ in reversed(_depth_first(children)):  # the calls a call made before it
        start, end = ended[record_id]
        for child in children.get(record_id, []):
            child_end = ended[child][1]
            if end is not None and child_end is not None and child_end > end:
                end = child_end
        ended[record_id] = (start, end)
    return ended


def _depth_first(children: dict[str | None, list[str]]) -> list[tuple[str, int]]:
    """Every call with its depth, callers before the calls they made, in call order (no recursion: any depth)."""
    order: list[tuple[str, int]] = []
    stack = [(root, 0) for root in reversed(children.get(None, []))]
    while stack:
        record_id, depth = stack.pop()
        order.append((record_id, depth))
        stack.extend((child, depth + 1) for child in reversed(children.get(record_id, [])))
    return order


def _as_steps(
    times: dict[str, tuple[float | None, float | None]],
) -> dict[str, tuple[float | None, float | None]]:
    """Each distinct start or end replaced by its rank among all of them (0, 1, 2, ...)."""
    points = sorted({point for pair in times.values() for point in pair if point is not None})
    rank = {point: float(index) for index, point in enumerate(points)}
    return {
        key: (None if start is None else rank[start], None if end is None else rank[end])
        for key, (start, end) in times.items()
    }


def _critical_path(
    children: dict[str | None, list[str]], times: dict[str, tuple[float | None, float | None]], now: float
) -> set[str]:
    """
    The calls the run's end waited on: the call that ended last, then the one that ended last before it started
    (what it waited for), and so on; inside each, the same among the calls it made.
    """
    path: set[str] = set()

    def end_of(record_id: str) -> float:
        end = times[record_id][1]
        return now if end is None else end

    parents: list[str | None] = [None]
    while parents:
        parent = parents.pop()
        started = [each for each in children.get(parent, []) if times[each][0] is not None]
        window: float | None = None  # only calls that ended before this point (None: any)
        for each in sorted(started, key=end_of, reverse=True):  # (stable: of equals, the one called first)
            if window is None or end_of(each) <= window:
                path.add(each)
                parents.append(each)
                window = times[each][0]
    return path
