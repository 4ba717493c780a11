"""
Safe rendering of untrusted model text: markdown to sanitised HTML, and the static text/HTML forms of
message blocks shared by every widget.

Model output is untrusted. Markdown is rendered with markdown-it-py with raw HTML disabled (it comes out
escaped), links limited to http(s)/mailto/relative URLs (javascript:, data:, vbscript: and every other
scheme are dropped), and images rendered as plain links (an image would fetch a URL chosen by the model
the moment it is shown). Everything else that reaches HTML goes through `escape()`.

One renderer for every form: a streaming message is rendered as it grows (`GrowingMarkdown`), a complete
one and the static HTML with `render_markdown`, so the text never jumps from one look to another. Single
newlines are kept as line breaks (a three-line poem stays three lines).
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from miniagents import PromiseCancelledError
from miniagents.notebook import assets
from miniagents.notebook.message_forms import TEXT, TEXT_FORM, MessageForm
from miniagents.promising.ext.frozen import Frozen

_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]*):")
_ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})

MESSAGE_STATUSES = ("streaming", "done", "failed")

# How a cancelled message or call reads (the user pressed Stop, a cell was interrupted, a call was cancelled):
# not an error to be alarmed by. A failed message whose error is exactly this shows as "stopped".
STOPPED = "stopped"


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
    renderer = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
    renderer.validateLink = is_safe_url
    renderer.add_render_rule("image", _render_image_as_link)
    renderer.add_render_rule("link_open", _render_link_open)
    return renderer


_MARKDOWN = _create_markdown_renderer()

# One line that markdown can only render as itself in a paragraph: a letter first (no list, heading or block
# marker), no markup or escaping character, no trailing space (which markdown strips)
_PLAIN_LINE = re.compile(r"[A-Za-z][A-Za-z0-9 ,.;:?!'()/-]*(?<! )")


@lru_cache(maxsize=512)
def render_markdown(text: str) -> str:
    """Markdown to HTML that is safe to insert into the page (no raw HTML, no script URLs, no images)."""
    if _PLAIN_LINE.fullmatch(text) is not None:
        return f"<p>{text}</p>\n"  # what markdown-it renders it as, without parsing (most short replies)
    return _MARKDOWN.render(text)


def utf16_length(text: str) -> int:
    """The length of `text` as JavaScript counts it (UTF-16 code units), to address it in the page."""
    return len(text) + sum(ord(char) > 0xFFFF for char in text)


class GrowingMarkdown:
    """
    The markdown of a text that grows (a streaming message), re-rendered as it grows, but never more often
    than its cost allows: after a render that took `t` seconds, the next waits `COST_FACTOR * t`, so a huge
    message costs the kernel a bounded share of its time (the newest text shows as plain text meanwhile).
    """

    COST_FACTOR = 10.0
    __slots__ = ("_cost", "_rendered_at", "html", "upto")

    def __init__(self) -> None:
        self.html = ""
        self.upto = 0  # how much of the text `html` renders, in UTF-16 code units
        self._rendered_at = float("-inf")
        self._cost = 0.0

    def render(self, text: str, now: float) -> bool:
        """Render `text` if it changed and the budget allows (`now`: time.monotonic()); True if rendered."""
        upto = utf16_length(text)
        if upto == self.upto or now - self._rendered_at < self.COST_FACTOR * self._cost:
            return False
        started = time.perf_counter()
        self.html = _MARKDOWN.render(text)  # not the cached render_markdown: every prefix is rendered once
        self._cost = time.perf_counter() - started
        self._rendered_at = now
        self.upto = upto
        return True

    def fields(self) -> dict[str, Any]:
        """The message fields the front end shows the rendered part from."""
        return {"html": self.html, "html_upto": self.upto}


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
        get = metadata.get if isinstance(metadata, (dict, Frozen)) else lambda name: getattr(metadata, name, None)
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


def shown_status(status: str, error: str | None) -> str:
    """The status a message block shows: 'stopped' for a message cut by a cancellation, else `status`."""
    return STOPPED if status == "failed" and error == STOPPED else status


def message_block_text(
    header: MessageHeader, text: str, status: str, error: str | None = None, form: MessageForm = TEXT_FORM
) -> str:
    """The text/plain form of one message block (`form`: shown as tool calls, a tool result, an error...)."""
    lines = [f"{header.as_text()}:", *form.text_lines(text)]
    shown = shown_status(status, error)
    if shown == "streaming":
        lines.append("[streaming...]")
    elif shown == STOPPED:
        lines.append("[stopped]")
    elif shown == "failed":
        lines.append(f"[failed: {error}]" if error else "[failed]")
    return "\n".join(lines)


def message_block_html(
    header: MessageHeader,
    text: str,
    status: str,
    error: str | None = None,
    hash_key: str | None = None,
    form: MessageForm = TEXT_FORM,
) -> str:
    """
    The static HTML form of one message block, element for element what the live widget shows (so the
    output does not change when the live view is replaced by it): header, body rendered as markdown (also
    while streaming; tool calls and results collapsed, an error message as an error block, see `form`), a
    note when stopped, the error when failed.
    """
    shown = shown_status(status, error)
    details = f'<span class="miniagents-details">{escape(header.details)}</span>' if header.details else ""
    hash_html = (
        f'<span class="miniagents-hash" title="hash key {escape(hash_key)}">#{escape(hash_key[:8])}</span>'
        if hash_key
        else ""
    )
    if shown == STOPPED:
        tail = f'<div class="miniagents-message-note">{STOPPED}</div>'
    elif error:
        tail = f'<div class="miniagents-message-error">{escape(error)}</div>'
    else:
        tail = ""
    kind = f' data-kind="{escape(form.kind)}"' if form.kind != TEXT else ""
    body = f'<div class="miniagents-message-body jp-RenderedHTMLCommon">{render_markdown(text) if text else ""}</div>'
    return (
        f'<div class="miniagents-message" data-status="{escape(shown)}"{kind}>'
        f'<div class="miniagents-message-header"><span class="miniagents-sender">{escape(header.sender)}</span>'
        f"{details}{hash_html}</div>"
        f"{form.html_parts(text, body)}{tail}</div>"
    )


def entry_html(entry: Any) -> str:
    """
    The static HTML of a message or error record (anything with header, text, status, error, and maybe
    hash_key and form).
    """
    return message_block_html(
        entry.header,
        entry.text,
        entry.status,
        entry.error,
        getattr(entry, "hash_key", None),
        getattr(entry, "form", TEXT_FORM),
    )


def static_html(root_class: str, content: str, **data: str) -> str:
    """
    A widget's static text/html: its own small stylesheet (theme variables with fallbacks, so it reads the
    same in JupyterLab, nbconvert HTML or any page), then `<div class="root_class" data-*>content</div>`.
    """
    attributes = "".join(f' data-{name}="{escape(value)}"' for name, value in data.items())
    return f'<style>{assets.static_stylesheet()}</style><div class="{root_class}"{attributes}>{content}</div>'


def describe_error(error: BaseException) -> str:
    """'Type: message' for showing an exception; a cancellation reads as STOPPED ('stopped')."""
    if isinstance(error, (asyncio.CancelledError, PromiseCancelledError)):
        return STOPPED
    name = type(error).__name__
    text = str(error)
    return f"{name}: {text}" if text else name
