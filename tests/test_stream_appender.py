"""Acceptance tests for StreamAppender (SPEC 3.4) and FlatSequence (SPEC 3.5)."""

from __future__ import annotations

import asyncio

import pytest

from miniagents.promising import errors
from miniagents.promising.errors import (
    AppenderClosedError,
    AppenderNotOpenError,
    FunctionNotProvidedError,
    PromisingError,
)
from miniagents.promising.promising import PromisingContext, StreamAppender, StreamedPromise
from miniagents.promising.sentinels import DEFAULT
from miniagents.promising.sequence import FlatSequence


async def collect(iterable) -> list:
    return [piece async for piece in iterable]


async def collect_raw(promise) -> list:
    """Every piece, with an error piece recorded as the exception object (iteration ends after it)."""
    pieces = []
    iterator = promise.__aiter__()
    while True:
        try:
            pieces.append(await iterator.__anext__())
        except StopAsyncIteration:
            return pieces
        except Exception as exc:
            pieces.append(exc)


# ===================================================================== errors


@pytest.mark.parametrize("error_class", [AppenderNotOpenError, AppenderClosedError, FunctionNotProvidedError])
def test_appender_errors_subclass_promising_error(error_class):
    assert issubclass(error_class, PromisingError)
    assert getattr(errors, error_class.__name__) is error_class


def test_promising_error_is_an_exception():
    assert issubclass(PromisingError, Exception)


# ============================================================ open / close


def test_with_block_opens_and_closes_appender():
    appender = StreamAppender(capture_errors=False)
    assert not appender.is_open and not appender.is_closed
    with appender as entered:
        assert entered is appender
        assert appender.is_open and not appender.is_closed
    assert not appender.is_open and appender.is_closed


def test_open_and_close_by_hand_open_and_close_appender():
    appender = StreamAppender(capture_errors=False)
    appender.open()
    assert appender.is_open
    appender.append(1)
    appender.close()
    assert appender.is_closed and not appender.is_open


async def test_close_is_idempotent():
    async with PromisingContext():
        appender = StreamAppender()
        with appender:
            appender.append("a")
        appender.close()
        appender.close()
        assert appender.is_closed
        assert await asyncio.wait_for(collect(StreamedPromise(streamer=appender)), 5) == ["a"]


def test_append_before_open_raises_appender_not_open_error():
    appender = StreamAppender(capture_errors=False)
    with pytest.raises(AppenderNotOpenError):
        appender.append("too early")


def test_append_after_close_raises_appender_closed_error():
    appender = StreamAppender(capture_errors=False)
    with appender:
        appender.append("fine")
    with pytest.raises(AppenderClosedError):
        appender.append("too late")


def test_append_after_manual_close_raises_appender_closed_error():
    appender = StreamAppender(capture_errors=True)
    appender.open()
    appender.close()
    with pytest.raises(AppenderClosedError):
        appender.append("too late")


# ========================================================== capture_errors


async def test_capture_errors_true_appends_exception_and_suppresses_it():
    error = ValueError("inside with")

    async with PromisingContext():
        appender = StreamAppender(capture_errors=True)
        promise = StreamedPromise(streamer=appender, start_asap=True)
        with appender:
            appender.append(1)
            appender.append(2)
            raise error
        assert appender.is_closed
        assert await asyncio.wait_for(collect_raw(promise), 5) == [1, 2, error]


async def test_capture_errors_true_delivers_error_in_order_to_every_consumer():
    error = KeyError("k")

    async with PromisingContext():
        appender = StreamAppender(capture_errors=True)
        promise = StreamedPromise(streamer=appender, start_asap=False)
        first = asyncio.ensure_future(collect_raw(promise))
        second = asyncio.ensure_future(collect_raw(promise))
        await asyncio.sleep(0)
        with appender:
            appender.append("a")
            await asyncio.sleep(0)
            appender.append("b")
            raise error
        results = await asyncio.wait_for(asyncio.gather(first, second), 5)
        results.append(await collect_raw(promise))
    for pieces in results:
        assert pieces[:2] == ["a", "b"]
        assert pieces[2] is error
        assert len(pieces) == 3


def test_capture_errors_false_lets_exception_propagate_and_closes():
    appender = StreamAppender(capture_errors=False)
    with pytest.raises(ValueError, match="escapes"), appender:
        raise ValueError("escapes")
    assert appender.is_closed


def test_capture_errors_true_never_suppresses_appender_closed_error():
    appender = StreamAppender(capture_errors=True)
    with pytest.raises(AppenderClosedError), appender:
        appender.close()
        appender.append("after close")


async def test_default_capture_errors_takes_context_setting_true():
    async with PromisingContext(appenders_capture_errors_by_default=True):
        appender = StreamAppender(capture_errors=DEFAULT)
        assert appender.capture_errors is True
        with appender:
            raise ValueError("captured")  # suppressed
        pieces = await asyncio.wait_for(collect_raw(StreamedPromise(streamer=appender)), 5)
        assert len(pieces) == 1 and isinstance(pieces[0], ValueError)


async def test_default_capture_errors_takes_context_setting_false():
    async with PromisingContext(appenders_capture_errors_by_default=False):
        appender = StreamAppender()
        assert appender.capture_errors is False
        with pytest.raises(ValueError, match="not captured"), appender:
            raise ValueError("not captured")


async def test_default_capture_errors_is_false_for_default_context():
    async with PromisingContext():
        appender = StreamAppender()
        with pytest.raises(ValueError), appender:
            raise ValueError("default context does not capture")


# ================================================================ streaming


async def test_pieces_appended_and_closed_before_promise_consumes_are_delivered():
    appender = StreamAppender(capture_errors=False)
    with appender:
        for piece in ["one", "two", "three"]:
            appender.append(piece)
    async with PromisingContext():
        promise = StreamedPromise(streamer=appender, start_asap=False)
        assert await asyncio.wait_for(collect(promise), 5) == ["one", "two", "three"]
        assert await asyncio.wait_for(collect(promise), 5) == ["one", "two", "three"]


def test_appender_works_without_active_context_when_capture_errors_explicit():
    assert PromisingContext.get_current_or_none() is None
    appender = StreamAppender(capture_errors=True)
    with appender:
        appender.append(1)
        appender.append(2)
        raise ValueError("captured without context")

    async def consume():
        async with PromisingContext():
            return await collect_raw(StreamedPromise(streamer=appender))

    pieces = asyncio.run(consume())
    assert pieces[:2] == [1, 2]
    assert isinstance(pieces[2], ValueError) and len(pieces) == 3


async def test_appender_streams_pieces_appended_while_consumer_waits():
    async with PromisingContext():
        appender = StreamAppender(capture_errors=False)
        promise = StreamedPromise(streamer=appender, start_asap=True)
        consumer = asyncio.ensure_future(collect(promise))
        appender.open()
        for piece in range(3):
            await asyncio.sleep(0)
            appender.append(piece)
        await asyncio.sleep(0)
        assert not consumer.done()  # not closed yet: the consumer keeps waiting
        appender.close()
        assert await asyncio.wait_for(consumer, 5) == [0, 1, 2]


async def test_appender_is_async_iterator_of_appended_pieces():
    appender = StreamAppender(capture_errors=False)
    with appender:
        appender.append("x")
        appender.append("y")
    assert appender.__aiter__() is appender
    assert await asyncio.wait_for(collect(appender), 5) == ["x", "y"]


async def test_calling_appender_returns_iterator_of_pieces():
    appender = StreamAppender(capture_errors=False)
    with appender:
        appender.append("x")
    assert await asyncio.wait_for(collect(appender()), 5) == ["x"]


# ============================================================== FlatSequence


async def repeat_flattener(_, item):
    for _ in range(item):
        yield f"{item}"


async def aiter_of(items):
    for item in items:
        await asyncio.sleep(0)
        yield item


@pytest.mark.parametrize("start_asap", [True, False])
async def test_flat_sequence_turns_items_into_zero_or_more_outputs_in_order(start_asap):
    expected = ("1", "3", "3", "3", "2", "2")
    async with PromisingContext():
        sequence = FlatSequence(aiter_of([1, 0, 3, 0, 2]), flattener=repeat_flattener, start_asap=start_asap)
        assert tuple(await asyncio.wait_for(collect(sequence.sequence_promise), 5)) == expected
        assert await asyncio.wait_for(sequence.sequence_promise, 5) == expected


async def test_flat_sequence_awaiting_gives_tuple():
    async with PromisingContext():
        sequence = FlatSequence(aiter_of([2, 1]), flattener=repeat_flattener)
        result = await asyncio.wait_for(sequence.sequence_promise, 5)
    assert isinstance(result, tuple)
    assert result == ("2", "2", "1")


async def test_flat_sequence_with_only_empty_outputs_gives_empty_tuple():
    async with PromisingContext():
        sequence = FlatSequence(aiter_of([0, 0, 0]), flattener=repeat_flattener)
        assert await asyncio.wait_for(sequence.sequence_promise, 5) == ()


async def test_flat_sequence_flattener_receives_the_flat_sequence():
    received = []

    async def flattener(flat_sequence, item):
        received.append(flat_sequence)
        yield item

    async with PromisingContext():
        sequence = FlatSequence(aiter_of(["a"]), flattener=flattener)
        assert await asyncio.wait_for(sequence.sequence_promise, 5) == ("a",)
    assert received == [sequence]


async def test_flat_sequence_streams_outputs_as_appender_items_arrive():
    async with PromisingContext():
        appender = StreamAppender(capture_errors=False)
        sequence = FlatSequence(appender, flattener=repeat_flattener)
        iterator = sequence.sequence_promise.__aiter__()
        appender.open()
        appender.append(2)
        assert await asyncio.wait_for(iterator.__anext__(), 5) == "2"
        assert await asyncio.wait_for(iterator.__anext__(), 5) == "2"
        appender.append(1)
        assert await asyncio.wait_for(iterator.__anext__(), 5) == "1"
        appender.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(iterator.__anext__(), 5)
        assert await sequence.sequence_promise == ("2", "2", "1")


async def test_flat_sequence_replays_outputs_to_every_consumer():
    async with PromisingContext():
        sequence = FlatSequence(aiter_of([1, 2]), flattener=repeat_flattener, start_asap=False)
        first, second = await asyncio.wait_for(
            asyncio.gather(collect(sequence.sequence_promise), collect(sequence.sequence_promise)), 5
        )
        assert first == second == ["1", "2", "2"]
        assert await collect(sequence.sequence_promise) == ["1", "2", "2"]


async def test_flat_sequence_flattener_supplied_by_subclass_override():
    class Doubler(FlatSequence):
        async def _flattener(self, item):
            yield item
            yield item

    async with PromisingContext():
        sequence = Doubler(aiter_of(["a", "b"]))
        assert await asyncio.wait_for(sequence.sequence_promise, 5) == ("a", "a", "b", "b")


async def test_flat_sequence_uses_given_sequence_promise_class():
    class MySequencePromise(StreamedPromise):
        pass

    async with PromisingContext():
        sequence = FlatSequence(aiter_of([1]), flattener=repeat_flattener, sequence_promise_class=MySequencePromise)
        assert isinstance(sequence.sequence_promise, MySequencePromise)
        assert await asyncio.wait_for(sequence.sequence_promise, 5) == ("1",)


async def test_flat_sequence_flattener_error_reaches_consumer_at_its_position():
    error = ValueError("flattener broke")

    async def flattener(_, item):
        if item == "bad":
            raise error
        yield item

    async with PromisingContext():
        sequence = FlatSequence(aiter_of(["a", "bad", "c"]), flattener=flattener)
        assert await asyncio.wait_for(collect_raw(sequence.sequence_promise), 5) == ["a", error]
        with pytest.raises(ValueError) as error_info:
            await asyncio.wait_for(sequence.sequence_promise, 5)
        assert error_info.value is error
