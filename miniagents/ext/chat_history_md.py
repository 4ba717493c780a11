"""
A chat history kept in a human-readable markdown file (`CHAT.md`), one section per message.

Format: every message is a heading line naming its role (and model, if any), a blank line, the
message text, and a blank line::

    ### user

    What is a *promise*?

    ### assistant / gpt-4o-mini

    A value that arrives later.

Roles and models made of non-space characters (without `"` or `\\`) are written as they are; any
other role or model is written as a JSON string (`### "tool result" / "my model"`). Inside a text,
a line that would read as a heading (`### user`, also after leading backslashes or before a `\\r`)
gets one more backslash in front (`\\### user`), removed again on loading. Nothing else is changed, so
any text (markdown headings, fences, unicode, `\\r\\n`, blank lines, leading or trailing whitespace,
empty text) loads back exactly. The file is only ever appended to, one whole section at a time.

A section whose heading line ends in `\\r\\n` (the file went through a Windows editor or git's
`autocrlf`) is read with `\\r\\n` as its line ending.

Files written by the original MiniAgents load too. Its format is a role line over a line of `=` (a
markdown level-1 heading), the text, and a newline; texts are loaded the way its own reader loaded them
(blank lines around a text dropped, `\\r\\n` read as `\\n`)::

    user
    ========================================
    What is a *promise*?

    assistant / gpt-4o-mini
    ========================================
    A value that arrives later.

Only `user`, `assistant` and `system` headings (in any case, as `# user` too) start a message there, and
not inside a fenced code block or a multi-line HTML block. Appending to such a file continues it in this
module's format, after the line `MARKER`: original sections, then ours. Without `MARKER`, a file that
starts in the original format is read in it to the end (a `### user` line there is text, as it was for the
original reader). Its markdown is followed for top-level blocks; inside list items and block quotes that
hold unclosed code blocks the scan is approximate.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from miniagents.chat_history import ChatHistory
from miniagents.ext.llm.llm_common import AssistantMessage, SystemMessage, UserMessage
from miniagents.messages import Message

__all__ = ["MARKER", "ChatHistoryFormatError", "ChatHistoryMD", "format_section", "parse_sections"]

MARKER = "<!-- MiniAgents ChatHistoryMD: '### role / model' sections from here on -->"
"""The line written between sections in the original MiniAgents format and the sections that follow them."""

_BARE_TOKEN = r'[^\s"\\]+'
_QUOTED_TOKEN = r'"(?:[^"\\]|\\.)*"'
_TOKEN = f"(?:{_BARE_TOKEN}|{_QUOTED_TOKEN})"
_HEADING_RE = re.compile(rf"### ({_TOKEN})(?: / ({_TOKEN}))?(\r?)")
# a text line that would read as a heading, possibly already escaped: it gets one more backslash
_HEADING_LIKE_RE = re.compile(rf"\\*### {_TOKEN}(?: / {_TOKEN})?\r?")

_ROLE_CLASSES: dict[str, type[Message]] = {
    "user": UserMessage,
    "assistant": AssistantMessage,
    "system": SystemMessage,
}

Section = tuple[str, str | None, str]  # role, model, text


class ChatHistoryFormatError(ValueError):
    """The file is not a chat history in the ChatHistoryMD format (nothing was read or written)."""


class ChatHistoryMD(ChatHistory):
    """
    A chat history in a markdown file: appended to message by message, loaded back whole.

    A missing file is an empty history (it is created on the first message). A message without a
    `role` is logged with `default_role`. Only role, model and text are kept. A file that is not in
    this format (nor in the original MiniAgents one) raises ChatHistoryFormatError on loading and on
    the first append (nothing is added to it). Histories of one file in one process append one
    section at a time, whole.
    """

    def __init__(self, chat_md_file: str | os.PathLike[str], default_role: str = "assistant") -> None:
        self.chat_md_file = Path(chat_md_file)
        self.default_role = default_role
        self._file = _SharedFile.of(self.chat_md_file)
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    async def alog_message(self, message: Message) -> None:
        """
        Append one message as a section at the end of the file (in a worker thread).

        Raises ChatHistoryFormatError if the existing file is not a chat history in this format.
        """
        role = getattr(message, "role", None)
        model = getattr(message, "model", None)
        text = message.text if message.text is not None else str(message)
        section = format_section(
            role if isinstance(role, str) else self.default_role,
            model if isinstance(model, str) else None,
            text,
        )
        async with self._current_lock():  # this history's messages go in the order they were logged
            await asyncio.to_thread(self._file.append, section)

    async def aload_chat_history(self) -> tuple[Message, ...]:
        """
        Every message of the file, oldest first (`UserMessage`, `AssistantMessage`, `SystemMessage`,
        or a plain `Message` with a `role` field for other roles); a missing file gives `()`.

        Raises ChatHistoryFormatError if the file is not a chat history in this format.
        """
        content = await asyncio.to_thread(self._file.read)
        sections = [] if content is None else parse_sections(content, str(self.chat_md_file))
        return tuple(_build_message(role, model, text) for role, model, text in sections)

    def _current_lock(self) -> asyncio.Lock:
        """One lock per event loop: appends from concurrent tasks go in one at a time, in order."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock


@dataclass(eq=False)
class _SharedFile:
    """
    One chat file as every ChatHistoryMD of this process sees it: one writer at a time, whole sections.

    `checked` is the (size, mtime) of the file when it was last known to be a valid history and
    `needs_marker` whether its last section was in the original format; another process changing the
    file makes the next append check it again.
    """

    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    checked: tuple[int, int] | None = None
    needs_marker: bool = False

    _registry: ClassVar[weakref.WeakValueDictionary[str, _SharedFile]] = weakref.WeakValueDictionary()
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def of(cls, path: Path) -> _SharedFile:
        key = os.path.normcase(os.path.realpath(path))
        with cls._registry_lock:
            shared = cls._registry.get(key)
            if shared is None:
                shared = cls._registry[key] = cls(path)
            return shared

    def read(self) -> str | None:
        with self.lock:  # never half a section
            return self._read()

    def _read(self) -> str | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ChatHistoryFormatError(f"{self.path} is not a UTF-8 text file: {exc}") from None

    def append(self, section: str) -> None:
        with self.lock:
            prefix = ""
            if self.checked is None or self.checked != _stat(self.path):
                content = self._read()
                if content:
                    parsed = _parse(content, str(self.path))  # refuse to append to a file that is not a history
                    self.needs_marker = parsed.ends_in_original_format
                    if not content.endswith("\n"):  # the heading must start a line (the file was edited by hand)
                        prefix = "\n"
                else:
                    self.needs_marker = False
            if self.needs_marker:
                prefix += f"\n{MARKER}\n\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _append_whole(self.path, (prefix + section).encode("utf-8"))
            self.needs_marker = False
            self.checked = _stat(self.path)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _append_whole(path: Path, data: bytes) -> None:
    """Append `data` at the end of the file in as few writes as the system allows (usually one)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
    finally:
        os.close(descriptor)


# ============================================================================ writing


def format_section(role: str, model: str | None, text: str) -> str:
    """The markdown section of one message: heading, blank line, escaped text, blank line."""
    heading = f"### {_format_token(role)}"
    if model is not None:
        heading += f" / {_format_token(model)}"
    return f"{heading}\n\n{_escape_text(text)}\n\n"


def _format_token(value: str) -> str:
    if re.fullmatch(_BARE_TOKEN, value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _escape_text(text: str) -> str:
    return "\n".join("\\" + line if _HEADING_LIKE_RE.fullmatch(line) else line for line in text.split("\n"))


# ============================================================================ reading


def parse_sections(content: str, source: str = "chat history") -> list[Section]:
    """
    The `(role, model, text)` of every section of a ChatHistoryMD file's content (sections in the
    original MiniAgents format first, if the file starts with them).

    Raises ChatHistoryFormatError naming `source` and the line if anything but blank lines comes
    before the first message heading. Lenient with hand edits: a line starting with `###` that is not
    a valid heading is kept as text, and a section may lack its blank lines.
    """
    return _parse(content, source).sections


@dataclass
class _Parsed:
    sections: list[Section]
    ends_in_original_format: bool  # the last section is in the original format: the next one needs MARKER


def _parse(content: str, source: str) -> _Parsed:
    lines = content.split("\n")  # "\n" ends a line; a "\r" before it is dealt with per section
    first = next((number for number, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return _Parsed([], ends_in_original_format=False)
    if lines[first].rstrip("\r") == MARKER:
        return _Parsed(_parse_our_sections(lines, first + 1, source), ends_in_original_format=False)
    if _parse_heading(lines[first]) is not None or not _is_original_start(lines, first):
        return _Parsed(_parse_our_sections(lines, 0, source), ends_in_original_format=False)
    boundary = _end_of_original_sections(lines, first)
    sections = _parse_original_sections("\n".join(lines[first:boundary]))
    if boundary == len(lines):
        return _Parsed(sections, ends_in_original_format=True)
    start = boundary + 1 if lines[boundary].rstrip("\r") == MARKER else boundary
    return _Parsed(sections + _parse_our_sections(lines, start, source), ends_in_original_format=False)


# ------------------------------------------------------------------- this module's format


def _parse_our_sections(lines: list[str], start: int, source: str) -> list[Section]:
    """The sections of `lines[start:]`, in this module's format."""
    headings = []
    for number in range(start, len(lines)):
        parsed = _parse_heading(lines[number])
        if parsed is not None:
            headings.append((number, *parsed))

    first = headings[0][0] if headings else len(lines)
    for number in range(start, first):
        if lines[number].strip():
            raise ChatHistoryFormatError(
                f"{source} is not a MiniAgents chat history: line {number + 1} ({lines[number]!r:.80}) comes "
                "before the first message heading (a line like '### user' or '### assistant / gpt-4o-mini', "
                "or, in the original MiniAgents format, a line 'user' over a line of '='); use another file, "
                "or put that text under a heading"
            )

    sections = []
    for index, (number, role, model, crlf) in enumerate(headings):
        end = headings[index + 1][0] if index + 1 < len(headings) else len(lines)
        chunk = "\n".join(lines[number + 1 : end])  # what follows the heading line: "\n" + text + "\n\n"
        if end < len(lines):
            chunk += "\n"
        if crlf:
            chunk = chunk.replace("\r\n", "\n")
        sections.append((role, model, _unescape_text(_section_body(chunk))))
    return sections


def _section_body(chunk: str) -> str:
    """The escaped text of a section from what follows its heading line: "\\n" + text + "\\n\\n"."""
    if chunk.startswith("\n"):
        chunk = chunk[1:]
    if chunk.endswith("\n\n"):
        return chunk[:-2]
    if chunk.endswith("\n"):  # the last blank line was removed by hand
        return chunk[:-1]
    return chunk


def _parse_heading(line: str) -> tuple[str, str | None, bool] | None:
    """(role, model, whether the line ended in "\\r") of a heading line of this module's format, or None."""
    match = _HEADING_RE.fullmatch(line)
    if match is None:
        return None
    try:
        role = _parse_token(match.group(1))
        model = None if match.group(2) is None else _parse_token(match.group(2))
    except ValueError:  # a quoted token that is not valid JSON: an edited line, keep it as text
        return None
    return role, model, bool(match.group(3))


def _parse_token(token: str) -> str:
    if not token.startswith('"'):
        return token
    value: Any = json.loads(token)
    if not isinstance(value, str):
        raise ValueError(f"not a JSON string: {token!r}")
    return value


def _unescape_text(text: str) -> str:
    return "\n".join(
        line[1:] if line.startswith("\\") and _HEADING_LIKE_RE.fullmatch(line) else line for line in text.split("\n")
    )


# ---------------------------------------------------------------- the original MiniAgents format
# Its writer: f"\n{role}{' / ' + model if model else ''}\n{'=' * 40}\n" + text + "\n". Its reader took every
# top-level markdown h1 whose text is `role` or `role / model` (role in user/assistant/system, any case; the
# model without spaces) as the start of a message, and the lines up to the next one, without the blank lines
# around them, as its text. The scan below follows markdown where that reader relied on it: no headings
# inside fenced code or multi-line HTML blocks, a setext heading only where a paragraph starts.

_ORIGINAL_ROLES = ("user", "assistant", "system")
_SETEXT_UNDERLINE_RE = re.compile(r" {0,3}=+[ \t]*")
_ATX_H1_RE = re.compile(r" {0,3}#(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_ATX_ANY_RE = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")
_THEMATIC_BREAK_RE = re.compile(r" {0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})")
_SETEXT_ANY_UNDERLINE_RE = re.compile(r" {0,3}(?:=+|-+)[ \t]*")
_LIST_ITEM_RE = re.compile(r" {0,3}(?:[-+*]|[0-9]{1,9}[.)])(?:[ \t]+|$)")  # its end: the item's content column
_BLOCK_QUOTE_RE = re.compile(r" {0,3}>")
_LINK_DEFINITION_RE = re.compile(r""" {0,3}\[[^\]]+\]:[ \t]*\S+(?:[ \t]+(?:"[^"]*"|'[^']*'|\([^)]*\)))?[ \t]*""")
_FENCE_OPEN_RE = re.compile(r" {0,3}(`{3,}(?=[^`]*$)|~{3,})")
_FENCE_CLOSE_RE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")
_BLOCK_TAGS = (  # CommonMark 0.31's HTML block names (its type 6)
    "address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|details|dialog|dir|div|dl|"
    "dt|fieldset|figcaption|figure|footer|form|frame|frameset|h1|h2|h3|h4|h5|h6|head|header|hr|html|iframe|legend|"
    "li|link|main|menu|menuitem|nav|noframes|ol|optgroup|option|p|param|search|section|summary|table|tbody|td|"
    "tfoot|th|thead|title|tr|track|ul"
)
_ATTRIBUTE = r"""(?:\s+[a-zA-Z_:][a-zA-Z0-9:._-]*(?:\s*=\s*(?:[^"'=<>`\x00-\x20]+|'[^']*'|"[^"]*"))?)"""
_LONE_TAG = rf"(?:<[A-Za-z][A-Za-z0-9-]*{_ATTRIBUTE}*\s*/?>|</[A-Za-z][A-Za-z0-9-]*\s*>)\s*$"
_HTML_BLOCKS: tuple[tuple[re.Pattern[str], re.Pattern[str] | None, bool], ...] = (
    # markdown's HTML blocks, inside which nothing is a heading: (start, end or None for "at a blank line",
    # whether it may interrupt a paragraph)
    (
        re.compile(r" {0,3}<(?:script|pre|style|textarea)(?=[\s>]|$)", re.I),
        re.compile(r"</(?:script|pre|style|textarea)>", re.I),
        True,
    ),
    (re.compile(r" {0,3}<!--"), re.compile(r"-->"), True),
    (re.compile(r" {0,3}<\?"), re.compile(r"\?>"), True),
    (re.compile(r" {0,3}<![A-Za-z]"), re.compile(r">"), True),
    (re.compile(r" {0,3}<!\[CDATA\["), re.compile(r"\]\]>"), True),
    (re.compile(rf" {{0,3}}</?(?:{_BLOCK_TAGS})(?=\s|/?>|$)", re.I), None, True),
    (re.compile(rf" {{0,3}}{_LONE_TAG}"), None, False),
)


def _original_role(heading: str) -> tuple[str, str | None] | None:
    """(role, model) if a heading's text names a message in the original format, else None."""
    role_part, slash, model_part = heading.strip().partition("/")
    role = role_part.strip().lower()
    if role not in _ORIGINAL_ROLES:
        return None
    if not slash:
        return role, None
    model = model_part.strip()
    if any(character.isspace() for character in model):  # not a role heading after all
        return None
    return role, model


class _OriginalScanner:
    """
    Walks the lines of the original format and says which start a message, keeping the markdown block state
    its reader depended on (top-level blocks only: inside list items and block quotes it is approximate).
    """

    def __init__(self) -> None:
        self._fence: str | None = None  # the opening fence while inside fenced code
        self._html_end: re.Pattern[str] | None = None  # the end of a multi-line HTML block we are in
        self._in_html_until_blank = False  # inside an HTML block that ends at a blank line
        self._paragraph_starts = True  # the next line may start a paragraph (after a blank line or a block)
        # the paragraph began in a list item (its content column) or a block quote (None: at the top level): a
        # setext underline less indented is a lazy continuation line of it (an underline cannot be lazy)
        self._container_column: int | None = None

    def heading(self, lines: list[str], number: int) -> tuple[str, str | None, int] | None:
        """(role, model, lines the heading takes) if `lines[number]` starts a message; advances the state."""
        line = lines[number].rstrip("\r")
        if self._fence is not None:
            close = _FENCE_CLOSE_RE.fullmatch(line)
            if close is not None and close.group(1).startswith(self._fence):
                self._fence = None
                self._paragraph_starts = True
            return None
        if self._html_end is not None:
            if self._html_end.search(line):
                self._html_end = None
                self._paragraph_starts = True
            return None
        if not line.strip(" \t"):  # (markdown's blank line: spaces and tabs only, not any Unicode space)
            self._paragraph_starts = True
            self._in_html_until_blank = False
            return None
        if self._in_html_until_blank:
            return None
        if line.startswith(("    ", "\t", " \t", "  \t", "   \t")):  # indented code, or a paragraph going on
            return None
        if self._opens_block(line):
            return None
        atx = _ATX_H1_RE.fullmatch(line)
        if atx is not None:
            self._paragraph_starts = True
            role = _original_role(atx.group(1) or "")
            return None if role is None else (*role, 1)
        if _ATX_ANY_RE.match(line) or _THEMATIC_BREAK_RE.fullmatch(line):
            self._paragraph_starts = True
            return None
        if not self._paragraph_starts and _SETEXT_ANY_UNDERLINE_RE.fullmatch(line):
            column = self._container_column
            if column is None or len(line) - len(line.lstrip(" ")) >= column:  # the paragraph was a heading
                self._paragraph_starts = True
            return None
        if self._paragraph_starts and _LINK_DEFINITION_RE.fullmatch(line):  # a block of its own
            return None
        starts = self._paragraph_starts and not line.startswith(" ")
        if self._paragraph_starts:
            item = _LIST_ITEM_RE.match(line)
            if item is not None:
                self._container_column = item.end()
            else:
                self._container_column = sys.maxsize if _BLOCK_QUOTE_RE.match(line) else None
        self._paragraph_starts = False
        if starts and number + 1 < len(lines) and _SETEXT_UNDERLINE_RE.fullmatch(lines[number + 1].rstrip("\r")):
            role = _original_role(line)
            if role is not None:
                self._paragraph_starts = True
                return (*role, 2)
        return None

    def _opens_block(self, line: str) -> bool:
        """Enter fenced code or an HTML block if `line` opens one."""
        fence = _FENCE_OPEN_RE.match(line)
        if fence is not None:
            self._fence = fence.group(1)
            return True
        for start, end, interrupts_paragraph in _HTML_BLOCKS:
            opening = start.match(line)
            if opening is not None and (interrupts_paragraph or self._paragraph_starts):
                if end is None:
                    self._in_html_until_blank = True
                elif not end.search(line, opening.end()):
                    self._html_end = end
                self._paragraph_starts = True
                return True
        return False


def _is_original_start(lines: list[str], number: int) -> bool:
    return _OriginalScanner().heading(lines, number) is not None


def _end_of_original_sections(lines: list[str], first: int) -> int:
    """The line where the original format ends: MARKER, else the end of the file."""
    return next((number for number in range(first, len(lines)) if lines[number].rstrip("\r") == MARKER), len(lines))


def _parse_original_sections(content: str) -> list[Section]:
    """The sections of a file (part) in the original format, as its own reader gave them."""
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # its reader: universal newlines
    scanner = _OriginalScanner()
    starts: list[tuple[int, int, str, str | None]] = []  # (heading line, first text line, role, model)
    number = 0
    while number < len(lines):
        found = scanner.heading(lines, number)
        if found is None:
            number += 1
            continue
        role, model, size = found
        starts.append((number, number + size, role, model))
        number += size
    sections: list[Section] = []
    for index, (_, text_start, role, model) in enumerate(starts):
        text_end = starts[index + 1][0] if index + 1 < len(starts) else len(lines)
        text_lines = lines[text_start:text_end]
        while text_lines and not text_lines[0].strip():
            text_lines.pop(0)
        while text_lines and not text_lines[-1].strip():
            text_lines.pop()
        sections.append((role, model, "\n".join(text_lines)))
    return sections


def _build_message(role: str, model: str | None, text: str) -> Message:
    fields: dict[str, Any] = {"text": text, "role": role}
    if model is not None:
        fields["model"] = model
    return _ROLE_CLASSES.get(role, Message)(**fields)
