"""Type variables and callable protocols shared by the promising layer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from miniagents.promising.promising import Promise, StreamedPromise

T = TypeVar("T")
PIECE = TypeVar("PIECE")
WHOLE = TypeVar("WHOLE")
IN = TypeVar("IN")
OUT = TypeVar("OUT")


class PromiseResolver(Protocol[T]):
    def __call__(self, promise: Promise[T]) -> Awaitable[T]: ...


class PromiseStreamer(Protocol[PIECE]):
    def __call__(self, streamed_promise: StreamedPromise[PIECE, Any]) -> AsyncIterator[PIECE]: ...


class PromiseResolvedHandler(Protocol):
    def __call__(self, promise: Promise[Any], result: Any) -> Awaitable[None]: ...
