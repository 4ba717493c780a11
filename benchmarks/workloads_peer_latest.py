"""
Workloads written against the API of the LATEST published release, `miniagents==0.0.35` ("0.0.35" column).

Same workloads, same data (see `_common.py`) as `workloads_ours.py`; only the renamed API differs:

  0.0.13 / ours                                  0.0.35
  ---------------------------------------------  ------------------------------------------------------------
  from miniagents.miniagents import ...          from miniagents import ...  (0.0.13 has an empty __init__)
  agent.inquire(messages, **kwargs)              agent.trigger(messages, **kwargs)
  ctx.messages                                   ctx.message_promises
  await seq.aresolve_messages()                  await seq   (a MessageSequencePromise resolves to tuple[Message])
  Message.promise(message_token_streamer=f)      TextMessage.promise(message_token_streamer=f)
  f(metadata_so_far) yields str                  f(auxiliary_field_collector) is typed to yield Token objects;
                                                 plain `str` tokens are passed through untouched (0.0.35's own
                                                 `as_single_text_promise` yields str delimiters the same way)
                                                 and `TextMessage.tokens_to_message` joins `str(token)`; we
                                                 yield str so that no per-token pydantic object is created
  Message(text=...)                              TextMessage(content=...)   (`str(msg)` -> content)
  start_asap=...                                 start_soon=...  (not used here)
  hash_key needs an active context               hash_key works without one (we still enter MiniAgents())

0.0.35 also needs `wrapt`, `markdown-it-py`, `prompt-toolkit` (installed with it in its venv).
"""

import asyncio
from collections.abc import Callable
from typing import Any

from _common import build_message, hash_check, make_tokens, parse_count_reply, parse_size, tokens_check

from miniagents import InteractionContext, MiniAgents, TextMessage, miniagent

API_IMPORT = "top-level"

TOKENS: list[str] = []


def _token_streamer(n: int):
    async def streamer(auxiliary_field_collector: dict[str, Any]):  # pylint: disable=unused-argument
        tokens = TOKENS
        for i in range(n):
            yield tokens[i]

    return streamer


def _restreamer(message_promise):
    async def streamer(auxiliary_field_collector: dict[str, Any]):  # pylint: disable=unused-argument
        async for token in message_promise:
            yield token

    return streamer


# --------------------------------------------------------------------------------------------------------------------
# agents
# --------------------------------------------------------------------------------------------------------------------


@miniagent
async def producer_agent(ctx: InteractionContext, n: int) -> None:
    """Replies with ONE streamed message of `n` tokens."""
    ctx.reply(TextMessage.promise(message_token_streamer=_token_streamer(n)))


@miniagent
async def relay_agent(ctx: InteractionContext) -> None:
    """Re-streams every token of every input message as a new streamed message."""
    async for message_promise in ctx.message_promises:
        ctx.reply(TextMessage.promise(message_token_streamer=_restreamer(message_promise)))


@miniagent
async def consumer_agent(ctx: InteractionContext) -> None:
    """Reads every token of every input message, replies `"<tokens> <chars>"`."""
    n_tokens = n_chars = 0
    async for message_promise in ctx.message_promises:
        async for token in message_promise:
            n_tokens += 1
            n_chars += len(str(token))
    ctx.reply(f"{n_tokens} {n_chars}")


@miniagent
async def sub_agent(ctx: InteractionContext, i: int) -> None:
    ctx.reply(f"reply {i}")


@miniagent
async def fanout_agent(ctx: InteractionContext, n: int) -> None:
    for i in range(n):
        ctx.reply(sub_agent.trigger(i=i))


@miniagent
async def nest_agent(ctx: InteractionContext, depth: int, level: int = 0) -> None:
    if level >= depth:
        ctx.reply(f"leaf {level}")
    else:
        ctx.reply(nest_agent.trigger(depth=depth, level=level + 1))


# --------------------------------------------------------------------------------------------------------------------
# workloads
# --------------------------------------------------------------------------------------------------------------------


def bench_relay(size: str) -> Callable[[], Any]:
    """producer -> 3 relays -> consumer, `n` tokens."""
    (n,) = parse_size(size)
    TOKENS[:] = make_tokens(n)

    async def amain():
        async with MiniAgents():
            sequence = producer_agent.trigger(n=n)
            for _ in range(3):
                sequence = relay_agent.trigger(sequence)
            replies = await consumer_agent.trigger(sequence)
        return tokens_check(*parse_count_reply(str(replies[0])))

    return lambda: asyncio.run(amain())


def bench_fanout(size: str) -> Callable[[], Any]:
    """one agent replies with `n` parallel sub-agent calls, the caller resolves all the replies."""
    (n,) = parse_size(size)

    async def amain():
        async with MiniAgents():
            replies = await fanout_agent.trigger(n=n)
        texts = [str(reply) for reply in replies]
        return {"replies": len(texts), "chars": sum(map(len, texts)), "last": texts[-1]}

    return lambda: asyncio.run(amain())


def bench_fanin(size: str) -> Callable[[], Any]:
    """`p` producer agents stream `n` tokens each, one consumer agent reads all of them token by token."""
    p, n = parse_size(size)
    TOKENS[:] = make_tokens(n)

    async def amain():
        async with MiniAgents():
            replies = await consumer_agent.trigger([producer_agent.trigger(n=n) for _ in range(p)])
        return tokens_check(*parse_count_reply(str(replies[0])))

    return lambda: asyncio.run(amain())


def bench_nesting(size: str) -> Callable[[], Any]:
    """agent -> agent -> ... `depth` levels, the innermost replies, the reply flows back up."""
    (depth,) = parse_size(size)

    async def amain():
        async with MiniAgents():
            replies = await nest_agent.trigger(depth=depth)
        return {"replies": len(replies), "text": str(replies[0])}

    return lambda: asyncio.run(amain())


def bench_replay(size: str) -> Callable[[], Any]:
    """ONE streamed message of `n` tokens consumed (replayed) by `k` concurrent consumer agents."""
    n, k = parse_size(size)
    TOKENS[:] = make_tokens(n)

    async def amain():
        async with MiniAgents():
            sequence = producer_agent.trigger(n=n)
            consumer_replies = [consumer_agent.trigger(sequence) for _ in range(k)]
            results = [parse_count_reply(str((await r)[0])) for r in consumer_replies]
        return {
            "consumers": len(results),
            "distinct_results": len(set(results)),
            **tokens_check(sum(t for t, _ in results), sum(c for _, c in results)),
        }

    return lambda: asyncio.run(amain())


def bench_hash(size: str) -> Callable[[], Any]:
    """build `n` nested Messages (~200 fields, 3 nested Messages each) and compute `hash_key` of each."""
    (n,) = parse_size(size)

    def make_message(text: str, **fields: Any) -> TextMessage:
        return TextMessage(content=text, **fields)

    async def amain():
        async with MiniAgents():  # (not required by 0.0.35, kept for parity)
            hash_keys = [build_message(i, make_message).hash_key for i in range(n)]
        return hash_check(hash_keys, n)

    return lambda: asyncio.run(amain())
