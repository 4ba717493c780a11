"""
A finished agent call is freed by reference counting, not left for the garbage collector: with thousands of calls
alive in a fan-out, cyclic garbage per call means full collections that walk every live object.
"""

from __future__ import annotations

import asyncio
import gc

from miniagents import InteractionContext, MiniAgents, miniagent
from miniagents.agent_call import AgentCall
from miniagents.message_sequence import MessageAppender


@miniagent
async def leaf(ctx: InteractionContext, i: int) -> None:
    ctx.reply(f"reply {i}")


@miniagent
async def fan_out(ctx: InteractionContext, n: int) -> None:
    for i in range(n):
        ctx.reply(leaf.inquire(i=i))


@miniagent
async def nest(ctx: InteractionContext, depth: int) -> None:
    ctx.reply(nest.inquire(depth=depth - 1) if depth else "bottom")


async def _run() -> int:
    async with MiniAgents():
        replies = await fan_out.inquire(n=50).aresolve_messages()
        replies += await nest.inquire(depth=30).aresolve_messages()
    return len(replies)


def _calls_and_appenders() -> list[object]:
    return [o for o in gc.get_objects() if isinstance(o, (AgentCall, MessageAppender))]


def test_finished_agent_calls_leave_no_cyclic_garbage() -> None:
    gc.collect()
    held_before = _calls_and_appenders()  # (other tests' objects still referred to: held, so no id is reused)
    known = {id(o) for o in held_before}
    was_enabled = gc.isenabled()
    gc.disable()  # whatever this run leaves in the heap is only there because something still refers to it
    try:
        assert asyncio.run(_run()) == 51
        leftovers = [o for o in _calls_and_appenders() if id(o) not in known]
        assert leftovers == [], f"{len(leftovers)} calls / appenders left for the garbage collector"
    finally:
        if was_enabled:
            gc.enable()


@miniagent
async def counting_leaf(ctx: InteractionContext, i: int, seen: list[int]) -> None:
    if i == 0:  # the first to run: every other call is still waiting for its turn
        seen.append(len(_framework_objects()))
    ctx.reply(f"reply {i}")


@miniagent
async def counting_fan_out(ctx: InteractionContext, n: int, seen: list[int]) -> None:
    for i in range(n):
        ctx.reply(counting_leaf.inquire(i=i, seen=seen))


def _framework_objects() -> list[object]:
    return [o for o in gc.get_objects() if str(type(o).__dict__.get("__module__", "")).startswith("miniagents.")]


def test_a_call_waiting_for_its_turn_is_two_objects_of_ours() -> None:
    # with thousands of calls made at once, what each one holds while it waits decides how often the collector
    # walks them all: the call and its reply sequence; the sequence's writer and appender come when first needed
    # (asyncio's own task, coroutine, context and scheduled step come on top, on every Python)
    n = 200

    async def run() -> list[int]:
        seen: list[int] = []
        async with MiniAgents():
            gc.collect()
            before = len(_framework_objects())
            replies = await counting_fan_out.inquire(n=n, seen=seen).aresolve_messages()
            assert [str(reply) for reply in replies] == [f"reply {i}" for i in range(n)]
        return [count - before for count in seen]

    (waiting,) = asyncio.run(run())
    assert waiting <= 2 * n + 20, f"{waiting / n:.2f} objects of ours per waiting call"
