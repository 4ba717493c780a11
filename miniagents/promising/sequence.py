"""FlatSequence: turns a stream of incoming items into a flat, replayable stream of output items."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, Generic, cast

from miniagents.promising.errors import FunctionNotProvidedError
from miniagents.promising.promise_typing import IN, OUT
from miniagents.promising.promising import StreamedPromise
from miniagents.promising.sentinels import DEFAULT, Sentinel

Flattener = Callable[["FlatSequence[Any, Any]", Any], AsyncIterator[Any]]


class FlatSequence(Generic[IN, OUT]):
    """
    Each incoming item becomes zero or more output items, in order, via `flattener(self, item)`.

    `sequence_promise` streams the output items; awaiting it gives them all as a tuple. An error
    piece coming in (an exception object) is passed through at its position.
    """

    def __init__(
        self,
        incoming_streamer: AsyncIterable[IN] | Callable[[], AsyncIterable[IN]],
        flattener: Flattener | None = None,
        start_asap: bool | Sentinel = DEFAULT,
        sequence_promise_class: type[StreamedPromise[OUT, tuple[OUT, ...]]] = StreamedPromise,
    ) -> None:
        self._incoming_streamer = incoming_streamer
        self._flattener_function = flattener
        self.sequence_promise = sequence_promise_class(
            streamer=self._astream_flattened, resolver=acollect_pieces, start_asap=start_asap
        )

    async def _flattener(self, item: IN) -> AsyncIterator[OUT]:
        """Turn one incoming item into output items; subclasses may override instead of passing one."""
        if self._flattener_function is None:
            raise FunctionNotProvidedError(f"{type(self).__name__}: no flattener was passed in or implemented")
        async for output in self._flattener_function(self, item):
            yield output

    async def _astream_flattened(self, _: StreamedPromise[OUT, Any]) -> AsyncIterator[OUT]:
        incoming = self._incoming_streamer
        source: AsyncIterable[IN] = (
            cast(AsyncIterable[IN], incoming) if hasattr(incoming, "__aiter__") else cast(Callable[[], Any], incoming)()
        )
        async for item in source:
            if isinstance(item, BaseException):
                yield item  # type: ignore[misc]
            else:
                async for output in self._flattener(item):
                    yield output


async def acollect_pieces(promise: StreamedPromise[Any, Any]) -> tuple[Any, ...]:
    """All pieces of a streamed promise as a tuple; raises the first error piece."""
    return tuple([piece async for piece in promise])
