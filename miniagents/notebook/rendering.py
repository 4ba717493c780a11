"""
Safe rendering of untrusted model text: markdown to sanitised HTML, and the static text/HTML forms of
message blocks shared by every widget.

Model output is untrusted. Markdown is rendered with markdown-it-py with raw HTML disabled (it comes out
escaped), links limited to http(s)/mailto/relative URLs (javascript:, data:, vbscript: and every other
scheme are dropped), and images rendered as plain links (an image would fetch a URL chosen by the model
the moment it is shown). Everything else that reaches HTML goes through `escape()`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]*):")
_ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})

MESSAGE_STATUSES = ("streaming", "done", "failed")


def is_safe_url(url: str) -> bool:
    """Whether a link target may appear in the page: http(s), mailto, or a relative URL / #anchor."""
    if any(ord(char) < 32 for char in url):
        return False
    match = _SCHEME.match(url)
    return match is None or match.group(1).lower() in _ALLOWED_SCHEMES


def _render_image_as_link(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    source = str(token.attrGet("src") or "")
    if not source:
        return escape(f"[image: {alt}]")
    label = escape(f"[image: {alt}]")
    return f'<a href="{escape(source)}" rel="noopener noreferrer nofollow" target="_blank">{label}</a>'


def _render_link_open(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    token.attrSet("rel", "noopener noreferrer nofollow")
    token.attrSet("target", "_blank")
    return self.renderToken(tokens, idx, options, env)


def _create_markdown_renderer() -> MarkdownIt:
    renderer = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    renderer.validateLink = is_safe_url  # type: ignore[method-assign]
    renderer.add_render_rule("image", _render_image_as_link)
    renderer.add_render_rule("link_open", _render_link_open)
    return renderer


_MARKDOWN = _create_markdown_renderer()


@lru_cache(maxsize=512)
def render_markdown(text: str) -> str:
    """Markdown to HTML that is safe to insert into the page (no raw HTML, no script URLs, no images)."""
    return _MARKDOWN.render(text)


def escape(text: str) -> str:
    """HTML-escape text, quotes included."""
    return html.escape(text, quote=True)


@dataclass(frozen=True)
class MessageHeader:
    """Who a message is from: the sender (agent alias, else role), its role and its model."""

    sender: str
    role: str | None = None
    model: str | None = None

    @classmethod
    def from_metadata(cls, metadata: Any, fallback_sender: str | None = None) -> MessageHeader:
        """From a message's (preliminary) metadata: a Frozen / Message or a dict."""
        get = metadata.get if isinstance(metadata, dict) else lambda name: getattr(metadata, name, None)
        alias, role, model = get("agent_alias"), get("role"), get("model")
        sender = alias or fallback_sender or role or "MESSAGE"
        return cls(
            sender=str(sender),
            role=None if role is None or role == sender else str(role),
            model=None if model is None else str(model),
        )

    @property
    def details(self) -> str:
        """'role · model' (whichever are known)."""
        return " · ".join(part for part in (self.role, self.model) if part)

    def as_text(self) -> str:
        """'SENDER (role · model)' for text/plain."""
        return f"{self.sender} ({self.details})" if self.details else self.sender

    def as_fields(self) -> dict[str, Any]:
        return {"sender": self.sender, "role": self.role, "model": self.model}


def message_block_text(header: MessageHeader, text: str, status: str, error: str | None = None) -> str:
    """The text/plain form of one message block."""
    lines = [f"{header.as_text()}:", text.rstrip("\n")] if text else [f"{header.as_text()}:"]
    if status == "streaming":
        lines.append("[streaming...]")
    elif status == "failed":
        lines.append(f"[failed: {error}]" if error else "[failed]")
    return "\n".join(lines)


def message_block_html(header: MessageHeader, text: str, status: str, error: str | None = None) -> str:
    """The static HTML form of one message block: the same classes as the live widget's DOM."""
    body = render_markdown(text) if status == "done" else f'<pre class="miniagents-text">{escape(text)}</pre>'
    details = f' <small class="miniagents-details">{escape(header.details)}</small>' if header.details else ""
    error_html = f'<div class="miniagents-message-error">{escape(error)}</div>' if error else ""
    return (
        f'<div class="miniagents-message" data-status="{escape(status)}">'
        f'<div class="miniagents-message-header"><strong class="miniagents-sender">{escape(header.sender)}</strong>'
        f"{details}</div>"
        f'<div class="miniagents-message-body">{body}</div>{error_html}</div>'
    )


def describe_error(error: BaseException) -> str:
    """'Type: message' for showing an exception (CancelledError reads as 'cancelled')."""
    name = type(error).__name__
    if name == "CancelledError":
        return "CancelledError: cancelled"
    text = str(error)
    return f"{name}: {text}" if text else name
