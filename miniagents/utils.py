"""Loops that chain agents, and helpers that join or split (streamed) messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from miniagents.batch import BatchProgress, BatchRow, amap
from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.miniagent_typing import MessageType
from miniagents.miniagents import MessageSequence, MiniAgent
from miniagents.promising.promising import StreamAppender
from miniagents.promising.sentinels import AWAIT, CLEAR, DEFAULT, Sentinel

ChainStep = MiniAgent | Sentinel | Callable[[Any], Any]

__all__ = [
    "BatchProgress",
    "BatchRow",
    "ChainStep",
    "achain_loop",
    "adialog_loop",
    "amap",
    "join_messages",
    "split_messages",
]


async def adialog_loop(user_agent: MiniAgent, assistant_agent: MiniAgent) -> None:
    """user -> AWAIT -> assistant, forever: the assistant's replies stream into the user agent."""
    await achain_loop([user_agent, AWAIT, assistant_agent])


async def achain_loop(agents: Sequence[ChainStep], initial_input: MessageType | None = None) -> None:
    """
    Pass replies from step to step in a loop until a step raises.

    A step is a MiniAgent, a callable taking the previous replies, AWAIT (resolve everything so far
    before going on) or CLEAR (drop the previous replies). Raises ValueError if there is no AWAIT.
    """
    if not any(step is AWAIT for step in agents):
        raise ValueError(
            "achain_loop needs at least one AWAIT among its agents; without one it would schedule agent "
            "calls forever without ever waiting for them"
        )
    for step in agents:
        if not (isinstance(step, MiniAgent) or step is AWAIT or step is CLEAR or callable(step)):
            raise TypeError(f"achain_loop: {step!r} is not a MiniAgent, a callable, AWAIT or CLEAR")
    messages = initial_input
    while True:
        for step in agents:
            if step is AWAIT:
                if messages is not None:
                    messages = await MessageSequence.aresolve_messages(messages)
            elif step is CLEAR:
                messages = None
            elif isinstance(step, MiniAgent):
                messages = step.inquire(messages)
            elif callable(step):
                messages = step(messages)


def join_messages(
    messages: MessageType,
    delimiter: str | None = "\n\n",
    strip_leading_newlines: bool = False,
    reference_original_messages: bool = True,
    start_asap: bool | Sentinel = DEFAULT,
    **message_metadata: Any,
) -> MessagePromise:
    """Stream the tokens of all `messages` as one message, `delimiter` between them."""
    return MessageSequence.turn_into_sequence_promise(messages).as_single_promise(
        delimiter=delimiter,
        strip_leading_newlines=strip_leading_newlines,
        reference_original_messages=reference_original_messages,
        start_asap=start_asap,
        **message_metadata,
    )


def split_messages(
    messages: MessageType,
    delimiter: str = "\n\n",
    code_block_delimiter: str | None = "```",
    start_asap: bool | Sentinel = DEFAULT,
    **message_metadata: Any,
) -> MessageSequencePromise:
    """
    Split (streamed) text into one message per paragraph, keeping fenced code blocks whole.

    The text of all `messages` is read as if joined by `delimiter`. Paragraphs are the parts between
    delimiters outside code blocks, with leading and trailing newlines removed; blank ones are dropped.
    The split is the same whether the text arrives token by token or in one piece.
    """
    if not delimiter:
        raise ValueError("split_messages: delimiter must be a non-empty string")

    async def paragraph_streamer(_: Any) -> AsyncIterator[MessagePromise]:
        splitter = _ParagraphSplitter(delimiter, code_block_delimiter or None)
        paragraph: StreamAppender[str] | None = None

        def new_paragraphs(events: list[str | None]) -> list[MessagePromise]:
            """Apply splitter events to the current paragraph; the message promises of paragraphs begun."""
            nonlocal paragraph
            begun = []
            for event in events:
                paragraph, message_promise = _apply(event, paragraph, message_metadata)
                if message_promise is not None:
                    begun.append(message_promise)
            return begun

        try:
            first = True
            async for message_promise in MessageSequence.turn_into_sequence_promise(messages):
                if not first:  # the messages read as if joined by the delimiter
                    for begun in new_paragraphs(splitter.feed(delimiter)):
                        yield begun
                first = False
                async for token in message_promise:
                    for begun in new_paragraphs(splitter.feed(token)):
                        yield begun
            for begun in new_paragraphs(splitter.finish()):
                yield begun
        except Exception as exc:
            if paragraph is not None and paragraph.is_open:
                paragraph.append(exc)  # type: ignore[arg-type]
            raise
        finally:
            if paragraph is not None:
                paragraph.close()

    return MessageSequencePromise(streamer=paragraph_streamer, start_asap=start_asap)


def _apply(
    event: str | None, paragraph: StreamAppender[str] | None, metadata: dict[str, Any]
) -> tuple[StreamAppender[str] | None, MessagePromise | None]:
    """Apply one splitter event: None ends the paragraph, a string is text for the current one."""
    if event is None:
        if paragraph is not None:
            paragraph.close()
        return None, None
    if paragraph is None:
        paragraph = StreamAppender(capture_errors=True).open()
        paragraph.append(event)
        tokens = paragraph

        async def token_streamer(_: dict[str, Any]) -> AsyncIterator[str]:
            async for token in tokens:
                if isinstance(token, BaseException):
                    raise token
                yield token

        return paragraph, Message.promise(message_token_streamer=token_streamer, **metadata)
    paragraph.append(event)
    return paragraph, None


class _ParagraphSplitter:
    """
    Incremental paragraph splitter. `feed(text)` and `finish()` return events: a string is text of
    the current paragraph (starting one if needed), None ends the current paragraph.

    Reference rule, scanning left to right: a code fence toggles "inside code" and belongs to the
    text; a delimiter outside code ends the paragraph. Each paragraph is stripped of leading and
    trailing newlines, and dropped if only whitespace remains.
    """

    def __init__(self, delimiter: str, fence: str | None) -> None:
        self._delimiter = delimiter
        self._fence = fence
        self._pending = ""  # text not yet classified (it may be the start of a delimiter or fence)
        self._in_code = False
        self._at_start = True  # still stripping the paragraph's leading newlines
        self._held = ""  # text of a paragraph not yet shown: whitespace only so far
        self._started = False
        self._trailing_newlines = ""

    def feed(self, text: str) -> list[str | None]:
        self._pending += text
        events: list[str | None] = []
        pending = self._pending
        delimiter, fence = self._delimiter, self._fence
        while pending:
            fence_at = pending.find(fence) if fence else -1
            delimiter_at = -1 if self._in_code else pending.find(delimiter)
            if fence_at >= 0 and (delimiter_at < 0 or fence_at <= delimiter_at):
                end = fence_at + len(fence)  # type: ignore[arg-type]
                self._text(pending[:end], events)
                self._in_code = not self._in_code
                pending = pending[end:]
            elif delimiter_at >= 0:
                self._text(pending[:delimiter_at], events)
                self._end_paragraph(events)
                pending = pending[delimiter_at + len(delimiter) :]
            else:
                keep = max(_partial_suffix(pending, fence), 0 if self._in_code else _partial_suffix(pending, delimiter))
                self._text(pending[: len(pending) - keep], events)
                pending = pending[len(pending) - keep :]
                break
        self._pending = pending
        return events

    def finish(self) -> list[str | None]:
        events: list[str | None] = []
        self._text(self._pending, events)
        self._pending = ""
        self._end_paragraph(events)
        return events

    def _text(self, text: str, events: list[str | None]) -> None:
        if self._at_start:
            text = text.lstrip("\n")
            if not text:
                return
            self._at_start = False
        if not self._started:
            self._held += text
            if not self._held.strip():
                return
            self._started = True
            text, self._held = self._held, ""
        content = text.rstrip("\n")
        if content:
            events.append(self._trailing_newlines + content)
            self._trailing_newlines = text[len(content) :]
        else:
            self._trailing_newlines += text

    def _end_paragraph(self, events: list[str | None]) -> None:
        if self._started:
            events.append(None)
        self._at_start = True
        self._held = ""
        self._started = False
        self._trailing_newlines = ""


def _partial_suffix(text: str, marker: str | None) -> int:
    """Length of the longest end of `text` that is a proper beginning of `marker`."""
    if not marker:
        return 0
    for length in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:length]):
            return length
    return 0
