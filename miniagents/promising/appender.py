"""StreamAppender: a streamer fed by hand (`with appender: appender.append(piece)`)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from miniagents.promising.context import PromisingContext
from miniagents.promising.errors import AppenderClosedError, AppenderNotOpenError, PromiseCancelledError, PromisingError
from miniagents.promising.promise_typing import PIECE
from miniagents.promising.sentinels import DEFAULT, Sentinel

_Appender = TypeVar("_Appender", bound="StreamAppender[Any]")


class StreamAppender(Generic[PIECE]):
    """
    A streamer fed by hand: `with appender: appender.append(piece)`; pass it as a `streamer`.

    It is a single-consumer async iterator of the appended pieces (errors come as pieces). Subclasses may
    send the pieces elsewhere by overriding `_deliver(piece)` and `_deliver_end()` (a message sequence
    flattens them into its promise).
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

    def open(self: _Appender) -> _Appender:
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
        """Where an appended piece goes (here: the queue the iterator reads)."""
        if self._queue is None:
            self._queue = deque()
        self._queue.append(piece)
        self._wake()

    def _deliver_end(self) -> None:
        """The appender was closed (here: wake the iterator)."""
        self._wake()

    def fail(self, error: BaseException) -> None:
        """Append `error` as the last piece and close, unless already closed (for an owner ending the stream)."""
        if not self._is_closed:
            self._deliver(error)
            self.close()

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

    def __aiter__(self) -> AsyncIterator[PIECE]:
        return self

    def __call__(self, *_: Any) -> AsyncIterator[PIECE]:
        return self.__aiter__()

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
