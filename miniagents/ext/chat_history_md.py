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
a line that would read as a heading (`### user`, also after leading backslashes) gets one more
backslash in front (`\\### user`), removed again on loading. Nothing else is changed, so any text
(markdown headings, fences, unicode, blank lines, leading or trailing whitespace, empty text) loads
back exactly. The file is only ever appended to.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

from miniagents.chat_history import ChatHistory
from miniagents.ext.llm.llm_common import AssistantMessage, SystemMessage, UserMessage
from miniagents.messages import Message

__all__ = ["ChatHistoryFormatError", "ChatHistoryMD"]

_BARE_TOKEN = r'[^\s"\\]+'
_QUOTED_TOKEN = r'"(?:[^"\\]|\\.)*"'
_TOKEN = f"(?:{_BARE_TOKEN}|{_QUOTED_TOKEN})"
_HEADING_RE = re.compile(rf"### ({_TOKEN})(?: / ({_TOKEN}))?")
# a text line that would read as a heading, possibly already escaped: it gets one more backslash
_HEADING_LIKE_RE = re.compile(rf"\\*### {_TOKEN}(?: / {_TOKEN})?")

_ROLE_CLASSES: dict[str, type[Message]] = {
    "user": UserMessage,
    "assistant": AssistantMessage,
    "system": SystemMessage,
}


class ChatHistoryFormatError(ValueError):
    """The file is not a chat history in the ChatHistoryMD format (nothing was read or written)."""


class ChatHistoryMD(ChatHistory):
    """
    A chat history in a markdown file: appended to message by message, loaded back whole.

    A missing file is an empty history (it is created on the first message). A message without a
    `role` is logged with `default_role`. Only role, model and text are kept. A file that is not in
    this format raises ChatHistoryFormatError on loading and on the first append (nothing is added
    to it).
    """

    def __init__(self, chat_md_file: str | os.PathLike[str], default_role: str = "assistant") -> None:
        self.chat_md_file = Path(chat_md_file)
        self.default_role = default_role
        self._format_checked = False
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
        async with self._current_lock():
            await asyncio.to_thread(self._append_section, section)

    async def aload_chat_history(self) -> tuple[Message, ...]:
        """
        Every message of the file, oldest first (`UserMessage`, `AssistantMessage`, `SystemMessage`,
        or a plain `Message` with a `role` field for other roles); a missing file gives `()`.

        Raises ChatHistoryFormatError if the file is not a chat history in this format.
        """
        content = await asyncio.to_thread(self._read)
        return tuple(_build_message(role, model, text) for role, model, text in self._parse(content))

    def _current_lock(self) -> asyncio.Lock:
        """One lock per event loop: appends from concurrent tasks go in one at a time."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _read(self) -> str | None:
        try:
            raw = self.chat_md_file.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ChatHistoryFormatError(f"{self.chat_md_file} is not a UTF-8 text file: {exc}") from None

    def _parse(self, content: str | None) -> list[tuple[str, str | None, str]]:
        return [] if content is None else parse_sections(content, str(self.chat_md_file))

    def _append_section(self, section: str) -> None:
        if not self._format_checked:
            self._parse(self._read())  # refuse to append to a file that is not a chat history
            self._format_checked = True
        self.chat_md_file.parent.mkdir(parents=True, exist_ok=True)
        with self.chat_md_file.open("a+b") as file:
            size = file.seek(0, os.SEEK_END)
            if size:
                file.seek(size - 1)
                if file.read(1) != b"\n":  # the heading must start a line (the file was edited by hand)
                    section = "\n" + section
            file.write(section.encode("utf-8"))


def format_section(role: str, model: str | None, text: str) -> str:
    """The markdown section of one message: heading, blank line, escaped text, blank line."""
    heading = f"### {_format_token(role)}"
    if model is not None:
        heading += f" / {_format_token(model)}"
    return f"{heading}\n\n{_escape_text(text)}\n\n"


def parse_sections(content: str, source: str = "chat history") -> list[tuple[str, str | None, str]]:
    """
    The `(role, model, text)` of every section of a ChatHistoryMD file's content.

    Raises ChatHistoryFormatError if anything but blank lines comes before the first heading.
    Lenient with hand edits: a line starting with `###` that is not a valid heading is kept as text,
    and a section may lack its blank lines.
    """
    lines = content.split("\n")  # only "\n" ends a line: "\r", "\u2028" etc. are part of the text
    starts = []
    position = 0
    for line in lines:
        starts.append(position)
        position += len(line) + 1
    headings = []
    for number, line in enumerate(lines):
        parsed = _parse_heading(line)
        if parsed is not None:
            headings.append((number, *parsed))

    first = headings[0][0] if headings else len(lines)
    for number in range(first):
        if lines[number].strip():
            raise ChatHistoryFormatError(
                f"{source} is not a MiniAgents chat history: line {number + 1} ({lines[number]!r:.80}) comes "
                "before the first message heading (a line like '### user' or '### assistant / gpt-4o-mini'); "
                "use another file, or put that text under a heading"
            )

    sections = []
    for index, (number, role, model) in enumerate(headings):
        body_start = starts[number] + len(lines[number]) + 1
        body_end = starts[headings[index + 1][0]] if index + 1 < len(headings) else len(content)
        sections.append((role, model, _unescape_text(_section_body(content[body_start:body_end]))))
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


def _parse_heading(line: str) -> tuple[str, str | None] | None:
    match = _HEADING_RE.fullmatch(line)
    if match is None:
        return None
    try:
        role = _parse_token(match.group(1))
        model = None if match.group(2) is None else _parse_token(match.group(2))
    except ValueError:  # a quoted token that is not valid JSON: an edited line, keep it as text
        return None
    return role, model


def _format_token(value: str) -> str:
    if re.fullmatch(_BARE_TOKEN, value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _parse_token(token: str) -> str:
    if not token.startswith('"'):
        return token
    value: Any = json.loads(token)
    if not isinstance(value, str):
        raise ValueError(f"not a JSON string: {token!r}")
    return value


def _escape_text(text: str) -> str:
    return "\n".join("\\" + line if _HEADING_LIKE_RE.fullmatch(line) else line for line in text.split("\n"))


def _unescape_text(text: str) -> str:
    return "\n".join(
        line[1:] if line.startswith("\\") and _HEADING_LIKE_RE.fullmatch(line) else line for line in text.split("\n")
    )


def _build_message(role: str, model: str | None, text: str) -> Message:
    fields: dict[str, Any] = {"text": text, "role": role}
    if model is not None:
        fields["model"] = model
    return _ROLE_CLASSES.get(role, Message)(**fields)
