"""`amap`: one agent over many inputs, at most `concurrency` at a time, rows in input order, failures kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniagents import InteractionContext, MiniAgents, miniagent
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
