"""
Static forms of a Timeline: a text waterfall and an SVG one (inside text/html), drawn from TimelineBars.

The SVG reads without a kernel and without our stylesheet (GitHub, nbconvert): bars carry their status colour
as presentation attributes and text uses `currentColor`, so it follows the page's text colour in light and dark
themes; where the stylesheet is present (JupyterLab, our static HTML) its theme-variable rules win. Every name
and message is escaped (and characters XML cannot hold are replaced), so the SVG parses as XML.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from miniagents.notebook.rendering import escape, static_html

SCALES = ("seconds", "steps")
# colours when no stylesheet applies (the stylesheet maps the statuses to JupyterLab's theme colours)
STATUS_COLOURS = {"pending": "#9e9e9e", "running": "#f57c00", "finished": "#388e3c", "failed": "#d32f2f"}

_WIDTH = 760
_LABEL_WIDTH = 220
_TIME_WIDTH = 96
_TRACK_X = _LABEL_WIDTH + 8
_TRACK_WIDTH = _WIDTH - _TRACK_X - _TIME_WIDTH
_AXIS_HEIGHT = 24
_ROW_HEIGHT = 20
_BAR_HEIGHT = 12
_INDENT = 12
_MAX_INDENT_DEPTH = 8
_CHAR_WIDTH = 7  # roughly, at 12px: how many characters of a label fit
_TEXT_TRACK = 40  # characters of a bar's track in the text form

# characters XML 1.0 cannot hold at all (not even as character references)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class TimelineBar:
    """
    One agent call as a timeline draws it. `start` and `end` are in the timeline's unit (seconds, or steps)
    from its origin; `start` is None while the call is pending, `end` while it runs.
    """

    id: str
    agent: str
    depth: int
    status: str
    start: float | None
    end: float | None
    error: str | None = None
    critical: bool = False

    def end_or(self, now: float) -> float | None:
        """The end of the bar, `now` for a running call (None for a pending one)."""
        if self.start is None:
            return None
        return self.end if self.end is not None else max(now, self.start)


def _span(bars: Sequence[TimelineBar], now: float) -> float:
    ends = [end for bar in bars if (end := bar.end_or(now)) is not None]
    return max([*ends, 0.0]) or 1.0


def format_time(value: float, scale: str) -> str:
    """A point on the axis: '1.250 s' or 'step 3'."""
    return f"{value:.3f} s" if scale == "seconds" else f"step {value:g}"


def format_length(length: float, scale: str) -> str:
    """A length on the axis: '0.230 s' or '3 steps'."""
    return f"{length:.3f} s" if scale == "seconds" else f"{length:g} step{'' if length == 1 else 's'}"


def describe_bar(bar: TimelineBar, scale: str, now: float) -> str:
    """'AGENT · finished · 0.230 s (0.001 s to 0.231 s)': what hovering over a bar says."""
    parts = [bar.agent, bar.status]
    end = bar.end_or(now)
    if bar.start is not None and end is not None:
        parts.append(
            f"{format_length(end - bar.start, scale)} ({format_time(bar.start, scale)} to {format_time(end, scale)})"
        )
    if bar.critical:
        parts.append("critical path")
    text = " · ".join(parts)
    return f"{text}\n{bar.error}" if bar.error else text


def _one_line(text: str) -> str:
    """Text for one line of the text form: control characters shown escaped."""
    return "".join(char if char.isprintable() or char == " " else repr(char)[1:-1] for char in text)


def _xml_text(text: str) -> str:
    """Escaped text that XML (and so SVG) can hold."""
    return escape(_NOT_XML.sub("\ufffd", text))


def _nice_step(span: float, scale: str) -> float:
    """A round tick interval giving about five ticks over `span`."""
    raw = span / 5
    if scale == "steps":
        return float(max(1, math.ceil(raw)))
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power  # pragma: no cover - the loop always returns


def _ticks(span: float, scale: str) -> list[float]:
    step = _nice_step(span, scale)
    count = int(span / step + 1e-9)
    return [round(index * step, 9) for index in range(count + 1)]


def _tick_label(value: float, scale: str) -> str:
    return f"{value:g} s" if scale == "seconds" else f"{value:g}"


def timeline_text(bars: Sequence[TimelineBar], scale: str, now: float) -> str:
    """A text waterfall: one line per call, indented under its caller; critical-path calls marked `*`."""
    if not bars:
        return "(no agent calls yet)"
    span = _span(bars, now)
    labels = [_one_line("  " * bar.depth + bar.agent) for bar in bars]
    width = min(max(len(label) for label in labels), 40)
    statuses = [f"[{bar.status}]" for bar in bars]
    status_width = max(len(status) for status in statuses)
    lines = [f"timeline: {len(bars)} call(s) over {format_length(span, scale)}; * marks the critical path"]
    for bar, label, status in zip(bars, labels, statuses, strict=True):
        track = [" "] * _TEXT_TRACK
        end = bar.end_or(now)
        timing = "pending"
        if bar.start is not None and end is not None:
            first = min(int(bar.start / span * _TEXT_TRACK), _TEXT_TRACK - 1)
            last = max(first + 1, math.ceil(end / span * _TEXT_TRACK))
            for column in range(first, min(last, _TEXT_TRACK)):
                track[column] = "█" if bar.end is not None else "▒"
            timing = f"{format_time(bar.start, scale)} to {format_time(end, scale)}"
            if bar.end is None:
                timing += " (running)"
        if len(label) > width:
            label = label[: width - 1] + "…"
        marker = "*" if bar.critical else " "
        lines.append(f"{marker} {label:<{width}} {status:<{status_width}} |{''.join(track)}| {timing}")
    return "\n".join(lines)


def timeline_svg(bars: Sequence[TimelineBar], scale: str, now: float) -> str:
    """An SVG waterfall (a standalone document's root element, also valid inline in HTML)."""
    span = _span(bars, now)
    height = _AXIS_HEIGHT + _ROW_HEIGHT * max(len(bars), 1) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="miniagents-timeline-svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" font-family="sans-serif" font-size="12" role="img" '
        f'aria-label="timeline of {len(bars)} agent call(s)">'
    ]
    failed = sum(bar.status == "failed" for bar in bars)
    summary = f"{len(bars)} call{'' if len(bars) == 1 else 's'}" + (f" · {failed} failed" if failed else "")
    parts.append(
        f'<text class="miniagents-timeline-summary" x="4" y="{_AXIS_HEIGHT - 10}" fill="currentColor" '
        f'fill-opacity="0.7">{summary}</text>'
    )
    parts.append('<g class="miniagents-timeline-axis" fill="currentColor" stroke="currentColor">')
    for tick in _ticks(span, scale):
        x = _TRACK_X + tick / span * _TRACK_WIDTH
        parts.append(
            f'<line x1="{x:.1f}" y1="{_AXIS_HEIGHT - 6}" x2="{x:.1f}" y2="{height - 4}" stroke-opacity="0.2"/>'
            f'<text x="{x:.1f}" y="{_AXIS_HEIGHT - 10}" text-anchor="middle" stroke="none" fill-opacity="0.7">'
            f"{_xml_text(_tick_label(tick, scale))}</text>"
        )
    parts.append("</g>")
    if not bars:
        parts.append(
            f'<text x="{_TRACK_X}" y="{_AXIS_HEIGHT + 14}" fill="currentColor" font-style="italic">'
            "no agent calls yet</text>"
        )
    for index, bar in enumerate(bars):
        parts.append(_svg_row(bar, index, span, scale, now))
    parts.append("</svg>")
    return "".join(parts)


def _svg_row(bar: TimelineBar, index: int, span: float, scale: str, now: float) -> str:
    top = _AXIS_HEIGHT + index * _ROW_HEIGHT
    baseline = top + _ROW_HEIGHT / 2 + 4
    indent = 4 + min(bar.depth, _MAX_INDENT_DEPTH) * _INDENT
    fits = max(4, (_LABEL_WIDTH - indent) // _CHAR_WIDTH)
    label = bar.agent if len(bar.agent) <= fits else bar.agent[: fits - 1] + "…"
    status = bar.status if bar.status in STATUS_COLOURS else "running"
    critical = ' data-critical="true"' if bar.critical else ""
    weight = ' font-weight="bold"' if bar.critical else ""
    row = [
        f'<g class="miniagents-timeline-row" data-status="{status}" data-agent="{_xml_text(bar.agent)}"{critical}>'
        f"<title>{_xml_text(describe_bar(bar, scale, now))}</title>"
        f'<text class="miniagents-timeline-label" x="{indent}" y="{baseline:.1f}" fill="currentColor"'
        f"{weight}>{_xml_text(label)}</text>"
    ]
    end = bar.end_or(now)
    if bar.start is not None and end is not None:
        x = _TRACK_X + bar.start / span * _TRACK_WIDTH
        width = max(2.0, (end - bar.start) / span * _TRACK_WIDTH)
        outline = ' stroke="currentColor" stroke-width="1.5"' if bar.critical else ""
        row.append(
            f'<rect class="miniagents-timeline-bar" x="{x:.1f}" y="{top + (_ROW_HEIGHT - _BAR_HEIGHT) / 2:.1f}" '
            f'width="{width:.1f}" height="{_BAR_HEIGHT}" rx="2" fill="{STATUS_COLOURS[status]}"{outline}/>'
        )
        shown = format_length(end - bar.start, scale)
        row.append(
            f'<text class="miniagents-timeline-time" x="{_TRACK_X + _TRACK_WIDTH + 6}" y="{baseline:.1f}" '
            f'fill="currentColor" fill-opacity="0.7">{_xml_text(shown)}</text>'
        )
    row.append("</g>")
    return "".join(row)


def timeline_html(bars: Sequence[TimelineBar], scale: str, now: float) -> str:
    """The SVG waterfall inside the static HTML wrapper (with its small stylesheet)."""
    return static_html("miniagents-timeline", timeline_svg(bars, scale, now), scale=scale)
