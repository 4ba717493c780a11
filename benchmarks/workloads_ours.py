"""
Workloads written against the 0.0.13-style public API (the API our package in /work/main implements).

The very same code is used for two implementations:
  * "ours"   - the package in /work/main/miniagents (repo root first on PYTHONPATH);
  * "0.0.13" - the published `miniagents==0.0.13` in its own venv (the peer with the same API).

Each `bench_<workload>(size)` does the untimed preparation and returns a zero-argument callable; the worker times
only that callable (which creates the event loop, enters/leaves `MiniAgents()` and runs the workload) and the
callable returns the `check` value that the runner compares across implementations.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from _common import build_message, hash_check, make_tokens, parse_count_reply, parse_size, tokens_check

try:
    # the documented (0.0.13-style) top-level API, which our package exposes
    from miniagents import InteractionContext, Message, MiniAgents, miniagent

    API_IMPORT = "top-level"
except ImportError:
    # the published 0.0.13 wheel ships an EMPTY `miniagents/__init__.py`, so the same names have to be imported from
    # the submodules there (the worker reports which style was used, the runner flags "ours" if it needed this)
    from miniagents.messages import Message
    from miniagents.miniagents import InteractionContext, MiniAgents, miniagent

    API_IMPORT = "submodules"

TOKENS: list[str] = []


def _token_streamer(n: int):
    async def streamer(metadata_so_far: dict[str, Any]):  # pylint: disable=unused-argument
        tokens = TOKENS
        for i in range(n):
            yield tokens[i]

    return streamer


def _restreamer(message_promise):
    async def streamer(metadata_so_far: dict[str, Any]):  # pylint: disable=unused-argument
        async for token in message_promise:
            yield token

    return streamer


# --------------------------------------------------------------------------------------------------------------------
# agents
# --------------------------------------------------------------------------------------------------------------------


@miniagent
async def producer_agent(ctx: InteractionContext, n: int) -> None:
    """Replies with ONE streamed message of `n` tokens."""
    ctx.reply(Message.promise(message_token_streamer=_token_streamer(n)))


@miniagent
async def relay_agent(ctx: InteractionContext) -> None:
    """Re-streams every token of every input message as a new streamed message."""
    async for message_promise in ctx.messages:
        ctx.reply(Message.promise(message_token_streamer=_restreamer(message_promise)))


@miniagent
async def consumer_agent(ctx: InteractionContext) -> None:
    """Reads every token of every input message, replies `"<tokens> <chars>"`."""
    n_tokens = n_chars = 0
    async for message_promise in ctx.messages:
        async for token in message_promise:
            n_tokens += 1
            n_chars += len(token)
    ctx.reply(f"{n_tokens} {n_chars}")


@miniagent
async def sub_agent(ctx: InteractionContext, i: int) -> None:
    ctx.reply(f"reply {i}")


@miniagent
async def fanout_agent(ctx: InteractionContext, n: int) -> None:
    for i in range(n):
        ctx.reply(sub_agent.inquire(i=i))


@miniagent
async def nest_agent(ctx: InteractionContext, depth: int, level: int = 0) -> None:
    if level >= depth:
        ctx.reply(f"leaf {level}")
    else:
        ctx.reply(nest_agent.inquire(depth=depth, level=level + 1))


# --------------------------------------------------------------------------------------------------------------------
# workloads
# --------------------------------------------------------------------------------------------------------------------


def bench_relay(size: str) -> Callable[[], Any]:
    """producer -> 3 relays -> consumer, `n` tokens."""
    (n,) = parse_size(size)
    TOKENS[:] = make_tokens(n)

    async def amain():
        async with MiniAgents():
            sequence = producer_agent.inquire(n=n)
            for _ in range(3):
                sequence = relay_agent.inquire(sequence)
            replies = await consumer_agent.inquire(sequence).aresolve_messages()
        return tokens_check(*parse_count_reply(str(replies[0])))

    return lambda: asyncio.run(amain())


def bench_fanout(size: str) -> Callable[[], Any]:
    """one agent replies with `n` parallel sub-agent calls, the caller resolves all the replies."""
    (n,) = parse_size(size)

    async def amain():
        async with MiniAgents():
            replies = await fanout_agent.inquire(n=n).aresolve_messages()
        texts = [str(reply) for reply in replies]
        return {"replies": len(texts), "chars": sum(map(len, texts)), "last": texts[-1]}

    return lambda: asyncio.run(amain())


def bench_fanin(size: str) -> Callable[[], Any]:
    """`p` producer agents stream `n` tokens each, one consumer agent reads all of them token by token."""
    p, n = parse_size(size)
    TOKENS[:] = make_tokens(n)

    async def amain():
        async with MiniAgents():
            replies = await consumer_agent.inquire([producer_agent.inquire(n=n) for _ in range(p)]).aresolve_messages()
        return tokens_check(*parse_count_reply(str(replies[0])))

    return lambda: asyncio.run(amain())


def bench_nesting(size: str) -> Callable[[], Any]:
    """agent -> agent -> ... `depth` levels, the innermost replies, the reply flows back up."""
    (depth,) = parse_size(size)

    async def amain():
        async with MiniAgents():
            replies = await nest_agent.inquire(depth=depth).aresolve_messages()
        return {"replies": len(replies), "text": str(replies[0])}

    return lambda: asyncio.run(amain())


def bench_replay(size: str) -> Callable[[], Any]:
    """ONE streamed message of `n` tokens consumed (replayed) by `k` concurrent consumer agents."""
    n, k = parse_size(size)
    TOKENS[:] = make_tokens(n)

    async def amain():
        async with MiniAgents():
            sequence = producer_agent.inquire(n=n)
            consumer_replies = [consumer_agent.inquire(sequence) for _ in range(k)]
            results = [parse_count_reply(str((await r.aresolve_messages())[0])) for r in consumer_replies]
        return {
            "consumers": len(results),
            "distinct_results": len(set(results)),
            **tokens_check(sum(t for t, _ in results), sum(c for _, c in results)),
        }

    return lambda: asyncio.run(amain())


def bench_hash(size: str) -> Callable[[], Any]:
    """build `n` nested Messages (~200 fields, 3 nested Messages each) and compute `hash_key` of each."""
    (n,) = parse_size(size)

    def make_message(text: str, **fields: Any) -> Message:
        return Message(text=text, **fields)

    async def amain():
        async with MiniAgents():  # 0.0.13 needs an active context for `hash_key`
            hash_keys = [build_message(i, make_message).hash_key for i in range(n)]
        return hash_check(hash_keys, n)

    return lambda: asyncio.run(amain())
