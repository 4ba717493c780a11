"""
Static forms of a MessageTree: indented text, sanitised HTML (the same classes as the live widget) and a
Mermaid flowchart. They are deterministic (no timings, no widget ids) so nbval can compare them.

Each message shows in full once, at its home (`home_placements`): a reply in the deepest call that replied
it (where it was produced), else an input in the first call that received it. Elsewhere a reference points
to it ("↳ forwarded from AGENT #hash"). A call's figures: the stream chunks and the providers' token usage of
the replies at home in it (tokens counted once, where produced), the calls that failed below it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from miniagents.notebook.rendering import entry_html, escape, static_html
from miniagents.usage import ModelUsage, TokenUsage, usage_of

MANY_CHILDREN = 20  # a call with more children than this shows them collapsed (as the live widget does)


class CallRecord(Protocol):
    """What the exports read of a call: the live tree's records and the stored run's both have it."""

    @property
    def id(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def error(self) -> str | None: ...
    @property
    def inputs(self) -> Sequence[str]: ...
    @property
    def replies(self) -> Sequence[str]: ...
    @property
    def children(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class FoldedCalls:
    """Calls a bounded tree folded away, as counts: calls, failed ones, the providers' tokens of their replies."""

    calls: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: FoldedCalls) -> FoldedCalls:
        return FoldedCalls(
            self.calls + other.calls,
            self.failed + other.failed,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "failed": self.failed,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }

    def describe(self) -> str:
        """'4,500 earlier calls folded (12 failed, tokens: 1,200 in / 3,400 out)'."""
        details = [f"{self.failed:,} failed"] if self.failed else []
        if self.input_tokens or self.output_tokens:
            details.append(f"tokens: {self.input_tokens:,} in / {self.output_tokens:,} out")
        plural = "call" if self.calls == 1 else "calls"
        return f"{self.calls:,} earlier {plural} folded" + (f" ({', '.join(details)})" if details else "")


@dataclass
class TreeParts:
    """What the exports read: the root calls, every call by id, every message / error record by id."""

    roots: Sequence[Any]
    calls: Mapping[str, Any]
    messages: Mapping[str, Any]
    folded: FoldedCalls | None = None  # root calls folded away
    usage: TokenUsage | None = None  # the totals by model (computed from the messages when None)


class MermaidDiagram(str):
    """Mermaid source that Jupyter displays as a diagram (`text/vnd.mermaid`); otherwise a plain str."""

    __slots__ = ()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/vnd.mermaid": str(self), "text/plain": str(self)}

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))  # IPython would otherwise print it as a quoted str


# ------------------------------------------------------------------------------------------------ analysis


def home_placements(parts: TreeParts) -> dict[str, tuple[str, str]]:
    """
    Message id -> (call id, "replies" | "inputs") of the one place it shows in full: a reply in the deepest
    call replying it (the first such in tree order on a tie), else an input in the first call receiving it.
    """
    homes: dict[str, tuple[str, str, int]] = {}
    for depth, record in _walk(parts):
        for message_id in record.replies:
            home = homes.get(message_id)
            if home is None or home[1] == "inputs" or depth > home[2]:
                homes[message_id] = (record.id, "replies", depth)
        for message_id in record.inputs:
            homes.setdefault(message_id, (record.id, "inputs", depth))
    return {message_id: (call_id, part) for message_id, (call_id, part, _) in homes.items()}


def _walk(parts: TreeParts) -> list[tuple[int, Any]]:
    """(depth, call) for every call, depth-first in call order."""
    found: list[tuple[int, Any]] = []
    pending = [(0, root) for root in reversed(parts.roots)]
    while pending:
        depth, record = pending.pop()
        found.append((depth, record))
        pending.extend((depth + 1, parts.calls[child]) for child in reversed(record.children) if child in parts.calls)
    return found


def _message_usage(message: Any) -> ModelUsage | None:
    metadata = getattr(message, "metadata", None)
    return usage_of(metadata.get("usage")) if isinstance(metadata, dict) else None


@dataclass
class _Figures:
    """A call's figures: chunks and usage of its own replies, its subtree's usage, failures below it."""

    chunks: int = 0
    own: ModelUsage = field(default_factory=ModelUsage)
    subtree: ModelUsage = field(default_factory=ModelUsage)
    failed_inside: int = 0


def _figures(parts: TreeParts, homes: Mapping[str, tuple[str, str]]) -> dict[str, _Figures]:
    figures: dict[str, _Figures] = {}
    for _, record in reversed(_walk(parts)):  # children before their parent
        own = _Figures()
        for message_id in record.replies:
            if homes.get(message_id) != (record.id, "replies") or message_id not in parts.messages:
                continue
            message = parts.messages[message_id]
            own.chunks += getattr(message, "tokens", 0)
            usage = _message_usage(message)
            if usage is not None:
                own.own = own.own + usage
        subtree, failed = own.own, 0
        folded: FoldedCalls | None = getattr(record, "folded", None)
        if folded is not None:
            subtree = subtree + ModelUsage(folded.input_tokens, folded.output_tokens)
            failed += folded.failed
        for child in record.children:
            if child in figures:
                subtree = subtree + figures[child].subtree
                failed += figures[child].failed_inside + (parts.calls[child].status == "failed")
        own.subtree, own.failed_inside = subtree, failed
        figures[record.id] = own
    return figures


def _totals(parts: TreeParts, homes: Mapping[str, tuple[str, str]]) -> TokenUsage:
    if parts.usage is not None:
        return parts.usage
    totals = TokenUsage()
    for message_id, (_, part) in homes.items():
        message = parts.messages.get(message_id)
        metadata = getattr(message, "metadata", None)
        if part == "replies" and isinstance(metadata, dict):
            totals.add(str(metadata.get("model") or ""), metadata.get("usage"))
    return totals


def _status(record: Any, figures: _Figures) -> str:
    status = f"failed: {record.error}" if record.status == "failed" and record.error else record.status
    return status + (f" · {figures.failed_inside} failed inside" if figures.failed_inside else "")


def _usage_text(usage: ModelUsage) -> str:
    if not (usage.replies or usage.total_tokens):
        return ""
    return f"tokens: {usage.input_tokens:,} in / {usage.output_tokens:,} out"


def _chunks_text(chunks: int) -> str:
    """'3 chunks' (the stream pieces of the replies produced here), '' for none (a call only forwarding)."""
    return f"{chunks} chunk" + ("" if chunks == 1 else "s") if chunks else ""


def _summary(record: Any, figures: _Figures) -> str:
    extras = [text for text in (_chunks_text(figures.chunks), _usage_text(figures.subtree)) if text]
    return f"{record.agent} [{_status(record, figures)}] in: {len(record.inputs)}, replies: {len(record.replies)}" + (
        f", {', '.join(extras)}" if extras else ""
    )


def _totals_line(parts: TreeParts, totals: TokenUsage) -> str:
    failed = sum(record.status == "failed" for record in parts.calls.values())
    if parts.folded is not None:
        failed += parts.folded.failed
    calls = len(parts.calls) + (parts.folded.calls if parts.folded is not None else 0)
    for record in parts.calls.values():
        folded: FoldedCalls | None = getattr(record, "folded", None)
        if folded is not None:
            calls += folded.calls
            failed += folded.failed
    line = f"run totals: {calls:,} call" + ("" if calls == 1 else "s") + f", {failed:,} failed"
    for model, usage in totals:
        line += f" · {model or 'unknown model'}: {usage.input_tokens:,} in / {usage.output_tokens:,} out tokens"
    return line


def _reference_label(message: Any, home_call: Any, home_part: str, part: str) -> str:
    hash_key = getattr(message, "hash_key", None)
    where = (
        "forwarded from"
        if part == "replies" and home_part == "replies"
        else "reply of"
        if home_part == "replies"
        else "input of"
    )
    return f"↳ {where} {home_call.agent}" + (f" #{hash_key[:8]}" if hash_key else "")


def _anchor(message_id: str, message: Any) -> str:
    hash_key = getattr(message, "hash_key", None)
    return f"miniagents-message-{hash_key[:16] if hash_key else message_id}"


# ------------------------------------------------------------------------------------------------ the forms


def tree_text(parts: TreeParts) -> str:
    """One line per call, children indented under their parent; forwarded replies as one reference line each."""
    homes = home_placements(parts)
    figures = _figures(parts, homes)
    lines: list[str] = []
    if parts.folded is not None:
        lines.append(f"… {parts.folded.describe()}")

    def add(record: Any, depth: int) -> None:
        indent = "  " * depth
        lines.append(indent + _summary(record, figures[record.id]))
        referenced: list[str] = []
        for message_id in record.replies:
            home = homes.get(message_id)
            if home is not None and home != (record.id, "replies") and message_id in parts.messages:
                label = _reference_label(parts.messages[message_id], parts.calls[home[0]], home[1], "replies")
                if label not in referenced:
                    referenced.append(label)
        lines.extend(f"{indent}  {label}" for label in referenced)
        folded: FoldedCalls | None = getattr(record, "folded", None)
        if folded is not None:
            lines.append(f"{indent}  … {folded.describe()}")
        for child in record.children:
            if child in parts.calls:
                add(parts.calls[child], depth + 1)

    for root in parts.roots:
        add(root, 0)
    if not lines:
        return "(no agent calls yet)"
    lines.append(_totals_line(parts, _totals(parts, homes)))
    return "\n".join(lines)


def tree_html(parts: TreeParts) -> str:
    """Nested, collapsible HTML (`<details>`), messages rendered and sanitised like the live widget."""
    homes = home_placements(parts)
    figures = _figures(parts, homes)

    def entry(record: Any, part: str, message_id: str) -> str:
        message = parts.messages[message_id]
        home = homes.get(message_id)
        if home is None or home == (record.id, part):
            anchor = escape(_anchor(message_id, message))
            return f'<div class="miniagents-home" id="{anchor}">{entry_html(message)}</div>'
        label = _reference_label(message, parts.calls[home[0]], home[1], part)
        return (
            f'<div class="miniagents-reference" data-home-call="{escape(home[0])}">'
            f'<a href="#{escape(_anchor(message_id, message))}">{escape(label)}</a></div>'
        )

    def section(record: Any, title: str, part: str) -> str:
        ids = [each for each in getattr(record, part) if each in parts.messages]
        if not ids:
            return ""
        blocks = "".join(entry(record, part, each) for each in ids)
        return (
            f'<div class="miniagents-call-section"><div class="miniagents-call-section-title">{title}</div>'
            f"{blocks}</div>"
        )

    def folded_html(folded: FoldedCalls | None) -> str:
        if folded is None:
            return ""
        return f'<div class="miniagents-folded">… {escape(folded.describe())}</div>'

    def call_html(record: Any, open_: bool = True) -> str:
        mine = figures[record.id]
        error = f'<div class="miniagents-call-error">{escape(record.error)}</div>' if record.error else ""
        shown = [parts.calls[child] for child in record.children if child in parts.calls]
        children = "".join(call_html(child, open_=len(shown) <= MANY_CHILDREN) for child in shown)
        failed_inside = (
            f'<span class="miniagents-call-failed-inside">{mine.failed_inside} failed inside</span>'
            if mine.failed_inside
            else ""
        )
        meta = " · ".join(text for text in (_chunks_text(mine.chunks), _usage_text(mine.subtree)) if text)
        return (
            f'<div class="miniagents-call" data-agent="{escape(record.agent)}" data-status="{escape(record.status)}"'
            f' data-failed-inside="{mine.failed_inside}">'
            f'<details{" open" if open_ else ""}><summary><span class="miniagents-call-title">'
            f'<span class="miniagents-call-agent">{escape(record.agent)}</span>'
            f'<span class="miniagents-call-status">{escape(record.status)}</span>{failed_inside}'
            f'<span class="miniagents-call-meta">{escape(meta)}</span></span></summary>'
            f"{error}{section(record, 'input', 'inputs')}{section(record, 'replies', 'replies')}"
            f'<div class="miniagents-call-children">{folded_html(getattr(record, "folded", None))}{children}</div>'
            "</details></div>"
        )

    body = "".join(call_html(root, open_=len(parts.roots) <= MANY_CHILDREN) for root in parts.roots)
    if body or parts.folded is not None:
        totals = f'<div class="miniagents-tree-totals">{escape(_totals_line(parts, _totals(parts, homes)))}</div>'
        body = folded_html(parts.folded) + body + totals
    else:
        body = '<div class="miniagents-tree-empty">no agent calls yet</div>'
    return static_html("miniagents-tree", body)


def _mermaid_label(text: str) -> str:
    """Text safe inside a quoted Mermaid label (entity codes for the characters Mermaid would parse)."""
    for char, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text.replace("\n", " ")


def tree_mermaid(parts: TreeParts) -> str:
    """
    A top-down flowchart: one node per call (alias, status, chunks, tokens, failures inside), an edge per
    nested call, a dotted edge from where a reply was produced to each call forwarding it.
    """
    homes = home_placements(parts)
    figures = _figures(parts, homes)
    lines = ["flowchart TD"]
    edges: list[str] = []
    forwarded: list[str] = []
    failed: list[str] = []

    def add(record: Any) -> None:
        mine = figures[record.id]
        label = " · ".join(text for text in (record.agent, record.status, _chunks_text(mine.chunks)) if text)
        if mine.subtree.total_tokens:
            label += f" · {mine.subtree.input_tokens}/{mine.subtree.output_tokens} tokens"
        if mine.failed_inside:
            label += f" · {mine.failed_inside} failed inside"
        lines.append(f'    {record.id}["{_mermaid_label(label)}"]')
        if record.status == "failed":
            failed.append(record.id)
        sources: list[str] = []
        for message_id in record.replies:
            home = homes.get(message_id)
            if home is not None and home[0] != record.id and home[1] == "replies" and home[0] not in sources:
                sources.append(home[0])
        forwarded.extend(f"    {source} -.->|forwarded| {record.id}" for source in sources)
        folded: FoldedCalls | None = getattr(record, "folded", None)
        if folded is not None:
            lines.append(f'    {record.id}_folded["{_mermaid_label("… " + folded.describe())}"]')
            edges.append(f"    {record.id} --> {record.id}_folded")
        for child in record.children:
            if child in parts.calls:
                edges.append(f"    {record.id} --> {child}")
                add(parts.calls[child])

    for root in parts.roots:
        add(root)
    lines.extend(edges)
    lines.extend(forwarded)
    if edges or forwarded:  # the theme picks the colour (light lines in a dark theme); thin lines are hard to see
        lines.append("    linkStyle default stroke-width:2px")
    if failed:
        lines.append("    classDef failed fill:#fdecea,stroke:#c62828,color:#b71c1c")
        lines.append(f"    class {','.join(failed)} failed")
    return "\n".join(lines)
