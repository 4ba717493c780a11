"""
Plain-asyncio (and, for freeze+hash, plain-Python) baselines: the same work with no framework, i.e. the floor the
framework overhead is measured against. Same data as the framework workloads (see `_common.py`), same `check`s.
"""

import asyncio
import hashlib
import json
from typing import Any, Callable

from _common import build_message, hash_check, make_tokens, parse_size, plain_message, tokens_check

API_IMPORT = "n/a"

_END = object()


async def _produce(queue: asyncio.Queue, tokens: list[str], n: int) -> None:
    for i in range(n):
        await queue.put(tokens[i])  # unbounded queue: never suspends (same as the frameworks' internal queues)
    await queue.put(_END)


async def _relay(q_in: asyncio.Queue, q_out: asyncio.Queue) -> None:
    while (token := await q_in.get()) is not _END:
        await q_out.put(token)
    await q_out.put(_END)


async def _consume(queues: list[asyncio.Queue]) -> tuple[int, int]:
    n_tokens = n_chars = 0
    for queue in queues:
        while (token := await queue.get()) is not _END:
            n_tokens += 1
            n_chars += len(token)
    return n_tokens, n_chars


def bench_relay(size: str) -> Callable[[], Any]:
    """producer -> Queue -> 3 relay coroutines -> Queue -> consumer."""
    (n,) = parse_size(size)
    tokens = make_tokens(n)

    async def amain():
        queues = [asyncio.Queue() for _ in range(5)]
        tasks = [asyncio.create_task(_produce(queues[0], tokens, n))]
        tasks += [asyncio.create_task(_relay(queues[i], queues[i + 1])) for i in range(3)]
        result = await asyncio.create_task(_consume([queues[4]]))
        await asyncio.gather(*tasks)
        return tokens_check(*result)

    return lambda: asyncio.run(amain())


async def _sub(i: int) -> str:
    return f"reply {i}"


def bench_fanout(size: str) -> Callable[[], Any]:
    """asyncio.gather over `n` tasks, each returning a short string."""
    (n,) = parse_size(size)

    async def amain():
        texts = await asyncio.gather(*[asyncio.create_task(_sub(i)) for i in range(n)])
        return {"replies": len(texts), "chars": sum(map(len, texts)), "last": texts[-1]}

    return lambda: asyncio.run(amain())


def bench_fanin(size: str) -> Callable[[], Any]:
    """`p` producer tasks, each into its own Queue (produced concurrently), one consumer reads them in order."""
    p, n = parse_size(size)
    tokens = make_tokens(n)

    async def amain():
        queues = [asyncio.Queue() for _ in range(p)]
        producers = [asyncio.create_task(_produce(queue, tokens, n)) for queue in queues]
        result = await asyncio.create_task(_consume(queues))
        await asyncio.gather(*producers)
        return tokens_check(*result)

    return lambda: asyncio.run(amain())


async def _level(depth: int, level: int) -> str:
    if level >= depth:
        return f"leaf {level}"
    return await asyncio.create_task(_level(depth, level + 1))


def bench_nesting(size: str) -> Callable[[], Any]:
    """a task awaiting a task awaiting ... `depth` levels."""
    (depth,) = parse_size(size)

    async def amain():
        return {"replies": 1, "text": await asyncio.create_task(_level(depth, 0))}

    return lambda: asyncio.run(amain())


def bench_replay(size: str) -> Callable[[], Any]:
    """one producer broadcasting every token into `k` queues, `k` concurrent consumers."""
    n, k = parse_size(size)
    tokens = make_tokens(n)

    async def broadcast(queues: list[asyncio.Queue]) -> None:
        for i in range(n):
            token = tokens[i]
            for queue in queues:
                await queue.put(token)
        for queue in queues:
            await queue.put(_END)

    async def amain():
        queues = [asyncio.Queue() for _ in range(k)]
        producer = asyncio.create_task(broadcast(queues))
        results = await asyncio.gather(*[asyncio.create_task(_consume([queue])) for queue in queues])
        await producer
        return {
            "consumers": len(results),
            "distinct_results": len(set(results)),
            **tokens_check(sum(t for t, _ in results), sum(c for _, c in results)),
        }

    return lambda: asyncio.run(amain())


def _plain_hash_key(message: dict[str, Any]) -> str:
    """sha256 of sorted-keys JSON, nested messages replaced by their own hash keys (what the framework does)."""

    def externalize(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("__message__"):
                return {"__hash_key": _plain_hash_key(value)}
            return {k: externalize(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [externalize(v) for v in value]
        return value

    body = {k: externalize(v) for k, v in message.items()}
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()[:40]


def bench_hash(size: str) -> Callable[[], Any]:
    """plain Python: build the same nested dicts and hash their JSON (no freezing, no validation)."""
    (n,) = parse_size(size)

    def run():
        hash_keys = [_plain_hash_key(build_message(i, plain_message)) for i in range(n)]
        return hash_check(hash_keys, n)

    return run
