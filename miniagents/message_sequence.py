"""
MessageSequence: anything sendable (MessageType) flattened, in order, into a MessageSequencePromise.

Items that are ready now (strings, dicts, messages, message promises, finished sequences) are
flattened synchronously at `append()` time. The first item that must be awaited (an unfinished
sequence, an async iterable) is queued with everything after it, and one task flattens the queue in
order. A sequence of ready items therefore costs no task at all.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from pydantic import BaseModel

from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.promising.context import NO_CONTEXT_MESSAGE
from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.ownership import TaskOwner, current_owner_var
from miniagents.promising.promising import (
    Forwarding,
    PromisingContext,
    StreamAppender,
    StreamedPromise,
    StreamWriter,
)
from miniagents.promising.sentinels import DEFAULT, Sentinel
from miniagents.promising.sequence import FlatSequence


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
        if incoming_streamer is not None:
            self.message_appender: MessageAppender | None = None
            super().__init__(incoming_streamer, start_asap=start_asap, sequence_promise_class=MessageSequencePromise)
            return
        self.message_appender = MessageAppender(appender_capture_errors, start_asap)
        self.sequence_promise: MessageSequencePromise = self.message_appender.sequence_promise

    @classmethod
    def turn_into_sequence_promise(cls, messages: Any) -> MessageSequencePromise:
        """Any MessageType as a MessageSequencePromise (returned as is if it already is one)."""
        if isinstance(messages, MessageSequencePromise):
            return messages
        appender = MessageAppender(capture_errors=True)
        with appender:
            appender.append(messages)
        return appender.sequence_promise

    @classmethod
    async def aresolve_messages(cls, messages: Any) -> tuple[Message, ...]:
        """Any MessageType resolved into a tuple of Messages."""
        return await cls.turn_into_sequence_promise(messages).aresolve_messages()

    async def _flattener(self, item: Any) -> AsyncIterator[MessagePromise | BaseException]:  # type: ignore[override]
        """Streamer mode: flatten one incoming item (same rules as the appender)."""
        async for piece in MessageSequence.turn_into_sequence_promise(item).raw_pieces():
            yield piece


class _OutOfOrder:
    """An appended item whose messages may overtake the items before it."""

    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item


class _Flattening(TaskOwner):
    """
    The asynchronous flattening of one MessageAppender, while items wait in its queue: the forwarding of the
    sequence at the head, or the task flattening the rest. A child of the owner that appended (or first waited
    for) the first such item, so that it counts as running there (an agent call is not settled before its
    replies are) and is cancelled with it. It leaves that owner once the queue is empty.
    """

    __slots__ = ("active", "appender", "forwarding")

    def __init__(self, appender: MessageAppender, context: PromisingContext) -> None:
        owner = current_owner_var.get()
        super().__init__(context, owner if owner is not None and owner.context is context else context.root_owner)
        self.releasable = False  # not before the queue is flattened
        self.appender = appender
        self.forwarding: Forwarding | None = None
        self.active = True

    def is_idle(self) -> bool:
        return not self.active and super().is_idle()

    def end(self, leave: bool) -> None:
        """The queue is flattened (or cut): leave the owner now if `leave` (else the ending task's callback does)."""
        self.active = False
        self.forwarding = None
        self.releasable = True
        if leave and self.attached:
            parent = self.parent_owner
            if parent is not None:
                parent.release(self)

    def cancel(self, sparing: asyncio.Task[Any] | None = None) -> bool:
        cancelled = super().cancel(sparing)  # a flattening task: its done callback cuts the sequence
        forwarding = self.forwarding
        if forwarding is not None and forwarding.cancel():
            self.appender.cut_flattening()
            return True
        return cancelled


class MessageAppender(StreamAppender[Any]):
    """
    The appender of a MessageSequence: each appended MessageType is flattened, in order, into the producer
    end of `sequence_promise` (iterating the appender iterates that promise).

    What is ready is flattened synchronously; the first item that must be awaited is queued with everything
    after it, and one task (owned by whoever appended it) flattens the queue in order.
    """

    __slots__ = (
        "_closed",
        "_context",
        "_flattening",
        "_iterator",
        "_out_of_order",
        "_owner",
        "_pending",
        "_start_asap",
        "_writer",
        "on_first_demand_callback",
        "sequence_promise",
    )

    def __init__(
        self,
        capture_errors: bool | Sentinel = DEFAULT,
        start_asap: bool | Sentinel = DEFAULT,
        *,
        sequence_promise: MessageSequencePromise | None = None,
    ) -> None:
        """
        `sequence_promise`: a promise made by `MessageSequencePromise.fed_later()` to feed (in its context; what its
        source gives it when its stream is first needed), instead of a new one. Raises PromisingError if that
        promise has its stream already, RuntimeError outside a context.
        """
        if sequence_promise is not None:
            context = sequence_promise.context
        else:
            owner = current_owner_var.get()  # (the active context, read inline: one appender per agent call)
            if owner is None:
                raise RuntimeError(NO_CONTEXT_MESSAGE)
            context = owner.context
        self._context = context
        # (StreamAppender.__init__, inlined: one appender per agent call)
        default = context.appenders_capture_errors_by_default
        self.capture_errors = default if capture_errors is DEFAULT else bool(capture_errors)
        self._queue = None
        self._waiter = None
        self._is_open = False
        self._is_closed = False
        self._start_asap = context.start_everything_asap_by_default if start_asap is DEFAULT else bool(start_asap)
        self._pending: deque[Any] | None = None  # items waiting for asynchronous flattening, in order
        self._flattening = False
        self._owner: _Flattening | None = None  # while items wait in the queue
        self._closed = False
        self._out_of_order = 0  # out-of-order items still being delivered
        self._iterator: AsyncIterator[Any] | None = None
        self.on_first_demand_callback: Callable[[], None] | None = None
        writer: StreamWriter[Any] = StreamWriter()
        self._writer = writer
        if sequence_promise is None:
            promise: MessageSequencePromise = MessageSequencePromise.fed_by(writer, context)
        else:
            sequence_promise.feed_with(writer)
            promise = sequence_promise
        self.sequence_promise: MessageSequencePromise = promise
        if not self._start_asap:  # lazy: the first consumer to wait starts the work
            writer.on_first_demand(self._on_demand)

    def on_first_demand(self, callback: Callable[[], None] | None) -> None:
        """Lazy sequences: call `callback()` once, when a consumer first waits for the sequence."""
        self.on_first_demand_callback = callback

    def append(self, piece: Any) -> MessageAppender:
        """
        Append any MessageType. Raises TypeError for an unsupported type, before anything else;
        AppenderNotOpenError / AppenderClosedError like StreamAppender.append().
        """
        piece_type = type(piece)
        if piece_type is not str and piece_type is not MessageSequencePromise and not is_message_type(piece):
            raise unsupported_message_type_error(piece)
        if not self._is_open:
            super().append(piece)  # raises: not open yet, or closed
        elif self._pending:  # (self._deliver(piece), inlined: this runs for every reply)
            self._pending.append(piece)  # something before it is still being awaited: keep the order
        else:
            self._flatten_now(piece)
        return self

    def append_out_of_order(self, piece: Any) -> MessageAppender:
        """
        Append any MessageType whose messages join the sequence as soon as each is available, ahead of
        earlier items still being awaited (the sequence stays open until they all arrived).
        Raises TypeError for an unsupported type, AppenderNotOpenError / AppenderClosedError like append().
        """
        if not is_message_type(piece):
            raise unsupported_message_type_error(piece)
        super().append(_OutOfOrder(piece))
        return self

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.sequence_promise.__aiter__()

    async def __anext__(self) -> Any:
        """The next message promise of `sequence_promise` (the appender as an iterator of its own output)."""
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = self.sequence_promise.__aiter__()
        return await iterator.__anext__()

    # ---------------------------------------------------------------- input

    def _deliver(self, piece: Any) -> None:
        if type(piece) is _OutOfOrder:
            self._start_out_of_order(piece.item)
        elif self._pending:
            self._pending.append(piece)  # something before it is still being awaited: keep the order
        else:
            self._flatten_now(piece)

    def _deliver_end(self) -> None:
        self._closed = True
        if not self._pending and not self._out_of_order:
            self._writer.end()  # (close(), without its check: the writer feeds this appender's promise)

    def _close_when_complete(self) -> None:
        if self._closed and not self._pending and not self._out_of_order:
            self._writer.close()

    def _start_out_of_order(self, item: Any) -> None:
        """Each part of `item` (the elements of a list, at any depth) is delivered on its own, when available."""
        stack: list[Iterator[Any]] = [iter((item,))]
        while stack:
            part = _next_from(stack)
            if part is _EXHAUSTED:
                return
            if isinstance(part, Iterable) and not isinstance(part, (str, bytes, bytearray, dict, BaseModel)):
                stack.append(iter(part))
                continue
            sequence = MessageSequence.turn_into_sequence_promise(part)
            pieces, done = sequence.snapshot()
            if done:  # ready now: no need to wait for anything
                for piece in pieces:
                    self._writer.send(piece)
                continue
            self._out_of_order += 1
            self._context.create_task(self._adeliver_out_of_order(sequence), on_done=self._out_of_order_done)

    async def _adeliver_out_of_order(self, sequence: MessageSequencePromise) -> None:
        writer = self._writer
        async for piece in sequence.raw_pieces():  # each message (or error) as soon as it is there
            if writer.done:
                return
            writer.send(piece)

    def _out_of_order_done(self, task: asyncio.Task[Any]) -> None:
        self._out_of_order -= 1
        if task.cancelled():
            self._writer.cancel("out-of-order replies were cancelled before they all arrived")
        self._close_when_complete()

    def _on_demand(self) -> None:
        self._start_asap = True
        if self._pending and not self._flattening:
            self._start_flattening()
        hook, self.on_first_demand_callback = self.on_first_demand_callback, None
        if hook is not None:
            hook()

    # --------------------------------------------------------------- output

    def _flatten_now(self, item: Any) -> None:
        """Flatten what is ready now; nested iterables use an explicit stack (any depth, no recursion)."""
        writer = self._writer
        if writer.done:  # cut (cancelled): nobody can receive it any more
            return
        send = writer.send
        stack: list[Iterator[Any]] = []
        while True:
            if self._pending:  # something before this item must be awaited: queue it to keep the order
                self._pending.append(item)
            elif type(item) is str:
                send(MessagePromise.of_text(item))
            elif isinstance(item, MessagePromise):
                send(item)
            elif isinstance(item, StreamedPromise):
                pieces = item.pieces_if_done()
                if pieces is not None:  # message promises, and errors raised again at their positions
                    stack.append(iter(pieces))
                else:
                    self._enqueue(item)
            elif isinstance(item, (str, dict, BaseModel, BaseException)):
                send(_as_message_promise_or_error(item))
            elif hasattr(item, "__aiter__"):
                self._enqueue(item)
            elif isinstance(item, Iterable) and not isinstance(item, (bytes, bytearray)):
                stack.append(iter(item))
            else:
                send(unsupported_message_type_error(item))
            if not stack:  # (the common single item: no call to find that nothing follows)
                return
            item = _next_from(stack)
            if item is _EXHAUSTED:
                return

    def _enqueue(self, item: Any) -> None:
        if self._pending is None:
            self._pending = deque()
        self._pending.append(item)
        if self._start_asap and not self._flattening:
            self._start_flattening()

    def _start_flattening(self) -> None:
        """
        Flatten the queue, in order: the messages of a sequence at its head are forwarded synchronously as they
        arrive (no task); anything else that must be awaited is flattened by a task. Both belong to one
        `_Flattening` owner (see there), so cancelling the owner that appended cuts the sequence.
        """
        self._flattening = True
        flattening = self._owner
        if flattening is None:
            flattening = self._owner = _Flattening(self, self._context)
        pending = self._pending
        assert pending
        head = pending[0]
        if type(head) is MessageSequencePromise:  # (its pieces are message promises and errors, nothing to flatten)
            flattening.forwarding = head.forward_pieces(self._forward_piece, self._forwarded_all)
        else:
            flattening.start(self._aflatten_pending(), on_done=self._flattening_task_done)

    def _forward_piece(self, piece: Any) -> None:
        writer = self._writer
        if writer.done:
            return
        if isinstance(piece, (MessagePromise, BaseException)):
            writer.append(piece)  # (send(), without its checks: done is checked above)
        else:  # a MessageSequencePromise made with a streamer of its own may yield anything sendable
            writer.append(_as_message_promise_or_error(piece))

    def _forwarded_all(self) -> MessageSequencePromise | None:
        """
        The sequence at the head of the queue is done: flatten what waited behind it, up to the next thing to wait
        for. Returns the next sequence to forward the same way, if that is it.
        """
        pending = self._pending
        assert pending
        pending.popleft()
        while pending:
            head = pending[0]
            if type(head) is MessageSequencePromise:
                pieces = head.pieces_if_done()
                if pieces is None:
                    return head  # forwarded as it streams, by the same forwarding
                pending.popleft()
                for piece in pieces:
                    self._forward_piece(piece)
                continue
            pending.popleft()
            self._flattening = False
            self._pending = None  # flattened on its own: what it must wait for is queued ahead of the rest
            self._flatten_now(head)  # (its flattening starts if it must be waited for: `_enqueue()`)
            queued_now = self._pending
            self._pending = pending
            if queued_now:
                pending.extendleft(reversed(queued_now))
                return None
            self._flattening = True
        self._flattening = False
        self._finish_flattening(leave=True)
        return None

    def _finish_flattening(self, leave: bool) -> None:
        flattening, self._owner = self._owner, None
        if flattening is not None:
            flattening.end(leave)
        if self._closed and not self._out_of_order and not self._pending:
            self._writer.close()

    def _flattening_task_done(self, _: asyncio.Task[Any]) -> None:
        """However the flattening task ended (cancelled before its first step too), the sequence gets an end."""
        self._flattening = False
        if self._pending:
            self._pending.clear()
            self._writer.cancel("flattening of a message sequence was cancelled before it finished")
        self._finish_flattening(leave=False)  # the task's owner leaves its own parent when the task is done

    def cut_flattening(self) -> None:
        """The owner of the flattening was cancelled: drop the queue, end the sequence with a cut."""
        self._flattening = False
        if self._pending:
            self._pending.clear()
        self._writer.cancel("flattening of a message sequence was cancelled before it finished")
        self._finish_flattening(leave=True)

    async def _aflatten_pending(self) -> None:
        pending = self._pending
        assert pending is not None
        while pending:
            await self._aflatten(pending[0])  # stays queued meanwhile, so new items line up behind it
            pending.popleft()
        self._flattening = False

    async def _aflatten(self, item: Any) -> None:
        """Flatten one queued item, awaiting what must be awaited; nesting uses an explicit stack."""
        send = self._writer.send
        stack: list[Any] = []  # of Iterator | AsyncIterator
        while True:
            if isinstance(item, (MessagePromise, BaseException)):
                send(item)
            elif isinstance(item, StreamedPromise):
                stack.append(item.raw_pieces())  # error pieces come back as values, sent at their position
            elif isinstance(item, (str, dict, BaseModel)):
                send(_as_message_promise_or_error(item))
            elif hasattr(item, "__aiter__"):
                stack.append(item.__aiter__())
            elif isinstance(item, Iterable) and not isinstance(item, (bytes, bytearray)):
                stack.append(iter(item))
            else:
                send(unsupported_message_type_error(item))
            item = await _anext_from(stack)
            if item is _EXHAUSTED:
                return


_EXHAUSTED = object()


def _next_from(stack: list[Iterator[Any]]) -> Any:
    """The next item of the innermost unfinished iterator; an iterator that fails yields its error."""
    while stack:
        try:
            return next(stack[-1])
        except StopIteration:
            stack.pop()
        except Exception as exc:  # a generator that failed half-way: the error takes its place
            stack.pop()
            return exc
    return _EXHAUSTED


async def _anext_from(stack: list[Any]) -> Any:  # of Iterator | AsyncIterator
    while stack:
        iterator = stack[-1]
        try:
            if hasattr(iterator, "__anext__"):  # (not isinstance: an ABC check costs more than the rest)
                return await iterator.__anext__()
            return next(iterator)
        except (StopIteration, StopAsyncIteration):
            stack.pop()
        except Exception as exc:
            stack.pop()
            return exc
    return _EXHAUSTED


def _as_message_promise_or_error(item: Any) -> MessagePromise | BaseException:
    if isinstance(item, BaseException):
        return item
    try:
        if isinstance(item, str):
            return MessagePromise.of_text(item)
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
