"""
MessageForm: which compact block a message is shown as, besides plain text: the tool calls an assistant message
asks for, a tool's result, or an agent's error as a message (`ErrorMessage`, with `errors_as_messages`).

Read from a message's metadata by field shape, so the notebook layer needs nothing from `miniagents.ext.llm`: a
`tool_calls` list in the neutral shape `[{"id", "function": {"name", "arguments"}}]` (every LLM agent's replies
carry it), a `tool_call_id` (a tool result). Tool calls and results are shown collapsed (`<details>`: a one-line
summary, the whole arguments / output on a click), never as a wall of JSON. Everything in them is model output or
tool output, so untrusted: escaped here, set as text by the front end (widgets/live.js).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from miniagents.agent_call import ErrorMessage
from miniagents.messages import Message

PREVIEW_CHARS = 80  # a summary line shows at most this many characters of arguments or output
_PREVIEW_SCAN = 1000  # (only this much of a long text is read to make its preview: live.js does the same)

TEXT = "text"
TOOL_CALLS = "tool-calls"
TOOL_RESULT = "tool-result"
ERROR = "error"


def preview(text: str) -> str:
    """`text` on one line (whitespace runs as one space), cut to PREVIEW_CHARS characters with an ellipsis."""
    line = " ".join(text[:_PREVIEW_SCAN].split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


@dataclass(frozen=True)
class ToolCallView:
    """One tool call as shown: `summary` is `name(arg=value, ...)` on one line, `detail` the whole arguments."""

    name: str
    summary: str
    detail: str

    @classmethod
    def from_call(cls, name: str, arguments: str) -> ToolCallView:
        """From the tool's name and its arguments as the model wrote them (JSON text, or anything)."""
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return cls(name, f"{name}({preview(arguments)})", arguments)
        if isinstance(parsed, dict):
            shown = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in parsed.items())
        else:
            shown = json.dumps(parsed, ensure_ascii=False)
        return cls(name, f"{name}({preview(shown)})", json.dumps(parsed, ensure_ascii=False, indent=2))

    def as_fields(self) -> dict[str, str]:
        return {"name": self.name, "summary": self.summary, "detail": self.detail}


@dataclass(frozen=True)
class MessageForm:
    """
    How a message is shown: `kind` is TEXT, TOOL_CALLS (its `tool_calls`, after its text), TOOL_RESULT (its text,
    collapsed under `tool_name`; `is_error` when the call failed) or ERROR (an ErrorMessage: `error_class`, the
    text, and the `agent_trace` it came through).
    """

    kind: str = TEXT
    tool_calls: tuple[ToolCallView, ...] = ()
    tool_name: str | None = None
    is_error: bool = False
    error_class: str | None = None
    agent_trace: tuple[str, ...] = ()

    @classmethod
    def of(cls, metadata: Mapping[str, Any], message: Message | None = None) -> MessageForm:
        """
        The form of a message from its metadata as plain JSON data (a resolved message's, or the preliminary
        metadata of one still streaming); `message`, when resolved, tells an ErrorMessage apart.
        """
        if isinstance(message, ErrorMessage):
            return cls(ERROR, error_class=message.error_class, agent_trace=tuple(message.agent_trace))
        if isinstance(metadata.get("tool_call_id"), str):
            name = metadata.get("tool_name")
            return cls(TOOL_RESULT, tool_name=str(name or "tool"), is_error=metadata.get("is_error") is True)
        calls = _tool_calls(metadata.get("tool_calls"))
        return cls(TOOL_CALLS, tool_calls=calls) if calls else TEXT_FORM

    def as_fields(self) -> dict[str, Any] | None:
        """The form as the front end receives it (None for plain text)."""
        if self.kind == TEXT:
            return None
        return {
            "kind": self.kind,
            "tool_calls": [call.as_fields() for call in self.tool_calls],
            "tool_name": self.tool_name,
            "is_error": self.is_error,
            "error_class": self.error_class,
            "agent_trace": list(self.agent_trace),
        }

    # ------------------------------------------------------------ static forms

    def text_lines(self, text: str) -> list[str]:
        """The text/plain lines of a message of this form (under its header line)."""
        if self.kind == TOOL_CALLS:
            calls = [f"[tool call] {call.summary}" for call in self.tool_calls]
            return [text.rstrip("\n"), *calls] if text else calls
        if self.kind == TOOL_RESULT:
            tag = "tool error" if self.is_error else "tool result"
            return [f"[{tag}] {self.tool_name}: {preview(text)}".rstrip()]
        if self.kind == ERROR:
            lines = [f"[error: {self.error_class}] {text}".rstrip()]
            return [*lines, f"(via {' > '.join(self.agent_trace)})"] if self.agent_trace else lines
        return [text.rstrip("\n")] if text else []

    def html_parts(self, text: str, body_html: str) -> str:
        """
        The static HTML of the message's content (after its header), element for element what live.js builds:
        `body_html` is the message body element (the text rendered as markdown).
        """
        if self.kind == TOOL_CALLS:
            calls = "".join(
                f'<details class="miniagents-tool-call"><summary><span class="miniagents-tool-tag">tool call</span>'
                f'<code class="miniagents-tool-summary">{_escape(call.summary)}</code></summary>'
                f'<pre class="miniagents-tool-detail">{_escape(call.detail)}</pre></details>'
                for call in self.tool_calls
            )
            return f'{body_html}<div class="miniagents-tool-calls">{calls}</div>'
        if self.kind == TOOL_RESULT:
            error = ' data-error="true"' if self.is_error else ""
            tag = "tool error" if self.is_error else "tool result"
            return (
                f'<details class="miniagents-tool-result"{error}>'
                f'<summary><span class="miniagents-tool-tag">{tag}</span>'
                f'<code class="miniagents-tool-summary">{_escape(self.tool_name or "")}</code>'
                f'<span class="miniagents-tool-preview">{_escape(preview(text))}</span></summary>{body_html}</details>'
            )
        if self.kind == ERROR:
            trace = (
                f'<div class="miniagents-error-trace">via {_escape(" > ".join(self.agent_trace))}</div>'
                if self.agent_trace
                else ""
            )
            return (
                f'<div class="miniagents-error-block">'
                f'<span class="miniagents-error-class">{_escape(self.error_class or "Error")}</span>'
                f'<span class="miniagents-error-text">{_escape(text)}</span>'
                f"{trace}</div>"
            )
        return body_html


TEXT_FORM = MessageForm()


def _tool_calls(entries: Any) -> tuple[ToolCallView, ...]:
    """The tool calls of a `tool_calls` field in the neutral shape; entries of another shape are left out."""
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        return ()
    calls: list[ToolCallView] = []
    for entry in entries:
        function = entry.get("function") if isinstance(entry, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            continue
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
        calls.append(ToolCallView.from_call(function["name"], arguments))
    return tuple(calls)


def _escape(text: str) -> str:
    return html.escape(text, quote=True)
