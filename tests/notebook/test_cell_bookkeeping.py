"""
Calls made in a notebook cell are attributed to the cell (so an interrupt cancels them) with O(1) work per
call: the work is counted (Python function calls inside miniagents.notebook), never timed.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from types import FrameType
from typing import Any

from miniagents import InteractionContext, MiniAgents, miniagent
from miniagents.notebook.run_scope import RunScope, attribute_calls_to_scopes, current_scope


@miniagent
async def leaf(ctx: InteractionContext, i: int) -> None:
    ctx.reply(str(i))


async def _notebook_work_for(calls: int) -> int:
    """Python function calls made in miniagents/notebook/ while `calls` parallel calls run in one cell scope."""
    counts: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and "/miniagents/notebook/" in frame.f_code.co_filename:
            counts[frame.f_code.co_name] += 1

    async with MiniAgents() as context:
        attribute_calls_to_scopes(context)  # type: ignore[arg-type]
        scope = RunScope("cell")
        current_scope.set(scope)
        sys.setprofile(profile)
        try:
            replies = [leaf.inquire(i=i) for i in range(calls)]
            for reply in replies:
                await reply
        finally:
            sys.setprofile(None)
        assert scope.active_calls == []
    return sum(counts.values())


async def test_a_cell_of_8000_parallel_calls_does_linear_bookkeeping() -> None:
    small = await asyncio.wait_for(_notebook_work_for(2_000), 60)
    large = await asyncio.wait_for(_notebook_work_for(8_000), 60)
    assert large <= 4.5 * small, f"bookkeeping grew superlinearly: {small} for 2,000 calls, {large} for 8,000"
    assert large <= 5 * 8_000, f"{large} notebook-layer calls for 8,000 agent calls: more than O(1) each"


async def test_interrupting_a_cell_cancels_its_calls_started_or_not() -> None:
    async with MiniAgents() as context:
        attribute_calls_to_scopes(context)  # type: ignore[arg-type]
        scope = RunScope("cell")
        current_scope.set(scope)
        started: list[int] = []

        @miniagent
        async def forever(ctx: InteractionContext, i: int) -> None:
            started.append(i)
            await asyncio.Event().wait()

        replies = [forever.inquire(i=i) for i in range(50)]
        assert scope.cancel() == 50  # none has started yet
        for reply in replies:
            try:
                await asyncio.wait_for(reply.aresolve_messages(), 5)
            except Exception as exc:
                assert type(exc).__name__ == "PromiseCancelledError"
        assert started == []
        assert scope.active_calls == []
