"""
MessageRecord: what a widget knows about one message it shows, and the task that keeps it current.

A record is primed synchronously with whatever its promise already holds (so a finished reply is
complete the moment it is displayed), then `afollow()` consumes the rest of the tokens. Text reaches the
front end as numbered deltas: delta `n` carries every token that arrived since delta `n - 1`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.notebook.message_forms import MessageForm
from miniagents.notebook.rendering import (
    MessageHeader,
    describe_error,
    message_block_html,
    message_block_text,
    render_markdown,
)

_NOT_METADATA = frozenset({"text", "text_template"})
_TOOL_RESULT_FIELDS = ("tool_call_id", "tool_name", "is_error")
# values that Frozen's JSON writes as they are and that read back as the very same value (a Frozen's float is finite)
_JSON_AS_IS = frozenset({str, int, float, bool, type(None)})


class MessageRecord:
    """One message as a widget shows it: header, text so far, status, and what the front end lacks."""

    __slots__ = (
        "_chunks",
        "_flushed_chunks",
        "changed",
        "delta_seq",
        "error",
        "form",
        "hash_key",
        "header",
        "html",
        "id",
        "metadata",
        "promise",
        "status",
    )

    def __init__(self, record_id: str, promise: MessagePromise, fallback_sender: str | None = None) -> None:
        self.id = record_id
        self.promise = promise
        metadata = promise.preliminary_metadata
        self.header = MessageHeader.from_metadata(metadata, fallback_sender)
        # a tool result is known as one from its first token on; tool calls and error messages once resolved
        self.form = MessageForm.of({name: metadata.get(name) for name in _TOOL_RESULT_FIELDS})
        self._chunks: list[str] = []
        self._flushed_chunks = 0  # how many chunks the front end has received
        self.delta_seq = 0  # how many text deltas the front end has received
        self.status = "streaming"
        self.error: str | None = None
        self.hash_key: str | None = None
        self.metadata: dict[str, Any] | None = None
        self.html: str | None = None
        self.changed: dict[str, Any] | None = None  # the fields the front end lacks (None: all of them, it has none)

    # ------------------------------------------------------------ producing

    def prime(self) -> None:
        """Take, synchronously, the tokens (and the message) the promise already has."""
        pieces, done = self.promise.snapshot()
        for piece in pieces:
            if isinstance(piece, BaseException):
                self._fail(piece)
                return
            self._chunks.append(piece)
        if done and self.promise.done():
            try:
                message = self.promise.result_nowait()
            except Exception:
                return  # its error comes as a piece, or through afollow()
            if isinstance(message, Message):
                self._finish(message)

    async def afollow(self, on_change: Callable[[MessageRecord], None]) -> None:
        """Consume the tokens not taken yet, calling `on_change(self)` after each, until the message ends."""
        if self.status != "streaming":
            return
        skip = len(self._chunks)
        try:
            async for token in self.promise:
                if skip:
                    skip -= 1
                    continue
                self._chunks.append(token)
                on_change(self)
            message = await self.promise
        except BaseException as exc:
            if _is_own_cancellation(exc):
                raise
            self._fail(exc)  # includes a stream that ended with a cancellation (its agent was cancelled)
        else:
            self._finish(message)
        on_change(self)

    def _finish(self, message: Message) -> None:
        text = self.text
        self.status = "done"
        self.hash_key = message.hash_key
        self.metadata = _metadata_of(message)
        self.html = render_markdown(text)
        form = MessageForm.of(self.metadata, message)
        changed = self.changed
        if form != self.form:
            self.form = form
            if changed is not None:
                changed["form"] = form.as_fields()
        if changed is not None:
            changed.update(status="done", hash_key=self.hash_key, metadata=self.metadata, html=self.html)
            changed["tokens"] = self.tokens

    def _fail(self, error: BaseException) -> None:
        self.status = "failed"
        self.error = describe_error(error)
        if self.changed is not None:
            self.changed.update(status="failed", error=self.error, tokens=self.tokens)

    # ------------------------------------------------------------ reading

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._chunks)

    @property
    def tokens(self) -> int:
        """How many tokens (streamed pieces) arrived."""
        return len(self._chunks)

    @property
    def is_streaming(self) -> bool:
        return self.status == "streaming"

    def take_events(self) -> list[list[Any]]:
        """The events the front end lacks: a text delta first, then changed fields; marks them as sent."""
        events: list[list[Any]] = []
        changed = self.changed
        if len(self._chunks) > self._flushed_chunks:
            events.append(["text", self.id, self.delta_seq, "".join(self._chunks[self._flushed_chunks :])])
            self._flushed_chunks = len(self._chunks)
            self.delta_seq += 1
            if changed is not None:
                changed.setdefault("tokens", self.tokens)
        if changed is None:  # its first events: every field
            events.append(["message", self.id, self.fields()])
            self.changed = {}
        elif changed:
            events.append(["message", self.id, changed])
            self.changed = {}
        return events

    def fields(self) -> dict[str, Any]:
        """Every field except the text (the header, status, error, html, hash key, metadata, tokens)."""
        return {
            **self.header.as_fields(),
            "status": self.status,
            "error": self.error,
            "html": self.html,
            "hash_key": self.hash_key,
            "metadata": self.metadata,
            "tokens": self.tokens,
            "form": self.form.as_fields(),
        }

    def snapshot(self) -> dict[str, Any]:
        """The state the front end has been sent: fields, text of the deltas sent so far, and their count."""
        return {**self.fields(), "text": "".join(self._chunks[: self._flushed_chunks]), "seq": self.delta_seq}

    def to_text(self) -> str:
        return message_block_text(self.header, self.text, self.status, self.error, self.form)

    def to_html(self) -> str:
        return message_block_html(self.header, self.text, self.status, self.error, None, self.form)


def _metadata_of(message: Message) -> dict[str, Any]:
    """The metadata fields of `message` (all but its text) as JSON values, keys sorted (its serialized form)."""
    fields = []
    for name, value in message.frozen_fields_and_values(exclude_class=False):
        if type(value) not in _JSON_AS_IS:
            break
        if name not in _NOT_METADATA:
            fields.append((name, value))
    else:  # only values whose JSON reads back as the very same value: no need to make the JSON and parse it
        fields.sort()
        return dict(fields)
    serialized = json.loads(message.serialized)  # JSON values (dates, UUIDs... in their JSON forms)
    return {k: _plain(v) for k, v in serialized.items() if k not in _NOT_METADATA}


def _plain(value: Any) -> Any:
    """A serialized metadata value without the `class_` of plain nested Frozen values (noise on screen)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not (k == "class_" and v == "Frozen")}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class ErrorRecord:
    """An error at a position of a message sequence, shown as a failed block of its own."""

    __slots__ = ("changed", "error", "header", "id")

    def __init__(self, record_id: str, error: BaseException) -> None:
        self.id = record_id
        self.header = MessageHeader(sender="ERROR")
        self.error = describe_error(error)
        self.changed: dict[str, Any] | None = self.fields()

    is_streaming = False
    status = "failed"
    text = ""
    tokens = 0

    def fields(self) -> dict[str, Any]:
        return {**self.header.as_fields(), "status": "failed", "error": self.error, "tokens": 0}

    def take_events(self) -> list[list[Any]]:
        changed, self.changed = self.changed, None
        return [["message", self.id, changed]] if changed else []

    def snapshot(self) -> dict[str, Any]:
        return {**self.fields(), "text": "", "seq": 0}

    def to_text(self) -> str:
        return message_block_text(self.header, "", "failed", self.error)

    def to_html(self) -> str:
        return message_block_html(self.header, "", "failed", self.error)


async def apieces(sequence: MessageSequencePromise) -> AsyncIterator[MessagePromise | BaseException]:
    """
    The pieces of a message sequence from its start: message promises, and the errors at their
    positions (returned, not raised). Only the cancellation of the task iterating it is raised.
    """
    iterator = aiter(sequence)
    while True:
        try:
            piece = await anext(iterator)
        except StopAsyncIteration:
            return
        except BaseException as exc:
            if _is_own_cancellation(exc):
                raise
            piece = exc
        yield piece


def _is_own_cancellation(error: BaseException) -> bool:
    """
    Whether `error` stops the task iterating (its own cancellation, generator exit) rather than being a
    piece read from a stream (an agent that was cancelled or interrupted): only the former propagates.
    """
    if isinstance(error, GeneratorExit):
        return True
    if not isinstance(error, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return task is None or cancelling is None or cancelling() > 0
