"""`amap`: one agent over many inputs, at most `concurrency` at a time, rows in input order, failures kept."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniagents import InteractionContext, Message, MiniAgents, miniagent
from miniagents.batch import reply_usage
from miniagents.utils import BatchProgress, amap


def make_agent(limit_seen: list[int], fail_on: frozenset[str] = frozenset()) -> Any:
    running = 0

    @miniagent
    async def shout(ctx: InteractionContext, suffix: str = "!") -> None:
        nonlocal running
        running += 1
        limit_seen.append(running)
        try:
            [message] = await ctx.messages.aresolve_messages()
            await asyncio.sleep(0)  # let the others start, so the cap is really exercised
            if message.text in fail_on:
                raise ValueError(f"cannot shout {message.text}")
            ctx.reply(message.text.upper() + suffix)
        finally:
            running -= 1

    return shout


async def test_rows_come_back_in_input_order_with_failures_kept_and_the_cap_respected() -> None:
    seen: list[int] = []
    shout = make_agent(seen, fail_on=frozenset({"b"}))
    progress: list[tuple[int, int, int]] = []
    async with MiniAgents():
        rows = await asyncio.wait_for(
            amap(
                shout,
                ["a", "b", "c", "d", "e"],
                concurrency=2,
                suffix="?",
                on_progress=lambda p: progress.append((p.done, p.failed, p.running)),
            ),
            5,
        )
    assert [row.input for row in rows] == ["a", "b", "c", "d", "e"]
    assert [row.text for row in rows] == ["A?", "", "C?", "D?", "E?"]
    assert [row.ok for row in rows] == [True, False, True, True, True]
    assert isinstance(rows[1].error, ValueError)
    assert max(seen) == 2
    assert progress[-1] == (4, 1, 0)


@settings(max_examples=25, deadline=None)
@given(inputs=st.lists(st.text(min_size=1, max_size=5), max_size=20), concurrency=st.integers(1, 6))
def test_any_inputs_any_cap_one_row_per_input_in_order(inputs: list[str], concurrency: int) -> None:
    seen: list[int] = []
    shout = make_agent(seen)

    async def arun() -> list[str]:
        async with MiniAgents():
            return [row.text for row in await amap(shout, inputs, concurrency=concurrency)]

    assert asyncio.run(arun()) == [text.upper() + "!" for text in inputs]
    assert max(seen, default=0) <= concurrency


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True, "8"])
async def test_a_bad_concurrency_names_itself(concurrency: Any) -> None:
    async with MiniAgents():
        with pytest.raises(ValueError, match="concurrency"):
            await amap(make_agent([]), ["a"], concurrency=concurrency)


async def test_amap_refuses_what_is_not_an_agent() -> None:
    async with MiniAgents():
        with pytest.raises(TypeError, match="MiniAgent"):
            await amap(print, ["a"])  # type: ignore[arg-type]


def test_progress_has_rate_and_eta() -> None:
    progress = BatchProgress(total=10, done=5)
    assert progress.finished == 5
    assert progress.rate > 0
    assert progress.eta_seconds is not None


def test_progress_rate_stops_at_the_end_of_the_batch() -> None:
    progress = BatchProgress(total=4, done=4, started_at=10.0, ended_at=12.0)
    assert progress.elapsed == 2.0
    assert progress.rate == 2.0
    assert progress.eta_seconds == 0.0


class Gate:
    """Calls that block until released, counted as they start: the cap is seen with events, never timed."""

    def __init__(self, expected_at_once: int) -> None:
        self.expected_at_once = expected_at_once
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.running = 0
        self.full = asyncio.Event()  # set when `expected_at_once` calls are at work together
        self.release = asyncio.Event()

    def agent(self) -> Any:
        @miniagent
        async def gated(ctx: InteractionContext) -> None:
            [message] = await ctx.messages.aresolve_messages()
            self.started.append(message.text)
            self.running += 1
            if self.running == self.expected_at_once:
                self.full.set()
            try:
                await self.release.wait()
                ctx.reply(message.text.upper())
            except asyncio.CancelledError:
                self.cancelled.append(message.text)
                raise
            finally:
                self.running -= 1

        return gated


async def settle(turns: int = 50) -> None:
    """Let every task that can run do so (the calls that would start beyond the cap get their chance)."""
    for _ in range(turns):
        await asyncio.sleep(0)


@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_no_more_than_concurrency_calls_start_until_one_finishes(concurrency: int) -> None:
    gate = Gate(expected_at_once=concurrency)
    inputs = [f"x{i}" for i in range(20)]
    async with MiniAgents():
        batch = asyncio.ensure_future(amap(gate.agent(), inputs, concurrency=concurrency))
        await asyncio.wait_for(gate.full.wait(), 5)
        await settle()
        at_the_cap = list(gate.started)
        gate.release.set()
        rows = await asyncio.wait_for(batch, 5)

    assert at_the_cap == inputs[:concurrency]  # started in input order, and no more than the cap
    assert [row.text for row in rows] == [text.upper() for text in inputs]


async def test_cancelling_the_batch_cancels_running_calls_starts_no_more_and_keeps_finished_rows() -> None:
    gate = Gate(expected_at_once=2)
    finished: list[str] = []
    progress: list[BatchProgress] = []

    @miniagent
    async def quick_or_gated(ctx: InteractionContext) -> None:
        [message] = await ctx.messages.aresolve_messages()
        if message.text.startswith("quick"):
            ctx.reply("done " + message.text)
        else:
            await gated.inquire(message).aresolve_messages()

    gated = gate.agent()
    inputs = ["quick 0", "quick 1", "slow 2", "slow 3", "slow 4", "slow 5"]
    async with MiniAgents():
        batch = asyncio.ensure_future(
            amap(
                quick_or_gated,
                inputs,
                concurrency=2,
                on_row=lambda row: finished.append(row.text),
                on_progress=progress.append,
            )
        )
        await asyncio.wait_for(gate.full.wait(), 5)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        running_when_amap_returned = gate.running
        await settle()

    assert finished == ["done quick 0", "done quick 1"]  # the rows finished before the cancel were given out
    assert gate.started == ["slow 2", "slow 3"]  # nothing started after the cancel
    assert sorted(gate.cancelled) == ["slow 2", "slow 3"]  # the calls at work were cancelled...
    assert running_when_amap_returned == 0  # ...and had stopped when amap raised
    final = progress[-1]
    assert (final.done, final.failed, final.running, final.ended_at is not None) == (2, 0, 0, True)


async def test_rows_add_up_the_token_usage_of_their_replies() -> None:
    from miniagents.ext.llm.offline import OfflineModel, OfflineReply, create_offline_agent

    model = OfflineModel(lambda messages: OfflineReply("a b", usage={"input_tokens": 10, "output_tokens": 2}))
    llm = create_offline_agent(model)

    @miniagent
    async def twice(ctx: InteractionContext) -> None:
        ctx.reply(llm.inquire(ctx.messages))
        ctx.reply(llm.inquire(ctx.messages))

    @miniagent
    async def openai_shaped(ctx: InteractionContext) -> None:
        ctx.reply(Message(text="hi", usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}))

    progress: list[BatchProgress] = []
    async with MiniAgents():
        rows = await amap(twice, ["p", "q"], on_progress=progress.append)
        [openai_row] = await amap(openai_shaped, ["r"])

    assert [(row.input_tokens, row.output_tokens) for row in rows] == [(20, 4), (20, 4)]
    assert (progress[-1].input_tokens, progress[-1].output_tokens) == (40, 8)
    assert (openai_row.input_tokens, openai_row.output_tokens) == (7, 3)
    assert reply_usage([Message(text="no usage")]) == (0, 0)


async def test_a_failed_row_reads_as_a_record() -> None:
    async with MiniAgents():
        rows = await amap(make_agent([], fail_on=frozenset({"b"})), ["a", "b"])
    assert rows[0].as_record() == {
        "input": "a",
        "ok": True,
        "text": "A!",
        "error": "",
        "input_tokens": 0,
        "output_tokens": 0,
        "seconds": rows[0].seconds,
    }
    assert rows[1].as_record()["error"] == "ValueError: cannot shout b"
    assert rows[1].as_record()["ok"] is False


async def test_an_empty_batch_gives_no_rows_and_calls_nothing() -> None:
    seen: list[int] = []
    progress: list[BatchProgress] = []
    async with MiniAgents():
        assert await amap(make_agent(seen), [], on_progress=progress.append) == []
    assert seen == []
    assert (progress[-1].total, progress[-1].finished) == (0, 0)


async def test_inputs_may_be_any_iterable_and_none_calls_without_input() -> None:
    @miniagent
    async def count_inputs(ctx: InteractionContext) -> None:
        ctx.reply(str(len(await ctx.messages.aresolve_messages())))

    async with MiniAgents():
        rows = await amap(count_inputs, (item for item in [None, "one", ["two", "three"], Message(text="m")]))
    assert [row.text for row in rows] == ["0", "1", "2", "1"]


NOT_SEVERAL_INPUTS = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(),
    st.binary(),
    st.builds(lambda text: Message(text=text), st.text(max_size=5)),
)


@settings(max_examples=40, deadline=None)
@given(inputs=NOT_SEVERAL_INPUTS)
def test_inputs_that_are_not_an_iterable_of_inputs_are_refused_by_name(inputs: Any) -> None:
    seen: list[int] = []

    async def arun() -> None:
        async with MiniAgents():
            await amap(make_agent(seen), inputs)

    with pytest.raises(TypeError, match=r"amap\(\) takes an iterable of inputs"):
        asyncio.run(arun())
    assert seen == []


@settings(max_examples=40, deadline=None)
@given(
    concurrency=st.one_of(
        st.integers(max_value=0), st.floats(allow_nan=False), st.booleans(), st.text(), st.none(), st.just([2])
    )
)
def test_any_bad_concurrency_is_refused_before_a_call(concurrency: Any) -> None:
    seen: list[int] = []

    async def arun() -> None:
        async with MiniAgents():
            await amap(make_agent(seen), ["a"], concurrency=concurrency)

    with pytest.raises(ValueError, match=r"concurrency must be a whole number >= 1, got "):
        asyncio.run(arun())
    assert seen == []


async def test_an_async_stream_of_inputs_is_refused_with_the_fix() -> None:
    async with MiniAgents():
        replies = make_agent([]).inquire("a")
        with pytest.raises(TypeError, match="resolve it into a list first"):
            await amap(make_agent([]), replies)  # type: ignore[arg-type]


async def test_amap_without_an_active_context_says_how_to_start_one() -> None:
    with pytest.raises(RuntimeError, match="No MiniAgents context is active"):
        await amap(make_agent([]), ["a"])


def test_batch_runs_do_not_import_pandas_until_a_dataframe_is_asked_for() -> None:
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from miniagents import MiniAgents, miniagent\n"
        "from miniagents.utils import amap\n"
        "@miniagent\n"
        "async def echo(ctx):\n"
        "    ctx.reply(ctx.messages)\n"
        "async def main():\n"
        "    async with MiniAgents():\n"
        "        return await amap(echo, ['a', 'b'])\n"
        "assert [row.text for row in asyncio.run(main())] == ['a', 'b']\n"
        "assert 'pandas' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


async def test_failed_rows_are_logged_at_debug_not_as_errors(caplog: pytest.LogCaptureFixture) -> None:
    @miniagent
    async def inner(ctx: InteractionContext) -> None:
        raise ValueError("inner failure")

    @miniagent
    async def outer(ctx: InteractionContext) -> None:
        [message] = await ctx.messages.aresolve_messages()
        if message.text == "nested":
            await inner.inquire().aresolve_messages()
        raise ValueError("own failure")

    async with MiniAgents() as context:
        with caplog.at_level(logging.INFO, logger=context.logger.name):
            rows = await amap(outer, ["own", "nested"])
            assert [row.error_text for row in rows] == ["ValueError: own failure", "ValueError: inner failure"]
            assert [record.getMessage() for record in caplog.records] == []  # reported in the rows, not logged
            with caplog.at_level(logging.DEBUG, logger=context.logger.name):
                await amap(outer, ["own"])
            assert [(record.levelname, record.exc_info is not None) for record in caplog.records] == [("DEBUG", True)]
            caplog.clear()
            with pytest.raises(ValueError, match="inner failure"):  # outside a batch the log is as before
                await inner.inquire().aresolve_messages()
            assert [record.levelname for record in caplog.records] == ["ERROR"]
        assert context.logger.filters == []  # the batch's filter went with it


async def test_kwargs_the_agent_cannot_take_stop_the_batch_before_any_call() -> None:
    seen: list[int] = []
    progress: list[BatchProgress] = []
    async with MiniAgents():
        with pytest.raises(ValueError, match=r"SHOUT: function kwargs must be freezable .*field 'suffix'"):
            await amap(make_agent(seen), ["a", "b", "c"], on_progress=progress.append, suffix=object())
    assert seen == [] and progress == []  # refused up front, like the other bad arguments
