"""
Promises and replayable streamed promises. The context they run in and the hand-fed StreamAppender live
in their own modules and are re-exported here (this is the public module path of all four).

Vocabulary: a *resolver* computes a promise's whole value; a *streamer* produces the pieces of a
streamed promise; an *appender* is a streamer fed by hand. Waiting is done with one future per
waiter (never a shared one: cancelling one waiter must not cancel the others) and never by polling.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import Any, Generic

from miniagents.promising.appender import StreamAppender
from miniagents.promising.context import (
    _NO_CONTEXT_MESSAGE,
    PromisingContext,
    _current_context,
    logger,
)
from miniagents.promising.errors import FunctionNotProvidedError, PromiseCancelledError
from miniagents.promising.promise_typing import PIECE, WHOLE, T
from miniagents.promising.sentinels import DEFAULT, NO_VALUE, Sentinel

__all__ = ["Promise", "PromisingContext", "StreamAppender", "StreamedPromise"]


class Promise(Generic[T]):
    """
    A value computed at most once by `async resolver(promise)`; awaiting it gives the value.

    Every awaiter gets the very same result object, or the very same exception re-raised.
    """

    __slots__ = ("_context", "_error", "_resolution_started", "_resolution_waiters", "_resolver_function", "_result")

    def __init__(
        self,
        start_asap: bool | Sentinel = DEFAULT,
        resolver: Callable[[Any], Awaitable[T]] | None = None,
        prefill_result: T | Sentinel = NO_VALUE,
    ) -> None:
        context = _current_context.get()
        if context is None:
            raise RuntimeError(_NO_CONTEXT_MESSAGE)
        self._context = context
        self._resolver_function = resolver
        self._result: Any = NO_VALUE
        self._error: BaseException | None = None
        self._resolution_started = False
        self._resolution_waiters: list[asyncio.Future[None]] | None = None
        if prefill_result is not NO_VALUE:
            self._resolution_started = True
            self._set_result(prefill_result)
        else:
            if start_asap is DEFAULT:
                start_asap = context.start_everything_asap_by_default
            if start_asap:
                self._start_in_background()

    def _start_in_background(self) -> None:
        self._start_resolution()

    def _start_resolution(self) -> None:
        if not self._resolution_started:
            self._resolution_started = True
            self._context._track(self._arun_resolver())

    async def _resolver(self) -> T:
        """Compute the value; subclasses may override this instead of passing `resolver`."""
        if self._resolver_function is None:
            raise FunctionNotProvidedError(f"{type(self).__name__}: no resolver was passed in or implemented")
        return await self._resolver_function(self)

    def __await__(self) -> Generator[Any, None, T]:
        return self.aresolve().__await__()

    async def aresolve(self) -> T:
        """
        The resolved value; re-raises the resolver's error. The resolver runs once, in its own task,
        so cancelling one awaiter never disturbs the resolution or the other awaiters.
        """
        if self._result is not NO_VALUE:
            return self._result
        if self._error is None:
            self._start_resolution()
            await _wait_in(self, "_resolution_waiters")
            if self._result is not NO_VALUE:
                return self._result
        raise self._error  # type: ignore[misc]

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
            _wake(self, "_resolution_waiters")

    def _set_result(self, result: T) -> None:
        self._result = result
        self._context._promise_resolved(self, result)

    def __repr__(self) -> str:
        if self._result is not NO_VALUE:
            state = "resolved"
        elif self._error is not None:
            state = f"failed: {self._error!r}"
        else:
            state = "pending"
        return f"<{type(self).__name__} {state}>"


_FED_BY_OWNER = Sentinel("FED_BY_OWNER")  # streamer value: pieces are pushed in with _feed()/_end_stream()


class StreamedPromise(Promise[WHOLE], Generic[PIECE, WHOLE]):
    """
    A promise of a whole value whose pieces can be consumed with `async for` while they are produced.

    Replayable: every `async for` (or `promise()`) starts at the first piece. The streamer runs once;
    an exception it raises is stored at its position, delivered to every consumer, and ends the stream.
    """

    __slots__ = (
        "_demand_hook",
        "_pieces",
        "_producer_busy",
        "_stream_aiter",
        "_stream_done",
        "_stream_started",
        "_streamer_function",
        "_waiters",
    )

    def __init__(
        self,
        streamer: Callable[[Any], AsyncIterator[PIECE]] | AsyncIterator[PIECE] | Sentinel | None = None,
        prefill_pieces: Iterable[PIECE] | Sentinel = NO_VALUE,
        resolver: Callable[[Any], Awaitable[WHOLE]] | None = None,
        prefill_result: WHOLE | Sentinel = NO_VALUE,
        start_asap: bool | Sentinel = DEFAULT,
    ) -> None:
        self._streamer_function = streamer
        self._stream_aiter: AsyncIterator[PIECE] | None = None
        self._waiters: list[asyncio.Future[None]] | None = None
        self._producer_busy = False
        self._demand_hook: Callable[[], None] | None = None
        if prefill_pieces is NO_VALUE:
            self._pieces: list[Any] | tuple[Any, ...] = []
            self._stream_done = False
            self._stream_started = False
        else:
            self._pieces = tuple(prefill_pieces)
            self._stream_done = True
            self._stream_started = True
        super().__init__(start_asap=start_asap, resolver=resolver, prefill_result=prefill_result)
        if streamer is _FED_BY_OWNER:
            self._stream_started = True  # the owner produces; consumers only wait

    # --------------------------------------------------------------- producing

    def _streamer(self) -> AsyncIterator[PIECE]:
        """Produce the pieces; subclasses may override this instead of passing `streamer`."""
        streamer = self._streamer_function
        if streamer is None:
            raise FunctionNotProvidedError(f"{type(self).__name__}: no streamer was passed in or implemented")
        return streamer(self) if callable(streamer) else streamer

    def _open_stream(self) -> AsyncIterator[PIECE] | None:
        """Start the streamer; on failure the error becomes the only piece and the stream ends."""
        try:
            stream = self._streamer()
            if not hasattr(stream, "__anext__"):
                if not hasattr(stream, "__aiter__"):
                    raise TypeError(
                        f"the streamer of {type(self).__name__} must return an async iterator, "
                        f"got {type(stream).__name__}"
                    )
                stream = stream.__aiter__()
        except Exception as exc:
            self._feed(exc)
            self._end_stream()
            return None
        self._stream_aiter = stream
        return stream

    def _start_in_background(self) -> None:
        if self._streamer_function is _FED_BY_OWNER:
            return
        if self._stream_done:  # prefilled pieces: nothing to drain, maybe something to resolve
            if self._has_resolver():
                self._start_resolution()
            return
        self._stream_started = True
        self._context._track(self._adrain_then_resolve())

    async def _adrain_then_resolve(self) -> None:
        stream = self._open_stream()
        if stream is not None:
            pieces = self._pieces
            try:
                async for piece in stream:
                    pieces.append(piece)
                    if self._waiters:
                        self._wake_waiters()
            except asyncio.CancelledError:
                self._end_stream_cancelled()
                raise
            except BaseException as exc:
                self._feed(exc)
            self._end_stream()
        if self._has_resolver() and not self._resolution_started:
            self._resolution_started = True
            await self._arun_resolver()

    def _has_resolver(self) -> bool:
        return self._resolver_function is not None or type(self)._resolver is not Promise._resolver

    async def _aproduce_next(self) -> None:
        """Pull one piece from the streamer on behalf of the waiting consumers (lazy mode, own task)."""
        try:
            stream = self._stream_aiter or self._open_stream()
            if stream is None:
                return
            try:
                piece = await stream.__anext__()
            except StopAsyncIteration:
                self._end_stream()
            except asyncio.CancelledError:  # only the context cancels this task
                self._end_stream_cancelled()
                raise
            except BaseException as exc:
                self._feed(exc)
                self._end_stream()
            else:
                self._feed(piece)
        finally:
            self._producer_busy = False
            if self._waiters:
                self._wake_waiters()

    def _feed(self, piece: Any) -> None:
        """Append a piece and wake the consumers waiting for it."""
        if isinstance(piece, BaseException):
            remember_origin(piece)
        self._pieces.append(piece)
        if self._waiters:
            self._wake_waiters()

    def _end_stream(self) -> None:
        """No more pieces will come; the pieces become an immutable tuple."""
        if not self._stream_done:
            self._stream_done = True
            self._pieces = tuple(self._pieces)
            self._stream_aiter = None
            self._demand_hook = None  # drop references to the producer (often a cycle back to us)
            if self._waiters:
                self._wake_waiters()

    def _end_stream_cancelled(self) -> None:
        self._feed(PromiseCancelledError(f"{type(self).__name__} was cancelled before its stream finished"))
        self._end_stream()

    def _wake_waiters(self) -> None:
        _wake(self, "_waiters")

    async def _await_piece(self, index: int) -> Any:
        """The piece at `index`, waiting or producing as needed; StopAsyncIteration past the end."""
        while True:
            if index < len(self._pieces):
                return self._pieces[index]
            if self._stream_done:
                raise StopAsyncIteration
            if self._demand_hook is not None:
                hook, self._demand_hook = self._demand_hook, None
                hook()
                continue
            if not self._stream_started and not self._producer_busy:
                # lazy mode: one piece is produced in its own task, so a cancelled consumer can't break it
                self._producer_busy = True
                self._context._track(self._aproduce_next())
            await _wait_in(self, "_waiters")

    # --------------------------------------------------------------- consuming

    def __aiter__(self) -> AsyncIterator[PIECE]:
        return _ReplayIterator(self, raise_errors=True)

    def __call__(self, *_: Any) -> AsyncIterator[PIECE]:
        """A fresh replaying iterator, so this promise can be the streamer of another one."""
        return _ReplayIterator(self, raise_errors=True)

    def _raw_pieces(self) -> AsyncIterator[Any]:
        """Replay iterator that returns error pieces instead of raising them (for flattening)."""
        return _ReplayIterator(self, raise_errors=False)


async def _wait_in(owner: Any, waiters_slot: str) -> None:
    """Wait on a future of our own, registered in `owner.<waiters_slot>` (a list created on demand)."""
    waiter = asyncio.get_running_loop().create_future()
    waiters = getattr(owner, waiters_slot)
    if waiters is None:
        setattr(owner, waiters_slot, [waiter])
    else:
        waiters.append(waiter)
    try:
        await waiter
    finally:
        if not waiter.done():  # we were cancelled: leave the others alone
            waiters = getattr(owner, waiters_slot)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)


def _wake(owner: Any, waiters_slot: str) -> None:
    waiters = getattr(owner, waiters_slot)
    if waiters:
        setattr(owner, waiters_slot, None)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class _ReplayIterator:
    """Iterates a StreamedPromise from its first piece; produced pieces come from memory."""

    __slots__ = ("_index", "_promise", "_raise_errors")

    def __init__(self, promise: StreamedPromise[Any, Any], raise_errors: bool) -> None:
        self._promise = promise
        self._index = 0
        self._raise_errors = raise_errors

    def __aiter__(self) -> _ReplayIterator:
        return self

    async def __anext__(self) -> Any:
        promise = self._promise
        index = self._index
        pieces = promise._pieces
        if index < len(pieces):
            piece = pieces[index]
        elif promise._stream_done:
            raise StopAsyncIteration
        else:
            piece = await promise._await_piece(index)
        self._index = index + 1
        if self._raise_errors and isinstance(piece, BaseException):
            # re-raised to every consumer with its original traceback, not one grown by each replay
            raise piece.with_traceback(getattr(piece, "_miniagents_origin", piece.__traceback__))
        return piece


def remember_origin(exc: BaseException) -> None:
    """Keep the traceback an error had when it first entered a stream (replays re-raise with it)."""
    if not hasattr(exc, "_miniagents_origin"):
        try:
            exc._miniagents_origin = exc.__traceback__  # type: ignore[attr-defined]
        except AttributeError:  # exceptions that refuse attributes just keep their growing traceback
            pass
