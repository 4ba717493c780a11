"""
A reproducible load of agent calls: a tree of NODE agents, some of which fail on purpose.

`make_plan(calls, seed)` draws a random recursive tree (each call's parent is a uniformly chosen earlier
call, so depths vary); about `failure_rate` of the calls raise NodeFailure after calling their children.
Each call either flattens its children's replies into its own (`ctx.reply(child_calls)`, so failures
travel up) or consumes them itself (counting the failures it receives, forwarding the messages).

Run as a script it repeats such loads into an SQLite store, printing `committed <keys...>` after each
committed batch, until `--rounds` are done (the crash-safety test SIGKILLs it half-way).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from miniagents import Message, MessageSequencePromise, MiniAgent, MiniAgents, miniagent
from miniagents.ext.sqlite_store import SQLiteMessageStore


class NodeFailure(Exception):
    """Raised on purpose by a planned call."""

    def __init__(self, node_id: int) -> None:
        super().__init__(f"node {node_id} failed on purpose")
        self.node_id = node_id


@dataclass
class PlannedCall:
    node_id: int
    parent: int | None
    depth: int
    fails: bool
    consumes_children: bool
    children: list[int] = field(default_factory=list)


@dataclass
class LoadStats:
    raised: list[int] = field(default_factory=list)  # node ids whose call raised NodeFailure
    seen: list[int] = field(default_factory=list)  # node ids of the failures consumers received
    traces: dict[int, tuple[str, ...]] = field(default_factory=dict)  # node id -> agent_trace of its failure
    unexpected: list[BaseException] = field(default_factory=list)


def make_plan(calls: int, seed: int, failure_rate: float = 0.2) -> list[PlannedCall]:
    """A random tree of `calls` calls; call 0 is the root (it never fails)."""
    rng = random.Random(seed)
    plan = [PlannedCall(0, None, 0, fails=False, consumes_children=False)]
    for node_id in range(1, calls):
        parent = rng.randrange(node_id)
        plan.append(
            PlannedCall(
                node_id,
                parent,
                plan[parent].depth + 1,
                fails=rng.random() < failure_rate,
                consumes_children=rng.random() < 0.5,
            )
        )
        plan[parent].children.append(node_id)
    return plan


async def aconsume(
    sequence: MessageSequencePromise, stats: LoadStats, forward: Callable[[Message], None] | None = None
) -> list[Message]:
    """Read a whole reply sequence, recording every NodeFailure met on the way (iteration goes on after one)."""
    messages = []
    iterator: AsyncIterator[Any] = aiter(sequence)
    while True:
        try:
            message_promise = await anext(iterator)
        except StopAsyncIteration:
            return messages
        except NodeFailure as exc:
            stats.seen.append(exc.node_id)
            stats.traces[exc.node_id] = getattr(exc, "agent_trace", ())
            continue
        except Exception as exc:
            stats.unexpected.append(exc)
            continue
        message = await message_promise
        messages.append(message)
        if forward is not None:
            forward(message)


async def _node(ctx: Any, node_id: int, tag: str, plan: list[PlannedCall], stats: LoadStats) -> None:
    planned = plan[node_id]
    ctx.reply(f"{tag}: node {node_id} at depth {planned.depth} replies")
    children = [
        ctx.this_agent.inquire(f"{tag}: {node_id} calls {child}", node_id=child, tag=tag) for child in planned.children
    ]
    if planned.consumes_children:
        for child in children:
            await aconsume(child, stats, forward=ctx.reply)
    else:
        ctx.reply(children)
    if planned.fails:
        stats.raised.append(node_id)
        raise NodeFailure(node_id)


def node_agent(plan: list[PlannedCall], stats: LoadStats) -> MiniAgent:
    """The NODE agent, bound to a plan and to the stats it records into."""
    return miniagent(_node, alias="NODE", plan=plan, stats=stats)


async def arun_load(plan: list[PlannedCall], stats: LoadStats, tag: str) -> list[Message]:
    """Call the root of `plan` (inside an active MiniAgents context) and consume everything it replies."""
    return await aconsume(node_agent(plan, stats).inquire(f"{tag}: start", node_id=0, tag=tag), stats)


def _print_commit(hash_keys: tuple[str, ...]) -> None:
    sys.stdout.write(f"committed {' '.join(hash_keys)}\n")
    sys.stdout.flush()


async def _amain(arguments: argparse.Namespace) -> None:
    store = SQLiteMessageStore(arguments.db, batch_size=arguments.batch_size, on_commit=_print_commit)
    try:
        for round_number in range(arguments.rounds):
            plan = make_plan(arguments.calls, seed=arguments.seed + round_number)
            stats = LoadStats()
            context = MiniAgents(log_level_for_errors=logging.DEBUG)
            store.attach(context)
            async with context:
                await arun_load(plan, stats, tag=f"seed {arguments.seed} round {round_number}")
            await store.aflush()
            print(f"round {round_number} done", flush=True)
    finally:
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=200)
    asyncio.run(_amain(parser.parse_args()))
    print("finished", flush=True)


if __name__ == "__main__":
    main()
