"""
MessageSequence: anything sendable (MessageType) flattened, in order, into a MessageSequencePromise.

Items that are ready now (strings, dicts, messages, message promises, finished sequences) are
flattened synchronously at `append()` time. The first item that must be awaited (an unfinished
sequence, an async iterable) is queued with everything after it, and a single task flattens the
queue in order. So a sequence of ready items costs no task at all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any

from pydantic import BaseModel

from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.promising import _FED_BY_OWNER, PromisingContext, StreamAppender, StreamedPromise
from miniagents.promising.sentinels import DEFAULT, Sentinel
from miniagents.promising.sequence import FlatSequence

MessageType = Any  # see miniagents.miniagent_typing for the documented union


class MessageSequence(FlatSequence[Any, MessagePromise]):
    """
    Flattens MessageTypes into `sequence_promise` (a MessageSequencePromise), in order.

    Feed it through `message_appender` (a StreamAppender), or give an `incoming_streamer`.
    """

    def __init__(
        self,
        appender_capture_errors: bool | Sentinel = DEFAULT,
        start_asap: bool | Sentinel = DEFAULT,
        incoming_streamer: AsyncIterable[Any] | None = None,
    ) -> None:
        self._context = PromisingContext.get_current()
        if start_asap is DEFAULT:
            start_asap = self._context.start_everything_asap_by_default
        self._start_asap = bool(start_asap)
        self._queue: deque[Any] = deque()  # items waiting for asynchronous flattening, in order
        self._flattening = False
        self._input_closed = False
        self.on_first_demand: Callable[[], None] | None = None
        if incoming_streamer is not None:
            self.message_appender: StreamAppender[Any] | None = None
            super().__init__(
                incoming_streamer, start_asap=start_asap, sequence_promise_class=MessageSequencePromise
            )
            return
        self.sequence_promise: MessageSequencePromise = MessageSequencePromise(streamer=_FED_BY_OWNER)
        self.sequence_promise._demand_hook = self._on_demand
        self.message_appender = _MessageAppender(self, appender_capture_errors)

    @classmethod
    def turn_into_sequence_promise(cls, messages: MessageType) -> MessageSequencePromise:
        """Any MessageType as a MessageSequencePromise (returned as is if it already is one)."""
        if isinstance(messages, MessageSequencePromise):
            return messages
        sequence = cls()
        with sequence.message_appender:
            sequence.message_appender.append(messages)
        return sequence.sequence_promise

    @classmethod
    async def aresolve_messages(cls, messages: MessageType) -> tuple[Message, ...]:
        """Any MessageType resolved into a tuple of Messages."""
        return await cls.turn_into_sequence_promise(messages).aresolve_messages()

    # ------------------------------------------------- generic (streamer) mode

    async def _flattener(self, item: Any) -> AsyncIterator[MessagePromise]:
        buffer = MessageSequence(start_asap=True)
        with buffer.message_appender:
            buffer.message_appender.append(item)
        async for piece in buffer.sequence_promise._raw_pieces():
            yield piece

    # ------------------------------------------------------ fed mode: input

    def _accept(self, item: Any) -> None:
        """Take one appended item (any MessageType or an exception to raise at this position)."""
        if self._queue:
            self._queue.append(item)  # something before it is still being awaited: keep the order
        else:
            self._flatten_now(item)

    def _close_input(self) -> None:
        self._input_closed = True
        if not self._queue:
            self.sequence_promise._end_stream()

    def _on_demand(self) -> None:
        self._start_asap = True
        if self._queue and not self._flattening:
            self._start_flattening()
        hook, self.on_first_demand = self.on_first_demand, None
        if hook is not None:
            hook()

    # ------------------------------------------------------ fed mode: output

    def _flatten_now(self, item: Any) -> None:
        promise = self.sequence_promise
        item_type = type(item)
        if item_type is str:
            promise._feed(Message(text=item).as_promise)
        elif isinstance(item, MessagePromise):
            promise._feed(item)
        elif isinstance(item, StreamedPromise):
            if item._stream_done:
                self._accept_pieces(item._pieces)
            else:
                self._enqueue(item)
        elif isinstance(item, (str, dict, BaseModel, BaseException)):
            promise._feed(_as_message_promise_or_error(item))
        elif hasattr(item, "__aiter__"):
            self._enqueue(item)
        elif isinstance(item, Iterable) and not isinstance(item, (bytes, bytearray)):
            try:
                for sub_item in item:
                    self._accept(sub_item)
            except Exception as exc:  # a generator that failed half-way: the error takes its place
                self._accept(exc)
        else:
            promise._feed(unsupported_message_type_error(item))

    def _accept_pieces(self, pieces: Iterable[Any]) -> None:
        for piece in pieces:  # message promises, and error pieces raised again at their positions
            self._accept(piece)

    def _enqueue(self, item: Any) -> None:
        self._queue.append(item)
        if self._start_asap and not self._flattening:
            self._start_flattening()

    def _start_flattening(self) -> None:
        self._flattening = True
        self._context._track(self._aflatten_queue())

    async def _aflatten_queue(self) -> None:
        queue = self._queue
        try:
            while queue:
                await self._aflatten(queue[0])  # stays queued meanwhile, so new items line up behind it
                queue.popleft()
        except BaseException as exc:  # cancelled: end the sequence with the error rather than hang
            queue.clear()
            self.sequence_promise._feed(exc)
            self.sequence_promise._end_stream()
            raise
        finally:
            self._flattening = False
        if self._input_closed:
            self.sequence_promise._end_stream()

    async def _aflatten(self, item: Any) -> None:
        feed = self.sequence_promise._feed
        if isinstance(item, MessagePromise):
            feed(item)
        elif isinstance(item, StreamedPromise):
            async for piece in item._raw_pieces():
                if isinstance(piece, (MessagePromise, BaseException)):
                    feed(piece)
                else:
                    await self._aflatten(piece)
        elif isinstance(item, (str, dict, BaseModel, BaseException)):
            feed(_as_message_promise_or_error(item))
        elif hasattr(item, "__aiter__"):
            try:
                async for sub_item in item:
                    await self._aflatten(sub_item)
            except Exception as exc:
                feed(exc)
        elif isinstance(item, Iterable) and not isinstance(item, (bytes, bytearray)):
            try:
                for sub_item in item:
                    await self._aflatten(sub_item)
            except Exception as exc:
                feed(exc)
        else:
            feed(unsupported_message_type_error(item))


class _MessageAppender(StreamAppender[Any]):
    """The appender of a MessageSequence: hands each item straight to the sequence."""

    def __init__(self, sequence: MessageSequence, capture_errors: bool | Sentinel) -> None:
        super().__init__(capture_errors=capture_errors)
        self._sequence = sequence

    def append(self, piece: Any) -> _MessageAppender:
        """Append any MessageType. Raises TypeError for an unsupported type, before anything else."""
        if not is_message_type(piece):
            raise unsupported_message_type_error(piece)
        super().append(piece)
        return self

    def _deliver(self, piece: Any) -> None:
        self._sequence._accept(piece)

    def _deliver_end(self) -> None:
        self._sequence._close_input()

    async def __anext__(self) -> Any:
        raise TypeError("the appender of a MessageSequence feeds its sequence_promise; iterate that instead")


def _as_message_promise_or_error(item: Any) -> MessagePromise | BaseException:
    if isinstance(item, BaseException):
        return item
    try:
        if isinstance(item, str):
            return Message(text=item).as_promise
        if isinstance(item, Message):
            return item.as_promise
        if isinstance(item, dict):
            return Message(**item).as_promise
        if isinstance(item, Frozen):
            return Message(**dict(item.frozen_fields_and_values())).as_promise
        return Message(**item.model_dump()).as_promise
    except Exception as exc:  # e.g. a dict with a value that cannot be frozen: fails at its position
        return exc


def is_message_type(item: Any) -> bool:
    """Whether `item` can be sent or replied (its nested parts are checked when flattened)."""
    return isinstance(item, (str, dict, BaseModel, BaseException, StreamedPromise)) or (
        hasattr(item, "__aiter__") or (isinstance(item, Iterable) and not isinstance(item, (bytes, bytearray)))
    )


def unsupported_message_type_error(item: Any) -> TypeError:
    return TypeError(
        f"cannot send or reply with a value of type {type(item).__name__} ({item!r:.80}); a message must be "
        "a str, dict, Message, pydantic model, MessagePromise, exception, or an (async) iterable of these"
    )
