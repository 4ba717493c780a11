"""
Static forms of a MessageTree: indented text, sanitised HTML (the same classes as the live widget) and a
Mermaid flowchart. They are deterministic (no timings, no widget ids) so nbval can compare them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from miniagents.notebook.rendering import entry_html, escape, static_html


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


class MermaidDiagram(str):
    """Mermaid source that Jupyter displays as a diagram (`text/vnd.mermaid`); otherwise a plain str."""

    __slots__ = ()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/vnd.mermaid": str(self), "text/plain": str(self)}

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))  # IPython would otherwise print it as a quoted str


def _tokens(record: CallRecord, messages: Mapping[str, Any]) -> int:
    return sum(messages[reply].tokens for reply in record.replies if reply in messages)


def _summary(record: CallRecord, messages: Mapping[str, Any]) -> str:
    status = f"failed: {record.error}" if record.status == "failed" and record.error else record.status
    return (
        f"{record.agent} [{status}] in: {len(record.inputs)}, replies: {len(record.replies)}, "
        f"tokens: {_tokens(record, messages)}"
    )


def tree_text(roots: Sequence[CallRecord], calls: Mapping[str, CallRecord], messages: Mapping[str, Any]) -> str:
    """One line per call, children indented under their parent."""
    lines: list[str] = []

    def add(record: CallRecord, depth: int) -> None:
        lines.append("  " * depth + _summary(record, messages))
        for child in record.children:
            add(calls[child], depth + 1)

    for root in roots:
        add(root, 0)
    return "\n".join(lines) if lines else "(no agent calls yet)"


def tree_html(roots: Sequence[CallRecord], calls: Mapping[str, CallRecord], messages: Mapping[str, Any]) -> str:
    """Nested, collapsible HTML (`<details>`), messages rendered and sanitised like the live widget."""

    def section(title: str, ids: Sequence[str]) -> str:
        if not ids:
            return ""
        blocks = "".join(entry_html(messages[each]) for each in ids if each in messages)
        return (
            f'<div class="miniagents-call-section"><div class="miniagents-call-section-title">{title}</div>'
            f"{blocks}</div>"
        )

    def call_html(record: CallRecord) -> str:
        error = f'<div class="miniagents-call-error">{escape(record.error)}</div>' if record.error else ""
        children = "".join(call_html(calls[child]) for child in record.children)
        return (
            f'<div class="miniagents-call" data-agent="{escape(record.agent)}" data-status="{escape(record.status)}">'
            f'<details open><summary><span class="miniagents-call-title">'
            f'<span class="miniagents-call-agent">{escape(record.agent)}</span>'
            f'<span class="miniagents-call-status">{escape(record.status)}</span>'
            f'<span class="miniagents-call-meta">{_tokens(record, messages)} tokens</span></span></summary>'
            f"{error}{section('input', record.inputs)}{section('replies', record.replies)}"
            f'<div class="miniagents-call-children">{children}</div></details></div>'
        )

    body = "".join(call_html(root) for root in roots) or '<div class="miniagents-tree-empty">no agent calls yet</div>'
    return static_html("miniagents-tree", body)


def _mermaid_label(text: str) -> str:
    """Text safe inside a quoted Mermaid label (entity codes for the characters Mermaid would parse)."""
    for char, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text.replace("\n", " ")


def tree_mermaid(roots: Sequence[CallRecord], calls: Mapping[str, CallRecord], messages: Mapping[str, Any]) -> str:
    """A top-down flowchart: one node per call (alias, status, token count), an edge per nested call."""
    lines = ["flowchart TD"]
    edges: list[str] = []
    failed: list[str] = []

    def add(record: CallRecord) -> None:
        label = _mermaid_label(f"{record.agent} · {record.status} · {_tokens(record, messages)} tokens")
        lines.append(f'    {record.id}["{label}"]')
        if record.status == "failed":
            failed.append(record.id)
        for child in record.children:
            edges.append(f"    {record.id} --> {child}")
            add(calls[child])

    for root in roots:
        add(root)
    lines.extend(edges)
    if edges:  # the theme picks the colour (light lines in a dark theme); thin lines are hard to see in any
        lines.append("    linkStyle default stroke-width:2px")
    if failed:
        lines.append("    classDef failed fill:#fdecea,stroke:#c62828,color:#b71c1c")
        lines.append(f"    class {','.join(failed)} failed")
    return "\n".join(lines)
