"""
Promises and replayable streamed promises (their context and the hand-fed StreamAppender live in their own
modules and are re-exported here: this is the public module path of all four).

Vocabulary: a *resolver* computes a promise's whole value; a *streamer* produces the pieces of a streamed
promise; a `StreamWriter` is the producer end of a stream fed by hand. The state of a stream lives in one
place (`_StreamState`); the replayable `StreamedPromise` is its consumer end, the writer its producer end (a
stream fed by hand keeps its state in its writer, a `_StreamState` itself).
Consumers wait in a `ParkingLot`: one future per waiter (cancelling one waiter never disturbs the others),
never polling.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import Any, Generic, Protocol

from miniagents.promising.appender import StreamAppender
from miniagents.promising.context import NO_CONTEXT_MESSAGE, PromisingContext, logger
from miniagents.promising.errors import FunctionNotProvidedError, PromiseCancelledError, PromisingError
from miniagents.promising.ownership import current_owner_var
from miniagents.promising.promise_typing import PIECE, WHOLE, T
from miniagents.promising.sentinels import DEFAULT, NO_VALUE, NoValue, Sentinel

__all__ = [
    "Forwarding",
    "ParkingLot",
    "Promise",
    "PromisingContext",
    "StreamAppender",
    "StreamWriter",
    "StreamedPromise",
]


class ParkingLot:
    """
    Tasks waiting for something: `await lot.park(loop)` returns once `unpark_all()` is called. A waiter is a
    future, or a `Forwarding` (woken the same way, it runs synchronously instead of resuming a task).
    """

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        # the waiters, or a Forwarding alone (the commonest follower of a stream: no list for it); read-only outside
        self.waiters: list[asyncio.Future[None] | Forwarding] | Forwarding | None = None

    def __bool__(self) -> bool:
        return bool(self.waiters)

    async def park(self) -> None:
        """Wait until `unpark_all()` (cancelling this wait leaves the other waiters alone)."""
        waiter = asyncio.get_running_loop().create_future()
        waiters = self.waiters
        if waiters is None:
            self.waiters = [waiter]
        elif isinstance(waiters, list):
            waiters.append(waiter)
        else:
            self.waiters = [waiters, waiter]
        try:
            await waiter
        finally:
            if not waiter.done():  # we were cancelled: leave the other waiters alone
                waiters = self.waiters
                if type(waiters) is list and waiter in waiters:
                    waiters.remove(waiter)

    def unpark_all(self) -> None:
        """Wake every waiting task."""
        waiters = self.waiters
        if waiters:
            self.waiters = None
            if type(waiters) is Forwarding:
                waiters.wake()
                return
            for waiter in waiters:  # type: ignore[union-attr]  # (a list)
                if type(waiter) is Forwarding:  # (its own check: no done() / set_result() calls in between)
                    waiter.wake()
                elif not waiter.done():
                    waiter.set_result(None)

    def add_follower(self, forwarding: Forwarding) -> None:
        """Make `forwarding` wait here (alone, it is kept without a list)."""
        waiters = self.waiters
        if waiters is None:
            self.waiters = forwarding
        elif isinstance(waiters, list):
            waiters.append(forwarding)
        else:
            self.waiters = [waiters, forwarding]

    def remove_follower(self, forwarding: Forwarding) -> None:
        """`forwarding` waits here no longer (nothing happens if it did not)."""
        waiters = self.waiters
        if waiters is forwarding:
            self.waiters = None
        elif type(waiters) is list and forwarding in waiters:
            waiters.remove(forwarding)


def check_home_loop(home_loop: asyncio.AbstractEventLoop | None, what: str) -> None:
    """
    Raise RuntimeError if `what` (a promise of a context whose tasks run on `home_loop`) is waited for on
    another event loop: nothing there could ever feed it, so the wait would never end.
    """
    if home_loop is None:
        return
    loop = asyncio.get_running_loop()
    if home_loop is not loop and not home_loop.is_closed():
        raise RuntimeError(
            f"this {what} belongs to a MiniAgents context whose event loop is not the one running here (e.g. "
            "MiniAgents().run() called inside a running loop runs on its own loop while the caller's loop is "
            "blocked, so the promise could never complete). `await` it directly in its own context instead, "
            "or make the agent calls inside the coroutine given to run() (`MiniAgents().run(main())`)."
        )


class _Runner(threading.local):
    """The forwardings woken and not run yet, on this thread (run one after the other: no recursion)."""

    def __init__(self) -> None:
        self.queue: deque[Forwarding] = deque()
        self.running = False


_runner = _Runner()


class Forwarding:
    """
    Hands every piece of a stream, from its first, to `on_piece(piece)` as soon as it is produced, then calls
    `on_end()` once the stream is done: synchronously, with no task and no await (error pieces are passed as
    values). `on_end()` may return another streamed promise to go on with in the same way, or None to stop.
    Made by `StreamedPromise.forward_pieces()`. Forwardings woken while others run are queued and run after
    them, so chains of any length (a reply forwarded through many levels) never recurse.
    """

    __slots__ = ("_index", "_on_end", "_on_piece", "_queued", "_state", "active")

    def __init__(
        self,
        state: _StreamState,
        on_piece: Callable[[Any], None],
        on_end: Callable[[], StreamedPromise[Any, Any] | None],
    ) -> None:
        self._state = state
        self._on_piece = on_piece
        self._on_end = on_end
        self._index = 0
        self._queued = False
        self.active = True  # until the stream is done and `on_end()` was called, or cancel()

    def cancel(self) -> bool:
        """Stop forwarding (nothing more is handed on, `on_end()` is not called); False if it had ended."""
        if not self.active:
            return False
        self.active = False
        self._state.remove_follower(self)
        return True

    # the waiter protocol of ParkingLot (a future's two methods it uses): woken -> run soon, on this thread
    def done(self) -> bool:
        return not self.active

    def set_result(self, _: None) -> None:
        self.wake()

    def wake(self) -> None:
        """Run now (or, if forwardings are running on this thread, right after them)."""
        if self._queued or not self.active:
            return
        runner = _runner
        if runner.running:  # a forwarding runs on this thread (maybe the one that woke this one): after it
            self._queued = True
            runner.queue.append(self)
            return
        runner.running = True  # run here, then the forwardings this one wakes, one after the other (no recursion)
        try:
            self.take_turn()
            queue = runner.queue
            while queue:
                queue.popleft().take_turn()
        finally:
            runner.running = False

    def take_turn(self) -> None:
        """Hand on what is there, then wait for more (run by the queue of this thread's forwardings)."""
        self._queued = False
        try:
            state = self._state
            while self.active:
                pieces = state.pieces
                index = self._index
                while index < len(pieces):
                    piece = pieces[index]
                    index += 1
                    self._index = index
                    self._on_piece(piece)
                    if not self.active:
                        return
                if state.done:
                    following = self._on_end()
                    if following is None:
                        self.active = False
                        return
                    state = self._state = following.stream_state  # go on with the stream `on_end()` gave
                    self._index = 0
                    continue
                demand = state.demand
                if demand is not None and not state.producing:  # a lazy stream produces when somebody waits
                    demand()
                    if index < len(state.pieces) or state.done:
                        continue
                if state.waiters is None:  # (add_follower(), inlined for the commonest case: it follows alone)
                    state.waiters = self
                else:
                    state.add_follower(self)
                return
        except Exception as exc:  # a bug of the receiving end: loud, and never raised into the producer
            self.active = False
            logger.error("forwarding the pieces of %s failed: %r", self._state.label, exc, exc_info=exc)


class Promise(Generic[T]):
    """
    A value computed at most once by `async resolver(promise)`; awaiting it gives the value.

    Every awaiter gets the very same result object, or the very same exception re-raised.
    """

    __slots__ = ("_context", "_error", "_resolution_lot", "_resolution_started", "_resolver_function", "_result")

    def __init__(
        self,
        start_asap: bool | Sentinel = DEFAULT,
        resolver: Callable[[Any], Awaitable[T]] | None = None,
        prefill_result: T | NoValue = NO_VALUE,
    ) -> None:
        owner = current_owner_var.get()  # (the active context: read inline, this runs for every promise)
        if owner is None:
            raise RuntimeError(NO_CONTEXT_MESSAGE)
        context = self._context = owner.context
        self._resolver_function = resolver
        self._result: Any = NO_VALUE
        self._error: BaseException | None = None
        self._resolution_started = False
        self._resolution_lot: ParkingLot | None = None  # made when somebody waits: most promises never make one
        if prefill_result is not NO_VALUE:
            self._resolution_started = True
            self._set_result(prefill_result)
        else:
            if start_asap is DEFAULT:
                start_asap = context.start_everything_asap_by_default
            if start_asap:
                self._start_in_background()

    @property
    def context(self) -> PromisingContext:
        """The context this promise was made in (its tasks and observers belong to it)."""
        return self._context

    def done(self) -> bool:
        """Whether the promise is resolved or failed (never waits, never starts lazy work)."""
        return self._result is not NO_VALUE or self._error is not None

    def result_nowait(self) -> T:
        """
        The result, without waiting. Re-raises the stored exception if the promise failed; raises
        asyncio.InvalidStateError while it is unresolved.
        """
        if self._result is not NO_VALUE:
            return self._result
        if self._error is not None:
            raise self._error
        raise asyncio.InvalidStateError(f"{type(self).__name__} is not resolved yet")

    def _start_in_background(self) -> None:
        self._start_resolution()

    def _start_resolution(self) -> None:
        if not self._resolution_started:
            self._resolution_started = True
            self._context.create_task(self._arun_resolver(), on_done=self._resolution_task_done)

    async def _resolver(self) -> T:
        """Compute the value; subclasses may override this instead of passing `resolver`."""
        if self._resolver_function is None:
            raise FunctionNotProvidedError(f"{type(self).__name__}: no resolver was passed in or implemented")
        return await self._resolver_function(self)

    def _has_resolver(self) -> bool:
        return self._resolver_function is not None or type(self)._resolver is not Promise._resolver

    def __await__(self) -> Generator[Any, None, T]:
        return self.aresolve().__await__()

    async def aresolve(self) -> T:
        """
        The resolved value; re-raises the resolver's error. The resolver runs once, in its own task, so
        cancelling one awaiter never disturbs the resolution or the other awaiters.
        """
        if self._result is not NO_VALUE:
            return self._result
        if self._error is None:
            check_home_loop(self._context.loop, type(self).__name__)
            self._start_resolution()
            lot = self._resolution_lot
            if lot is None:
                lot = self._resolution_lot = ParkingLot()
            await lot.park()
            if self._result is not NO_VALUE:
                return self._result
        assert self._error is not None
        raise self._error

    async def _arun_resolver(self) -> None:
        try:
            result = await self._resolver()
        except asyncio.CancelledError:
            self._error = PromiseCancelledError(f"resolution of {type(self).__name__} was cancelled")
            raise
        except BaseException as exc:  # kept for every awaiter; logged for visibility
            self._error = exc
            logger.debug("%s failed: %r", type(self).__name__, exc, exc_info=exc)
        else:
            self._set_result(result)
        finally:
            if self._resolution_lot is not None:
                self._resolution_lot.unpark_all()

    def _resolution_task_done(self, _: asyncio.Task[Any]) -> None:
        """However the resolution task ended (even cancelled before its first step), awaiters get an answer."""
        if self._result is NO_VALUE and self._error is None:
            self._error = PromiseCancelledError(f"resolution of {type(self).__name__} was cancelled")
        if self._resolution_lot is not None:
            self._resolution_lot.unpark_all()

    def _set_result(self, result: T) -> None:
        self._result = result
        self._context.promise_resolved(self, result)

    def __repr__(self) -> str:
        if self._result is not NO_VALUE:
            state = "resolved"
        elif self._error is not None:
            state = f"failed: {self._error!r}"
        else:
            state = "pending"
        return f"<{type(self).__name__} {state}>"


class _StreamState(ParkingLot):
    """
    Everything about one stream, in one place: the pieces so far, whether it is done, the consumers waiting
    for the next piece (it is their parking lot), and what to call when a consumer needs a piece nobody is
    producing (lazy streams).
    """

    __slots__ = ("demand", "done", "has_errors", "label", "origins", "pieces", "producing")

    def __init__(self, label: str, pieces: list[Any] | tuple[Any, ...] | None = None, done: bool = False) -> None:
        self.waiters = None  # (ParkingLot.__init__, inlined)
        self.label = label  # what the stream is, for error messages
        self.pieces: list[Any] | tuple[Any, ...] = [] if pieces is None else pieces  # (without error pieces)
        self.done = done
        self.demand: Callable[[], None] | None = None
        self.producing = False
        self.has_errors = False  # whether an error piece was appended (replays check pieces only then)
        # index of an error piece -> the traceback it came in with, taken when first raised (replays re-raise
        # it with that one, not with one grown by every earlier raise)
        self.origins: dict[int, TracebackType | None] | None = None

    def append(self, piece: Any) -> None:
        if isinstance(piece, BaseException):
            self.has_errors = True
        pieces = self.pieces
        if type(pieces) is list:
            pieces.append(piece)
        else:  # a writer's stream: one piece is kept as a tuple (most never get a second), more in a list
            self.pieces = [*pieces, piece] if pieces else (piece,)
        waiters = self.waiters
        if waiters:
            if type(waiters) is Forwarding:  # (unpark_all(), inlined for the commonest waiter: a lone forwarding)
                self.waiters = None
                waiters.wake()
            else:
                self.unpark_all()

    def end(self) -> None:
        if not self.done:
            self.done = True
            self.pieces = tuple(self.pieces)
            self.demand = None  # drop references to the producer (often a cycle back to the promise)
            if self.waiters:
                self.unpark_all()

    def cancel(self, reason: str) -> None:
        if not self.done:
            self.append(PromiseCancelledError(reason))
            self.end()

    async def await_more(self, index: int, home_loop: asyncio.AbstractEventLoop | None) -> None:
        """Wait (or ask for a piece to be produced) until there is a piece at `index` or the stream is done."""
        while index >= len(self.pieces) and not self.done:
            if home_loop is not None and home_loop is not asyncio.get_running_loop():
                check_home_loop(home_loop, self.label)
            demand = self.demand
            if demand is not None and not self.producing:
                demand()
                if index < len(self.pieces) or self.done:
                    return
            await self.park()

    def raise_error_piece(self, index: int) -> None:
        """Raise the error piece at `index` with the traceback it first came with (not one grown by replays)."""
        piece = self.pieces[index]
        origins = self.origins
        if origins is None:
            origins = self.origins = {}
        if index not in origins:
            origins[index] = piece.__traceback__
        raise piece.with_traceback(origins[index])


async def _replay(
    state: _StreamState, home_loop: asyncio.AbstractEventLoop | None, raise_errors: bool
) -> AsyncIterator[Any]:
    """
    Every piece of a stream from the first, as they are produced (an async generator: the cheapest `async for`
    step there is). An error piece is raised at its position (`raise_errors`) or yielded as a value.
    """
    index = 0
    while True:
        pieces = state.pieces  # (pieces never change once appended: the list only grows, then becomes a tuple)
        end = len(pieces)
        if state.has_errors and raise_errors:
            while index < end:
                if isinstance(pieces[index], BaseException):
                    state.raise_error_piece(index)
                yield pieces[index]
                index += 1
        else:
            while index < end:  # the hot loop: no error among these pieces (checked above)
                yield pieces[index]
                index += 1
        if index >= len(state.pieces):
            if state.done:
                return
            await state.await_more(index, home_loop)


class StreamWriter(_StreamState, Generic[PIECE]):
    """
    The producer end of a stream fed by hand: pass it as the `streamer` of a StreamedPromise, then
    `send()` pieces, `fail()` with an error piece, `close()`. Consumers replay what was sent.
    (The writer is also where the state of that stream lives: one object per stream, not two.)
    """

    __slots__ = ("_bound",)

    def __init__(self) -> None:
        _StreamState.__init__(self, "StreamWriter", ())
        self._bound = False

    def bind(self, label: str) -> None:
        """Become the state of the stream of a promise (`label`: what it is); done by StreamedPromise."""
        if self._bound:
            raise PromisingError("a StreamWriter feeds one StreamedPromise only")
        self._bound = True
        self.label = label

    @property
    def closed(self) -> bool:
        """Whether the stream has ended (closed, failed or cancelled)."""
        return self.done

    def _refuse(self, piece: Any) -> PromisingError:
        if not self._bound:
            return PromisingError("this StreamWriter is not the streamer of any StreamedPromise yet")
        return PromisingError(f"cannot send {piece!r:.60}: the stream is closed")

    def send(self, piece: PIECE | BaseException) -> None:
        """Append a piece (an exception is a piece too: consumers get it raised at its position)."""
        if self.done or not self._bound:
            raise self._refuse(piece)
        self.append(piece)

    def close(self) -> None:
        """End the stream (idempotent)."""
        if not self._bound:
            raise self._refuse(None)
        self.end()

    def fail(self, error: BaseException) -> None:
        """Append `error` as the last piece and end the stream (nothing happens if it already ended)."""
        if not self._bound:
            raise self._refuse(error)
        if not self.done:
            self.append(error)
            self.end()

    def cancel(self, reason: str) -> None:
        """End the stream with PromiseCancelledError(reason) at the cut, unless it already ended."""
        if not self._bound:
            raise self._refuse(None)
        _StreamState.cancel(self, reason)

    def on_first_demand(self, callback: Callable[[], None] | None) -> None:
        """Call `callback()` once, when a consumer first waits for a piece that was not sent yet."""
        if not self._bound:
            raise self._refuse(None)
        if callback is None:
            self.demand = None
            return

        def once() -> None:
            self.demand = None
            callback()

        self.demand = once


class WriterSource(Protocol):
    """What makes the writer of a promise made by `StreamedPromise.fed_later()`, when its stream is first needed."""

    def provide_writer(self, promise: StreamedPromise[Any, Any]) -> None:
        """Give `promise` its writer now, with `promise.feed_with(writer)`."""


class StreamedPromise(Promise[WHOLE], Generic[PIECE, WHOLE]):
    """
    A promise of a whole value whose pieces can be consumed with `async for` while they are produced.

    Replayable: every `async for` (or `promise()`) starts at the first piece. The streamer runs once; an
    exception it raises is stored at its position, delivered to every consumer, and ends the stream.
    """

    __slots__ = ("_state", "_stream_aiter", "_stream_started", "_streamer_function")

    def __init__(
        self,
        streamer: Callable[[Any], AsyncIterator[PIECE]] | AsyncIterator[PIECE] | StreamWriter[PIECE] | None = None,
        prefill_pieces: Iterable[PIECE] | NoValue = NO_VALUE,
        resolver: Callable[[Any], Awaitable[WHOLE]] | None = None,
        prefill_result: WHOLE | NoValue = NO_VALUE,
        start_asap: bool | Sentinel = DEFAULT,
    ) -> None:
        if isinstance(streamer, StreamWriter) and prefill_pieces is NO_VALUE:  # the writer is the stream's state
            streamer.bind(type(self).__name__)
            state: _StreamState = streamer
        else:
            state = _StreamState(type(self).__name__)
        self._state = state
        self._streamer_function = streamer
        self._stream_aiter: AsyncIterator[PIECE] | None = None
        if prefill_pieces is not NO_VALUE:
            pieces = state.pieces = tuple(prefill_pieces)
            for piece in pieces:
                if isinstance(piece, BaseException):
                    state.has_errors = True
                    break
            state.done = True
            self._stream_started = True
        elif state is streamer:
            self._stream_started = True  # the writer's owner produces; consumers only wait
        else:
            self._stream_started = False
        super().__init__(start_asap=start_asap, resolver=resolver, prefill_result=prefill_result)
        if not self._stream_started:  # lazy: the first consumer to wait makes the streamer produce
            state.demand = self._produce_next_in_background

    @classmethod
    def completed(cls, result: Any) -> Any:
        """
        A promise of this class made complete with the value `result`, in the active context, which observes the
        resolution; its stream is made from the result (the subclass's `_pieces_of_result()`) only if somebody asks
        for it. The quick way to wrap a value that is already there (a subclass adds its own attributes to what this
        returns).
        """
        owner = current_owner_var.get()
        if owner is None:
            raise RuntimeError(NO_CONTEXT_MESSAGE)
        promise = cls.__new__(cls)
        cls._set_up(promise, owner.context, None, None, result)
        owner.context.promise_resolved(promise, result)
        return promise

    @classmethod
    def fed_by(cls, writer: StreamWriter[Any], context: PromisingContext) -> Any:
        """
        `cls(streamer=writer)` made in `context` the quick way (for a subclass whose `__init__` takes no more
        arguments): the stream is fed by `writer` only; nothing starts. Raises PromisingError if the writer
        already feeds a promise.
        """
        writer.bind(cls.__name__)  # (the writer is the state of the stream)
        promise = cls.__new__(cls)
        cls._set_up(promise, context, writer, writer, NO_VALUE)
        return promise

    @classmethod
    def fed_later(cls, source: WriterSource, context: PromisingContext) -> Any:
        """
        `fed_by()` with a writer made only when the stream is first needed (a consumer or a forwarding follows it,
        or its producer writes): `source.provide_writer(promise)` is called then. Until then the promise holds no
        state: no pieces, not done. (An agent call's replies: most are only written, by the agent, later.)
        """
        promise = cls.__new__(cls)
        cls._set_up(promise, context, None, source, NO_VALUE)
        return promise

    def feed_with(self, writer: StreamWriter[Any]) -> None:
        """Bind the writer of a promise made by `fed_later()` (what its source's `provide_writer()` does)."""
        if self._state is not None:
            raise PromisingError(f"this {type(self).__name__} has its stream already")
        writer.bind(type(self).__name__)
        self._state = writer
        self._streamer_function = writer

    def _set_up(
        self,
        context: PromisingContext,
        state: _StreamState | None,
        writer: StreamWriter[Any] | WriterSource | None,
        result: Any,
    ) -> None:
        """Every attribute, for `completed()`, `fed_by()`, `fed_later()` (no resolver; complete or fed by hand)."""
        self._state = state
        self._streamer_function = writer
        self._stream_aiter = None
        self._stream_started = True
        self._context = context
        self._resolver_function = None
        self._error = None
        self._resolution_started = result is not NO_VALUE
        self._resolution_lot = None
        self._result = result

    def _pieces_of_result(self) -> tuple[PIECE, ...]:
        """The stream of a promise made by `completed(result)`, from its result (a subclass's to say)."""
        raise NotImplementedError(f"{type(self).__name__} cannot make its stream from its result")

    def _stream(self) -> _StreamState:
        """
        The state of the stream; a promise made without it gets it now: from its result if it was made complete
        (`completed()`), else its writer from its source (`fed_later()`).
        """
        state = self._state
        if state is None:
            if self._result is NO_VALUE:
                self._streamer_function.provide_writer(self)  # type: ignore[union-attr]  # (fed later)
                state = self._state
                if state is None:
                    raise PromisingError(f"the source of this {type(self).__name__} provided no writer")
            else:
                state = self._state = _StreamState(type(self).__name__, self._pieces_of_result(), True)
        return state

    # --------------------------------------------------------------- looking

    def snapshot(self) -> tuple[tuple[PIECE, ...], bool]:
        """The pieces produced so far and whether the stream is complete; never waits, never starts work."""
        state = self._stream()
        return tuple(state.pieces), state.done

    def pieces_if_done(self) -> tuple[PIECE, ...] | None:
        """All the pieces if the stream is complete (without copying them), else None; never waits."""
        state = self._state
        if state is None:  # complete from its result, or fed later and not written to yet
            return None if self._result is NO_VALUE else self._pieces_of_result()
        return state.pieces if state.done else None  # type: ignore[return-value]  # a tuple once done

    @property
    def stream_state(self) -> _StreamState:
        """The state of the stream (what a `Forwarding` follows); not for consumers: iterate the promise."""
        state = self._state
        return self._stream() if state is None else state

    @property
    def stream_done(self) -> bool:
        """Whether every piece has been produced (the stream ended, normally or with an error piece)."""
        state = self._state
        return self._result is not NO_VALUE if state is None else state.done

    # --------------------------------------------------------------- producing

    def _streamer(self) -> AsyncIterator[PIECE]:
        """Produce the pieces; subclasses may override this instead of passing `streamer`."""
        streamer = self._streamer_function
        if streamer is None:
            raise FunctionNotProvidedError(f"{type(self).__name__}: no streamer was passed in or implemented")
        return streamer(self) if callable(streamer) else streamer  # type: ignore[return-value]

    def _open_stream(self) -> AsyncIterator[PIECE] | None:
        """Start the streamer; on failure the error becomes the only piece and the stream ends."""
        try:
            stream: Any = self._streamer()
            if not hasattr(stream, "__anext__"):
                if not hasattr(stream, "__aiter__"):
                    if hasattr(stream, "close"):
                        stream.close()  # e.g. a coroutine: close it so no "never awaited" warning follows
                    raise TypeError(
                        f"the streamer of {type(self).__name__} must return an async iterator, "
                        f"got {type(stream).__name__}"
                    )
                stream = stream.__aiter__()
        except Exception as exc:
            self._stream().append(exc)
            self._stream().end()
            return None
        self._stream_aiter = stream
        return stream

    def _start_in_background(self) -> None:
        if self._stream_started:  # prefilled or fed by a writer: nothing to drain, maybe something to resolve
            if self.stream_done and self._has_resolver():
                self._start_resolution()
            return
        self._stream_started = True
        self._context.create_task(self._adrain_then_resolve(), on_done=self._production_task_done)

    async def _adrain_then_resolve(self) -> None:
        stream = self._open_stream()
        state = self._stream()
        if stream is not None:
            pieces = state.pieces
            assert isinstance(pieces, list)
            try:
                async for piece in stream:  # (state.append(), inlined: this runs for every token)
                    if isinstance(piece, BaseException):
                        state.has_errors = True
                    pieces.append(piece)
                    if state.waiters:
                        state.unpark_all()
            except asyncio.CancelledError:
                state.cancel(f"{type(self).__name__} was cancelled before its stream finished")
                raise
            except BaseException as exc:
                state.append(exc)
            state.end()
        if self._has_resolver() and not self._resolution_started:
            self._resolution_started = True
            await self._arun_resolver()

    def _production_task_done(self, _: asyncio.Task[Any]) -> None:
        """However the producing task ended (cancelled before its first step too), consumers get an end."""
        self._stream().cancel(f"{type(self).__name__} was cancelled before its stream finished")
        self._stream().producing = False
        if self._resolution_started:
            self._resolution_task_done(_)

    def _produce_next_in_background(self) -> None:
        """Lazy mode: produce one piece for the waiting consumers, in a task of its own (consumers may be cancelled)."""
        self._stream().producing = True
        self._context.create_task(self._aproduce_next(), on_done=self._production_task_done_lazy)

    async def _aproduce_next(self) -> None:
        state = self._stream()
        stream = self._stream_aiter or self._open_stream()
        if stream is None:
            return
        try:
            piece = await stream.__anext__()
        except StopAsyncIteration:
            state.end()
        except asyncio.CancelledError:
            state.cancel(f"{type(self).__name__} was cancelled before its stream finished")
            raise
        except BaseException as exc:
            state.append(exc)
            state.end()
        else:
            state.append(piece)

    def _production_task_done_lazy(self, task: asyncio.Task[Any]) -> None:
        state = self._stream()
        state.producing = False
        if task.cancelled():
            state.cancel(f"{type(self).__name__} was cancelled before its stream finished")
        state.unpark_all()

    # --------------------------------------------------------------- consuming

    # Whether an error piece is always the last piece of this kind of stream (a streamer that raises ends its
    # stream; a token stream has no other source of errors). Iteration then uses the cheapest iterator there
    # is, which ends at the error. Otherwise (a sequence, where a failed item sits among the others) a reader
    # that catches an error can go on reading the pieces after it.
    errors_end_the_stream: bool = False

    def __aiter__(self) -> AsyncIterator[PIECE]:
        state = self._stream()
        if self.errors_end_the_stream:
            return _replay(state, self._context.loop, True)
        return _ReplayIterator(state, self._context.loop)

    def __call__(self, *_: Any) -> AsyncIterator[PIECE]:
        """A fresh replaying iterator, so this promise can be the streamer of another one."""
        return self.__aiter__()

    def raw_pieces(self) -> AsyncIterator[PIECE | BaseException]:
        """A replaying iterator that yields error pieces as values instead of raising them (for flattening)."""
        return _replay(self._stream(), self._context.loop, False)

    def forward_pieces(
        self, on_piece: Callable[[Any], None], on_end: Callable[[], StreamedPromise[Any, Any] | None]
    ) -> Forwarding:
        """
        Hand every piece (error pieces as values), from the first, to `on_piece(piece)` as soon as it is produced,
        then call `on_end()` (which may return the next streamed promise to forward): synchronously, without a
        task (see `Forwarding`; `cancel()` it to stop). A lazy stream is asked to produce, as for a consumer that
        waits.
        """
        forwarding = Forwarding(self._stream(), on_piece, on_end)
        forwarding.wake()
        return forwarding


class _ReplayIterator:
    """Iterates a stream from its first piece, raising error pieces at their positions and going on after them."""

    __slots__ = ("_index", "_loop", "_state")

    def __init__(self, state: _StreamState, loop: asyncio.AbstractEventLoop | None) -> None:
        self._state = state
        self._loop = loop
        self._index = 0

    def __aiter__(self) -> _ReplayIterator:
        return self

    async def __anext__(self) -> Any:
        state = self._state
        index = self._index
        if index >= len(state.pieces):
            if state.done:
                raise StopAsyncIteration
            await state.await_more(index, self._loop)
            if index >= len(state.pieces):
                raise StopAsyncIteration
        self._index = index + 1
        piece = state.pieces[index]
        if state.has_errors and isinstance(piece, BaseException):
            state.raise_error_piece(index)
        return piece
