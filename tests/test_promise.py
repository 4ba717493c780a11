"""Acceptance tests for Promise and StreamedPromise (SPEC 3.2, 3.3)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniagents import InteractionContext, Message, MiniAgents, miniagent
from miniagents.promising.errors import PromisingError
from miniagents.promising.promising import Promise, PromisingContext, StreamedPromise, StreamWriter
from miniagents.promising.sentinels import DEFAULT


class Gate:
    """Releases a streamer piece by piece: the streamer awaits `next_piece()`, the test calls `release()`."""

    def __init__(self) -> None:
        self._allowed = 0
        self._changed = asyncio.Event()

    def release(self, count: int = 1) -> None:
        self._allowed += count
        self._changed.set()

    async def next_piece(self) -> None:
        while self._allowed <= 0:
            self._changed.clear()
            await self._changed.wait()
        self._allowed -= 1


async def collect(promise) -> list:
    return [piece async for piece in promise]


async def collect_with_error(iterator) -> tuple[list, BaseException | None]:
    """Pieces until the first error, the error, and a check that iteration then ends."""
    pieces = []
    aiter_ = iterator.__aiter__()
    while True:
        try:
            piece = await aiter_.__anext__()
        except StopAsyncIteration:
            return pieces, None
        except Exception as exc:
            with pytest.raises(StopAsyncIteration):
                await aiter_.__anext__()
            return pieces, exc
        pieces.append(piece)


async def settle(switches: int = 5) -> None:
    for _ in range(switches):
        await asyncio.sleep(0)


# =================================================================== Promise


async def test_await_promise_gives_resolver_result():
    async def resolver(_):
        return 42

    async with PromisingContext():
        assert await Promise(resolver=resolver) == 42


async def test_aresolve_gives_same_result_as_await():
    result = object()

    async def resolver(_):
        return result

    async with PromisingContext():
        promise = Promise(start_asap=False, resolver=resolver)
        assert await promise.aresolve() is result
        assert await promise is result


async def test_resolver_receives_the_promise():
    received = []

    async def resolver(promise):
        received.append(promise)
        return 1

    async with PromisingContext():
        promise = Promise(start_asap=False, resolver=resolver)
        await promise
    assert received == [promise]


@pytest.mark.parametrize("start_asap", [True, False])
async def test_resolver_runs_once_under_concurrent_awaits(start_asap):
    calls = []
    release = asyncio.Event()

    async def resolver(_):
        calls.append(1)
        await release.wait()
        return ["result"]

    async with PromisingContext():
        promise = Promise(start_asap=start_asap, resolver=resolver)
        awaiters = [asyncio.ensure_future(promise.aresolve() if i % 2 else promise) for i in range(6)]
        await settle()
        release.set()
        results = await asyncio.gather(*awaiters)
        results.append(await promise)
    assert len(calls) == 1
    assert all(result is results[0] for result in results)


@pytest.mark.parametrize("start_asap", [True, False])
async def test_every_awaiter_gets_same_exception_instance_when_resolver_fails(start_asap):
    calls = []
    release = asyncio.Event()

    async def resolver(_):
        calls.append(1)
        await release.wait()
        raise ValueError("broken")

    async with PromisingContext():
        promise = Promise(start_asap=start_asap, resolver=resolver)
        awaiters = [asyncio.ensure_future(promise.aresolve()) for _ in range(4)]
        await settle()
        release.set()
        errors = await asyncio.gather(*awaiters, return_exceptions=True)
        for _ in range(2):
            with pytest.raises(ValueError) as error_info:
                await promise
            errors.append(error_info.value)
    assert len(calls) == 1
    assert isinstance(errors[0], ValueError)
    assert all(error is errors[0] for error in errors)


async def test_cancelled_awaiter_does_not_break_other_awaiter():
    release = asyncio.Event()

    async def resolver(_):
        await release.wait()
        return "value"

    async with PromisingContext():
        promise = Promise(start_asap=False, resolver=resolver)
        first = asyncio.ensure_future(promise.aresolve())
        await settle()
        second = asyncio.ensure_future(promise.aresolve())
        await settle()
        first.cancel()
        await settle()
        release.set()
        assert await asyncio.wait_for(second, timeout=5) == "value"


async def test_start_asap_true_starts_resolver_at_next_task_switch_without_await():
    started = []

    async def resolver(_):
        started.append(True)
        return 1

    async with PromisingContext():
        Promise(start_asap=True, resolver=resolver)
        assert started == []  # not synchronously inside the constructor
        await asyncio.sleep(0)
        assert started == [True]


async def test_start_asap_false_runs_resolver_only_on_first_await():
    started = []

    async def resolver(_):
        started.append(True)
        return 1

    async with PromisingContext():
        promise = Promise(start_asap=False, resolver=resolver)
        await settle(10)
        assert started == []
        assert await promise == 1
        assert started == [True]


async def test_start_asap_default_starts_eagerly_when_context_default_true():
    started = []

    async def resolver(_):
        started.append(True)
        return 1

    async with PromisingContext(start_everything_asap_by_default=True):
        Promise(start_asap=DEFAULT, resolver=resolver)
        Promise(resolver=resolver)
        await asyncio.sleep(0)
        assert started == [True, True]


async def test_start_asap_default_is_lazy_when_context_default_false():
    started = []

    async def resolver(_):
        started.append(True)
        return 1

    async with PromisingContext(start_everything_asap_by_default=False):
        promise = Promise(start_asap=DEFAULT, resolver=resolver)
        other = Promise(resolver=resolver)
        await settle(10)
        assert started == []
        await promise
        await other
        assert started == [True, True]


async def test_prefilled_promise_gives_prefilled_object_without_calling_resolver():
    value = {"prefilled": True}
    calls = []

    async def resolver(_):
        calls.append(1)
        return "other"

    async with PromisingContext():
        promise = Promise(resolver=resolver, prefill_result=value)
        assert await promise is value
        assert await promise.aresolve() is value
    assert calls == []


async def test_prefilled_promise_with_none_result_is_resolved():
    async with PromisingContext():
        promise = Promise(prefill_result=None)
        assert await promise is None


async def test_promise_without_resolver_fails_on_await():
    async with PromisingContext():
        promise = Promise(start_asap=False)
        with pytest.raises(Exception):  # noqa: B017 - SPEC only says it fails (FunctionNotProvidedError here)
            await promise


async def test_promise_requires_active_context():
    async def resolver(_):
        return 1

    with pytest.raises(RuntimeError, match="async with MiniAgents"):
        Promise(resolver=resolver)


async def test_resolver_supplied_by_subclass_override():
    class Answer(Promise):
        async def _resolver(self):
            return "from subclass"

    async with PromisingContext():
        assert await Answer(start_asap=False) == "from subclass"
        assert await Answer(start_asap=True) == "from subclass"


# ============================================================ StreamedPromise


def counting_streamer(pieces, calls, gate: Gate | None = None, error_at: int | None = None, error=None):
    """A streamer function that counts its invocations and yields `pieces` (raising at `error_at`)."""

    async def streamer(_):
        calls.append(1)
        for index, piece in enumerate(pieces):
            if gate is not None:
                await gate.next_piece()
            if index == error_at:
                raise error
            yield piece
        if error_at is not None and error_at >= len(pieces):
            if gate is not None:
                await gate.next_piece()
            raise error

    return streamer


@pytest.mark.parametrize("start_asap", [True, False])
async def test_two_concurrent_consumers_both_see_full_sequence(start_asap):
    calls = []
    gate = Gate()
    pieces = ["a", "b", "c", "d"]

    async with PromisingContext():
        promise = StreamedPromise(streamer=counting_streamer(pieces, calls, gate), start_asap=start_asap)
        first = asyncio.ensure_future(collect(promise))
        second = asyncio.ensure_future(collect(promise))
        for _ in pieces:
            await settle()
            gate.release()
        await settle()
        gate.release()
        assert await asyncio.wait_for(first, 5) == pieces
        assert await asyncio.wait_for(second, 5) == pieces
    assert calls == [1]


@pytest.mark.parametrize("start_asap", [True, False])
async def test_late_consumer_replays_full_sequence_from_memory(start_asap):
    calls = []
    pieces = [1, 2, 3]

    async with PromisingContext():
        promise = StreamedPromise(streamer=counting_streamer(pieces, calls), start_asap=start_asap)
        assert await collect(promise) == pieces
        assert await collect(promise) == pieces
        assert await collect(promise) == pieces
    assert calls == [1]


@pytest.mark.parametrize("start_asap", [True, False])
async def test_consumer_starting_mid_stream_replays_earlier_pieces(start_asap):
    calls = []
    gate = Gate()
    pieces = ["x", "y", "z"]

    async with PromisingContext():
        promise = StreamedPromise(streamer=counting_streamer(pieces, calls, gate), start_asap=start_asap)
        first_iter = promise.__aiter__()
        gate.release()
        assert await asyncio.wait_for(first_iter.__anext__(), 5) == "x"
        late = asyncio.ensure_future(collect(promise))
        await settle()
        gate.release(10)
        assert await asyncio.wait_for(late, 5) == pieces
        assert [piece async for piece in first_iter] == ["y", "z"]
    assert calls == [1]


@pytest.mark.parametrize("start_asap", [True, False])
async def test_streamer_invoked_once_with_many_consumers(start_asap):
    calls = []

    async with PromisingContext():
        promise = StreamedPromise(streamer=counting_streamer(range(5), calls), start_asap=start_asap)
        results = await asyncio.gather(*(collect(promise) for _ in range(5)))
        results.append(await collect(promise))
    assert calls == [1]
    assert results == [list(range(5))] * 6


@pytest.mark.parametrize("start_asap", [True, False])
async def test_streamer_exception_delivered_at_its_position_to_every_consumer_then_iteration_ends(start_asap):
    calls = []
    error = ValueError("mid-stream")

    async with PromisingContext():
        promise = StreamedPromise(
            streamer=counting_streamer([1, 2, 3], calls, error_at=2, error=error), start_asap=start_asap
        )
        concurrent = await asyncio.gather(collect_with_error(promise), collect_with_error(promise))
        late = await collect_with_error(promise)
    assert calls == [1]
    for pieces, received in [*concurrent, late]:
        assert pieces == [1, 2]
        assert received is error


@pytest.mark.parametrize("start_asap", [True, False])
async def test_streamer_exception_as_first_piece_ends_iteration(start_asap):
    error = KeyError("first")

    async with PromisingContext():
        promise = StreamedPromise(streamer=counting_streamer([1], [], error_at=0, error=error), start_asap=start_asap)
        assert await collect_with_error(promise) == ([], error)


@pytest.mark.parametrize("start_asap", [True, False])
@pytest.mark.parametrize("bad_return", [[1, 2, 3], 42, None, "text"])
async def test_streamer_not_returning_async_iterator_gives_type_error_then_end(start_asap, bad_return):
    async with PromisingContext():
        promise = StreamedPromise(streamer=lambda _: bad_return, start_asap=start_asap)
        for _ in range(2):
            pieces, error = await asyncio.wait_for(collect_with_error(promise), 5)
            assert pieces == []
            assert isinstance(error, TypeError)


@pytest.mark.parametrize("start_asap", [True, False])
async def test_broken_resolver_fails_await_but_not_stream(start_asap):
    error = RuntimeError("resolver broke")

    async def resolver(_):
        raise error

    async with PromisingContext():
        promise = StreamedPromise(streamer=counting_streamer(["p", "q"], []), resolver=resolver, start_asap=start_asap)
        assert await asyncio.wait_for(collect(promise), 5) == ["p", "q"]
        with pytest.raises(RuntimeError) as error_info:
            await asyncio.wait_for(promise.aresolve(), 5)
        assert error_info.value is error
        assert await asyncio.wait_for(collect(promise), 5) == ["p", "q"]


@pytest.mark.parametrize("start_asap", [True, False])
async def test_await_streamed_promise_gives_resolver_result(start_asap):
    async def resolver(promise):
        return "".join([piece async for piece in promise])

    async with PromisingContext():
        promise = StreamedPromise(
            streamer=counting_streamer(["he", "llo"], []), resolver=resolver, start_asap=start_asap
        )
        assert await asyncio.wait_for(promise, 5) == "hello"


async def test_start_asap_drains_streamer_in_background_without_consumer():
    produced = []
    drained = asyncio.Event()

    async def streamer(_):
        for piece in range(4):
            produced.append(piece)
            yield piece
        drained.set()

    async with PromisingContext():
        promise = StreamedPromise(streamer=streamer, start_asap=True)
        await asyncio.wait_for(drained.wait(), 5)
        assert produced == [0, 1, 2, 3]
        assert await collect(promise) == [0, 1, 2, 3]


async def test_start_asap_false_produces_pieces_on_demand_of_first_consumer():
    produced = []

    async def streamer(_):
        for piece in range(4):
            produced.append(piece)
            yield piece

    async with PromisingContext():
        promise = StreamedPromise(streamer=streamer, start_asap=False)
        await settle(10)
        assert produced == []
        iterator = promise.__aiter__()
        assert await iterator.__anext__() == 0
        await settle(10)
        assert produced == [0]
        assert await iterator.__anext__() == 1
        assert produced == [0, 1]
        assert await collect(promise) == [0, 1, 2, 3]


async def test_start_asap_default_drains_when_context_default_true():
    produced = []
    drained = asyncio.Event()

    async def streamer(_):
        produced.append("a")
        yield "a"
        drained.set()

    async with PromisingContext(start_everything_asap_by_default=True):
        StreamedPromise(streamer=streamer)
        await asyncio.wait_for(drained.wait(), 5)
        assert produced == ["a"]


async def test_start_asap_default_is_lazy_when_context_default_false_for_streamed():
    produced = []

    async def streamer(_):
        produced.append("a")
        yield "a"

    async with PromisingContext(start_everything_asap_by_default=False):
        promise = StreamedPromise(streamer=streamer)
        await settle(10)
        assert produced == []
        assert await collect(promise) == ["a"]


async def test_prefilled_streamed_promise_replays_prefilled_pieces_and_result():
    async with PromisingContext():
        promise = StreamedPromise(prefill_pieces=["a", "b"], prefill_result="ab")
        assert await collect(promise) == ["a", "b"]
        assert await collect(promise) == ["a", "b"]
        assert await promise == "ab"


@pytest.mark.parametrize("start_asap", [True, False])
async def test_prefilled_pieces_with_resolver_give_pieces_and_resolver_result(start_asap):
    async def resolver(promise):
        return tuple([piece async for piece in promise])

    async with PromisingContext():
        promise = StreamedPromise(prefill_pieces=[1, 2], resolver=resolver, start_asap=start_asap)
        assert await collect(promise) == [1, 2]
        assert await asyncio.wait_for(promise, 5) == (1, 2)


async def test_prefilled_pieces_with_start_asap_log_no_internal_error(caplog):
    caplog.set_level(logging.DEBUG, logger="miniagents")

    async def resolver(promise):
        return tuple([piece async for piece in promise])

    async with PromisingContext():
        StreamedPromise(prefill_pieces=[1, 2], resolver=resolver, start_asap=True)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


async def test_prefilled_pieces_with_start_asap_resolve_in_background():
    calls = []

    async def resolver(promise):
        calls.append(1)
        return tuple([piece async for piece in promise])

    async with PromisingContext():
        StreamedPromise(prefill_pieces=[1, 2], resolver=resolver, start_asap=True)
    assert calls == [1]


@pytest.mark.parametrize("start_asap", [True, False])
async def test_calling_promise_returns_fresh_replaying_iterator(start_asap):
    async with PromisingContext():
        promise = StreamedPromise(streamer=counting_streamer([1, 2, 3], []), start_asap=start_asap)
        first = promise()
        second = promise()
        assert first is not second
        assert await first.__anext__() == 1
        assert [piece async for piece in second] == [1, 2, 3]
        assert [piece async for piece in first] == [2, 3]
        assert [piece async for piece in promise()] == [1, 2, 3]


@pytest.mark.parametrize("start_asap", [True, False])
async def test_streamed_promise_can_be_streamer_of_another(start_asap):
    calls = []

    async with PromisingContext():
        inner = StreamedPromise(streamer=counting_streamer(["a", "b"], calls), start_asap=start_asap)
        outer = StreamedPromise(streamer=inner, start_asap=start_asap)
        other = StreamedPromise(streamer=inner, start_asap=start_asap)
        assert await collect(outer) == ["a", "b"]
        assert await collect(other) == ["a", "b"]
        assert await collect(inner) == ["a", "b"]
    assert calls == [1]


@pytest.mark.parametrize("start_asap", [True, False])
async def test_streamed_promise_as_streamer_passes_error_at_position(start_asap):
    error = ValueError("inner")

    async with PromisingContext():
        inner = StreamedPromise(
            streamer=counting_streamer(["a", "b"], [], error_at=1, error=error), start_asap=start_asap
        )
        outer = StreamedPromise(streamer=inner, start_asap=start_asap)
        assert await collect_with_error(outer) == (["a"], error)


@pytest.mark.parametrize("start_asap", [True, False])
async def test_streamer_and_resolver_supplied_by_subclass_override(start_asap):
    class Letters(StreamedPromise):
        async def _streamer(self):
            for letter in "abc":
                yield letter

        async def _resolver(self):
            return "".join([piece async for piece in self])

    async with PromisingContext():
        promise = Letters(start_asap=start_asap)
        assert await asyncio.wait_for(collect(promise), 5) == ["a", "b", "c"]
        assert await asyncio.wait_for(promise, 5) == "abc"


async def test_cancelled_waiting_consumer_does_not_break_other_consumer_when_start_asap():
    gate = Gate()
    pieces = [1, 2, 3]

    async with PromisingContext():
        promise = StreamedPromise(streamer=counting_streamer(pieces, [], gate), start_asap=True)
        doomed = asyncio.ensure_future(collect(promise))
        survivor = asyncio.ensure_future(collect(promise))
        await settle()
        doomed.cancel()
        await asyncio.wait([doomed])
        assert doomed.cancelled()
        gate.release(len(pieces))
        await asyncio.wait([survivor], timeout=5)
        assert survivor.done() and not survivor.cancelled()
        assert survivor.result() == pieces


async def test_cancelled_waiting_consumer_does_not_break_producing_consumer_when_lazy():
    gate = Gate()
    pieces = [1, 2, 3]

    async with PromisingContext():
        promise = StreamedPromise(streamer=counting_streamer(pieces, [], gate), start_asap=False)
        producer = asyncio.ensure_future(collect(promise))
        await settle()
        doomed = asyncio.ensure_future(collect(promise))
        await settle()
        doomed.cancel()
        await asyncio.wait([doomed])
        gate.release(len(pieces))
        await asyncio.wait([producer], timeout=5)
        assert producer.done() and not producer.cancelled()
        assert producer.result() == pieces


async def test_cancelled_producing_consumer_does_not_break_other_consumer_when_lazy():
    gate = Gate()
    pieces = [1, 2, 3]

    async with PromisingContext():
        promise = StreamedPromise(streamer=counting_streamer(pieces, [], gate), start_asap=False)
        doomed = asyncio.ensure_future(collect(promise))
        await settle()  # `doomed` is now pulling the first piece from the streamer
        survivor = asyncio.ensure_future(collect(promise))
        await settle()
        doomed.cancel()
        await asyncio.wait([doomed])
        gate.release(len(pieces))
        await asyncio.wait([survivor], timeout=5)
        assert survivor.done() and not survivor.cancelled(), "the surviving consumer was cancelled too"
        assert survivor.result() == pieces


async def test_streamed_promise_consumption_never_hangs_on_empty_stream():
    async def streamer(_):
        return
        yield  # pragma: no cover

    async with PromisingContext():
        promise = StreamedPromise(streamer=streamer, start_asap=False)
        assert await asyncio.wait_for(collect(promise), 5) == []


# ------------------------------------------------------- replay equivalence (hypothesis)


class ScenarioError(Exception):
    pass


async def _replay_scenario(pieces, error_position, consumer_delays, start_asap, yield_between):
    calls = []
    error = ScenarioError("at position")

    async def streamer(_):
        calls.append(1)
        for index, piece in enumerate(pieces):
            for _ in range(yield_between):
                await asyncio.sleep(0)
            if index == error_position:
                raise error
            yield piece
        if error_position == len(pieces):
            raise error

    async def consumer(delay):
        for _ in range(delay):
            await asyncio.sleep(0)
        return await collect_with_error(promise)

    async with PromisingContext():
        promise = StreamedPromise(streamer=streamer, start_asap=start_asap)
        results = await asyncio.wait_for(asyncio.gather(*(consumer(delay) for delay in consumer_delays)), 10)
        results.append(await collect_with_error(promise))
    return calls, error, results


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    pieces=st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=8),
    consumer_delays=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=4),
    start_asap=st.booleans(),
    yield_between=st.integers(min_value=0, max_value=2),
)
def test_every_consumer_sees_same_sequence_regardless_of_start_moment(
    data, pieces, consumer_delays, start_asap, yield_between
):
    error_position = data.draw(st.one_of(st.none(), st.integers(min_value=0, max_value=len(pieces))))
    calls, error, results = asyncio.run(
        _replay_scenario(pieces, error_position, consumer_delays, start_asap, yield_between)
    )
    expected_pieces = pieces if error_position is None else pieces[:error_position]
    expected_error = None if error_position is None else error
    assert calls == [1]
    for received_pieces, received_error in results:
        assert received_pieces == expected_pieces
        assert received_error is expected_error


async def test_a_reader_that_catches_a_mid_stream_error_piece_reads_on_while_token_streams_end_at_theirs():
    async with PromisingContext():
        writer: StreamWriter[object] = StreamWriter()
        promise = StreamedPromise(streamer=writer)
        writer.send("a")
        writer.send(ValueError("bad item"))
        writer.send("b")
        writer.close()
        iterator = aiter(promise)
        assert await anext(iterator) == "a"
        with pytest.raises(ValueError, match="bad item"):
            await anext(iterator)
        assert await anext(iterator) == "b"  # nothing after the error is lost
        with pytest.raises(StopAsyncIteration):
            await anext(iterator)
        assert [piece async for piece in promise.raw_pieces()][::2] == ["a", "b"]

    async def failing_tokens(_: object):
        yield "x"
        raise ValueError("stream broke")

    async with MiniAgents():
        message_promise = Message.promise(message_token_streamer=failing_tokens)
        pieces, error = await collect_with_error(message_promise)
        assert pieces == ["x"] and isinstance(error, ValueError)


# =================================================================== Forwarding


async def test_forward_pieces_hands_on_every_piece_then_goes_on_with_the_stream_on_end_gives():
    async with PromisingContext():
        first_writer: StreamWriter[object] = StreamWriter()
        second_writer: StreamWriter[object] = StreamWriter()
        first = StreamedPromise(streamer=first_writer)
        second = StreamedPromise(streamer=second_writer)
        received: list[object] = []
        ends: list[str] = []

        def on_end() -> StreamedPromise | None:
            ends.append("end")
            return second if len(ends) == 1 else None

        first_writer.send("a")
        forwarding = first.forward_pieces(received.append, on_end)
        assert received == ["a"]  # what was there already, at once
        error = ValueError("kept as a value")
        first_writer.send(error)
        assert received == ["a", error]  # synchronously: no task, no await
        second_writer.send("b")
        first_writer.close()
        assert received == ["a", error, "b"] and ends == ["end"]
        second_writer.close()
        assert ends == ["end", "end"] and not forwarding.active
        assert not forwarding.cancel()  # already ended


async def test_a_cancelled_forwarding_hands_on_nothing_more_and_never_ends():
    async with PromisingContext():
        writer: StreamWriter[object] = StreamWriter()
        promise = StreamedPromise(streamer=writer)
        received: list[object] = []
        forwarding = promise.forward_pieces(received.append, lambda: pytest.fail("on_end after cancel()"))
        writer.send(1)
        assert forwarding.cancel()
        writer.send(2)
        writer.close()
        assert received == [1]


async def test_forwarding_makes_a_lazy_stream_produce():
    async def pieces(_: object):
        yield 1
        yield 2

    async with PromisingContext():
        promise = StreamedPromise(streamer=pieces, start_asap=False)
        received: list[object] = []
        done = asyncio.Event()
        promise.forward_pieces(received.append, lambda: done.set())
        await asyncio.wait_for(done.wait(), 5)
        assert received == [1, 2]


async def test_a_forwarding_chain_thousands_long_runs_without_recursion():
    async with PromisingContext():
        writers: list[StreamWriter[object]] = [StreamWriter() for _ in range(5000)]
        promises = [StreamedPromise(streamer=writer) for writer in writers]
        for upstream, writer in zip(
            promises[1:], writers[:-1], strict=True
        ):  # each stream forwards the next one's pieces
            upstream.forward_pieces(writer.send, writer.close)  # type: ignore[arg-type]
        writers[-1].send("from the far end")
        writers[-1].close()
        assert promises[0].pieces_if_done() == ("from the far end",)


async def test_a_failing_receiver_is_logged_and_never_breaks_the_producer(caplog: pytest.LogCaptureFixture):
    def broken(_: object) -> None:
        raise RuntimeError("receiver bug")

    async with PromisingContext():
        writer: StreamWriter[object] = StreamWriter()
        promise = StreamedPromise(streamer=writer)
        with caplog.at_level(logging.ERROR):
            forwarding = promise.forward_pieces(broken, lambda: None)
            writer.send("x")  # does not raise here
        writer.close()
        assert not forwarding.active
        assert "receiver bug" in caplog.text and "forwarding the pieces" in caplog.text


@settings(max_examples=150, deadline=None)
@given(
    waiters=st.lists(
        st.sampled_from(["forwarding", "consumer", "cancelled forwarding", "cancelled consumer"]), max_size=6
    ),
    pieces=st.lists(st.integers(), max_size=4),
)
def test_any_mix_of_forwardings_and_consumers_waiting_on_a_stream_each_get_what_they_should(
    waiters: list[str], pieces: list[int]
) -> None:
    # a stream's waiters are futures of consumers and forwardings, a lone forwarding kept without a list: whichever
    # join, in any order, and whichever of them stop waiting, the others get every piece and the end
    async def check() -> None:
        async with PromisingContext():
            writer: StreamWriter[int] = StreamWriter()
            promise = StreamedPromise(streamer=writer)
            received: list[list[int]] = []
            ended: list[bool] = []
            forwardings, consumers = [], []
            for kind in waiters:
                got: list[int] = []
                received.append(got)
                ended.append(False)
                if kind.endswith("forwarding"):
                    index = len(ended) - 1
                    forwardings.append(
                        (kind, promise.forward_pieces(got.append, lambda index=index: ended.__setitem__(index, True)))
                    )
                else:

                    async def consume(got: list[int] = got) -> None:
                        async for piece in promise:
                            got.append(piece)

                    consumers.append((kind, asyncio.create_task(consume())))
            await asyncio.sleep(0)  # the consumers wait now
            for kind, forwarding in forwardings:
                if kind.startswith("cancelled"):
                    assert forwarding.cancel()
            for kind, task in consumers:
                if kind.startswith("cancelled"):
                    task.cancel()
            for piece in pieces:
                writer.send(piece)
                await asyncio.sleep(0)
            writer.close()
            for kind, task in consumers:
                if kind.startswith("cancelled"):
                    with pytest.raises(asyncio.CancelledError):
                        await task
                else:
                    await asyncio.wait_for(task, 5)
            for kind, got, end in zip(waiters, received, ended, strict=True):
                if kind.startswith("cancelled"):
                    assert got == [] and not end
                else:
                    assert got == pieces and (end or not kind.endswith("forwarding"))

    asyncio.run(check())


async def test_a_promise_fed_later_has_its_writer_made_when_its_stream_is_first_needed() -> None:
    class Source:
        def __init__(self) -> None:
            self.writers: list[StreamWriter[object]] = []

        def provide_writer(self, promise: StreamedPromise) -> None:
            writer: StreamWriter[object] = StreamWriter()
            promise.feed_with(writer)
            self.writers.append(writer)

    async with PromisingContext() as context:
        source = Source()
        promise = StreamedPromise.fed_later(source, context)
        # looking never makes it: no pieces, not done
        assert (promise.pieces_if_done(), promise.stream_done, promise.done()) == (None, False, False)
        assert source.writers == []
        iterator = promise.__aiter__()  # a consumer: now it is needed
        (writer,) = source.writers
        writer.send("a")
        writer.close()
        assert [piece async for piece in iterator] == ["a"] and promise.pieces_if_done() == ("a",)
        with pytest.raises(PromisingError, match="has its stream already"):
            promise.feed_with(StreamWriter())
        assert source.writers == [writer]


async def test_a_source_that_provides_no_writer_is_a_clear_error() -> None:
    class Forgetful:
        def provide_writer(self, promise: StreamedPromise) -> None:
            pass

    async with PromisingContext() as context:
        promise = StreamedPromise.fed_later(Forgetful(), context)
        with pytest.raises(PromisingError, match="provided no writer"):
            promise.__aiter__()


@miniagent
async def worker_agent(ctx: InteractionContext) -> None:
    ctx.reply("done")


async def test_the_replies_of_a_call_not_started_yet_are_empty_and_open_to_a_look() -> None:
    async with MiniAgents():
        call = worker_agent.initiate_inquiry().finish()
        assert call.replies.snapshot() == ((), False) and call.status == "pending"
        assert [str(message) for message in await call.replies.aresolve_messages()] == ["done"]
