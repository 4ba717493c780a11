"""
Promises, replayable streamed promises and hand-fed streams, all tracked by a PromisingContext.

Vocabulary: a *resolver* computes a promise's whole value; a *streamer* produces the pieces of a
streamed promise; an *appender* is a streamer fed by hand. Waiting is done with one future per
waiter (never a shared one: cancelling one waiter must not cancel the others) and never by polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Generic

from miniagents.promising.errors import (
    AppenderClosedError,
    AppenderNotOpenError,
    FunctionNotProvidedError,
    PromiseCancelledError,
    PromisingError,
)
from miniagents.promising.promise_typing import PIECE, WHOLE, PromiseResolvedHandler, T
from miniagents.promising.sentinels import DEFAULT, NO_VALUE, Sentinel

logger = logging.getLogger("miniagents")

_current_context: ContextVar[PromisingContext | None] = ContextVar("miniagents_context", default=None)

_NO_CONTEXT_MESSAGE = (
    "No MiniAgents context is active. Wrap the code that creates promises or calls agents in "
    "`async with MiniAgents():` (or run it with `MiniAgents().run(...)`; in Jupyter, call "
    "`miniagents.notebook.activate()` once)."
)


class PromisingContext:
    """
    Tracks every background task started for promises and agents, and the resolution handlers.

    Activate it with `async with`, or `activate()` + `await afinalize()`; contexts nest.
    """

    def __init__(
        self,
        start_everything_asap_by_default: bool = True,
        appenders_capture_errors_by_default: bool = False,
        longer_hash_keys: bool = False,
        log_level_for_errors: int = logging.ERROR,
        on_promise_resolved: PromiseResolvedHandler | Iterable[PromiseResolvedHandler] = (),
    ) -> None:
        self.parent: PromisingContext | None = None
        self.start_everything_asap_by_default = start_everything_asap_by_default
        self.appenders_capture_errors_by_default = appenders_capture_errors_by_default
        self.longer_hash_keys = longer_hash_keys
        self.log_level_for_errors = log_level_for_errors
        self.logger = logger
        self._resolved_handlers: list[PromiseResolvedHandler] = _as_handler_list(on_promise_resolved)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._internal_tasks: set[asyncio.Task[Any]] = set()  # the subset started by the framework itself
        self._forget_internal = self._forget_internal_task  # one bound method, not one per task
        self._activation_token: Any = None
        self._active = False

    # ------------------------------------------------------------- activation

    @classmethod
    def get_current(cls) -> PromisingContext:
        """
        The active context. Raises RuntimeError when none is active, TypeError when the active one
        is not an instance of `cls`.
        """
        context = _current_context.get()
        if context is None:
            raise RuntimeError(_NO_CONTEXT_MESSAGE)
        if not isinstance(context, cls):
            raise TypeError(f"the active context is a {type(context).__name__}, not a {cls.__name__}")
        return context

    @staticmethod
    def get_current_or_none() -> PromisingContext | None:
        """The active context, or None."""
        return _current_context.get()

    def activate(self) -> PromisingContext:
        """Make this context the current one (synchronously). Raises RuntimeError if already active."""
        if self._active:
            raise RuntimeError(f"this {type(self).__name__} is already active; contexts are not re-entrant")
        self.parent = _current_context.get()
        self._activation_token = _current_context.set(self)
        self._active = True
        return self

    async def afinalize(self) -> None:
        """Wait for every task this context started (including ones started meanwhile), then deactivate."""
        try:
            await self.aflush_tasks()
        finally:
            self._deactivate()

    async def aflush_tasks(self) -> None:
        """Wait until every task this context started has finished, without deactivating it."""
        current = asyncio.current_task()
        while True:
            pending = [task for task in self._tasks if task is not current]
            if not pending:
                return
            await asyncio.wait(pending)

    def _deactivate(self) -> None:
        if not self._active:
            return
        self._active = False
        try:
            _current_context.reset(self._activation_token)
        except ValueError:
            # activated in another contextvars.Context (e.g. a different notebook cell)
            _current_context.set(self.parent)
        self._activation_token = None

    async def __aenter__(self) -> PromisingContext:
        return self.activate()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None and not isinstance(exc, Exception):
            # cancelled or interrupted (Ctrl-C, kernel interrupt): stop everything this context started
            await self.acancel_tasks()
        await self.afinalize()

    async def acancel_tasks(self) -> None:
        """
        Cancel the framework's own tasks (agents, streams, flattening) and wait until they have ended.
        Tasks scheduled with `start_asap()` (handlers: persistence, logging) are left to finish, so
        what was already produced is not lost; `afinalize()` waits for them.
        """
        current = asyncio.current_task()
        while True:
            pending = [task for task in self._internal_tasks if task is not current and not task.done()]
            if not pending:
                return
            started = [task for task in pending if not _not_started(task)]
            for task in started:
                task.cancel()
            if started:
                await asyncio.wait(started)
            else:
                # a task cancelled before its first step never runs its body (nor its cleanup): let the
                # not-yet-started ones reach their first await, then cancel them
                await asyncio.sleep(0)

    # ------------------------------------------------------------------ tasks

    def start_asap(
        self,
        awaitable: Awaitable[T],
        suppress_errors: bool = False,
        log_level_for_errors: int = logging.DEBUG,
    ) -> asyncio.Task[T | None]:
        """
        Schedule `awaitable` as a tracked task that starts at the next task switch.

        An error is logged at `log_level_for_errors`, then re-raised from the task unless suppressed.
        """

        async def run() -> T | None:
            try:
                return await awaitable
            except Exception as exc:
                self.logger.log(log_level_for_errors, "error in a background task: %r", exc, exc_info=exc)
                if suppress_errors:
                    return None
                raise

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._forget_reported_task)
        return task

    def _forget_reported_task(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # logged by start_asap() already; awaiting the task still re-raises it

    def _track(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run one of the framework's own coroutines as a tracked task (they deliver their errors)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        self._internal_tasks.add(task)
        task.add_done_callback(self._forget_internal)
        return task

    def _forget_internal_task(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._internal_tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:  # a bug in the framework: make it loud rather than lose it
                self.logger.error("internal task failed: %r", exc, exc_info=exc)

    # -------------------------------------------------------------- handlers

    def on_promise_resolved(self, handler: PromiseResolvedHandler) -> PromiseResolvedHandler:
        """Register `async handler(promise, result)`, scheduled whenever a promise resolves."""
        self._resolved_handlers.append(handler)
        return handler

    def _promise_resolved(self, promise: Promise[Any], result: Any) -> None:
        """Schedule the resolution handlers of this context and of its parents."""
        context: PromisingContext | None = self
        while context is not None:
            for handler in context._resolved_handlers:
                self.start_asap(handler(promise, result), log_level_for_errors=self.log_level_for_errors)
            context = context.parent


def _not_started(task: asyncio.Task[Any]) -> bool:
    frame = getattr(task.get_coro(), "cr_frame", None)
    return frame is not None and frame.f_lasti < 0


def _as_handler_list(handlers: Callable[..., Any] | Iterable[Callable[..., Any]]) -> list[Any]:
    return [handlers] if callable(handlers) else list(handlers)


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


class StreamAppender(Generic[PIECE]):
    """
    A streamer fed by hand: `with appender: appender.append(piece)`; pass it as a `streamer`.

    It is a single-consumer async iterator of the appended pieces (errors come as pieces).
    """

    __slots__ = ("_is_closed", "_is_open", "_queue", "_waiter", "capture_errors")

    def __init__(self, capture_errors: bool | Sentinel = DEFAULT) -> None:
        if capture_errors is DEFAULT:
            capture_errors = PromisingContext.get_current().appenders_capture_errors_by_default
        self.capture_errors = bool(capture_errors)
        self._queue: deque[Any] | None = None  # created on first append: many appenders never queue
        self._waiter: asyncio.Future[None] | None = None
        self._is_open = False
        self._is_closed = False

    @property
    def is_open(self) -> bool:
        return self._is_open

    @property
    def is_closed(self) -> bool:
        return self._is_closed

    def open(self) -> StreamAppender[PIECE]:
        """Allow appending. Raises AppenderClosedError after close(), PromisingError if already open."""
        if self._is_closed:
            raise AppenderClosedError("this StreamAppender is closed and cannot be reopened")
        if self._is_open:
            raise PromisingError("this StreamAppender is already open")
        self._is_open = True
        return self

    def close(self) -> None:
        """End the stream (idempotent)."""
        if self._is_closed:
            return
        self._is_open = False
        self._is_closed = True
        self._deliver_end()

    def append(self, piece: PIECE) -> StreamAppender[PIECE]:
        """Append a piece. Raises AppenderNotOpenError before open(), AppenderClosedError after close()."""
        if not self._is_open:
            if self._is_closed:
                raise AppenderClosedError(f"cannot append {_describe(piece)}: the StreamAppender is closed")
            raise AppenderNotOpenError(
                f"cannot append {_describe(piece)}: open the StreamAppender first (`with appender:` or open())"
            )
        self._deliver(piece)
        return self

    def _deliver(self, piece: Any) -> None:
        if self._queue is None:
            self._queue = deque()
        self._queue.append(piece)
        self._wake()

    def _deliver_end(self) -> None:
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __enter__(self) -> StreamAppender[PIECE]:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        suppress = False
        if exc is not None and self._is_open and not isinstance(exc, AppenderClosedError):
            if not isinstance(exc, Exception):  # cancelled or interrupted: consumers must see the cut
                self._deliver(PromiseCancelledError(f"appending was interrupted by {type(exc).__name__}"))
            elif self.capture_errors:
                self._deliver(exc)
                suppress = True
        self.close()
        return suppress

    def __aiter__(self) -> StreamAppender[PIECE]:
        return self

    def __call__(self, *_: Any) -> StreamAppender[PIECE]:
        return self

    async def __anext__(self) -> PIECE:
        while not self._queue:
            if self._is_closed:
                raise StopAsyncIteration
            if self._waiter is not None:
                raise PromisingError(
                    "a StreamAppender has a single consumer; pass it as the streamer of a StreamedPromise to "
                    "let several consumers replay it"
                )
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._queue.popleft()


def _describe(piece: Any) -> str:
    text = repr(piece)
    return f"{type(piece).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
