"""
Plain-asyncio (and, for freeze+hash, plain-Python) baselines: the same work with no framework, i.e. the floor the
framework overhead is measured against. Same data as the framework workloads (see `_common.py`), same `check`s.
"""

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

from _common import build_message, hash_check, make_tokens, parse_size, plain_message, tokens_check

API_IMPORT = "n/a"

_END = object()


async def _produce(queue: asyncio.Queue, tokens: list[str], n: int) -> None:
    for i in range(n):
        queue.put_nowait(tokens[i])  # unbounded queues, like the frameworks' internal ones
    queue.put_nowait(_END)


async def _relay(q_in: asyncio.Queue, q_out: asyncio.Queue) -> None:
    while (token := await q_in.get()) is not _END:
        q_out.put_nowait(token)
    q_out.put_nowait(_END)


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
        queues = [asyncio.Queue() for _ in range(4)]  # producer -> q0 -> relay -> q1 -> relay -> q2 -> relay -> q3
        tasks = [asyncio.create_task(_produce(queues[0], tokens, n))]
        tasks += [asyncio.create_task(_relay(queues[i], queues[i + 1])) for i in range(3)]
        result = await asyncio.create_task(_consume([queues[3]]))
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


class _ReplayBuffer:
    """Minimal hand-rolled replay buffer: a list of tokens + a future to wake up consumers that caught up."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.closed = False
        self._waiter: asyncio.Future | None = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None

    def append(self, item: str) -> None:
        self.items.append(item)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    async def replay(self):
        """Every consumer gets every token from the beginning."""
        index = 0
        while True:
            items = self.items
            while index < len(items):
                yield items[index]
                index += 1
            if self.closed:
                return
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter


def bench_replay(size: str) -> Callable[[], Any]:
    """one producer appending into a replay buffer, `k` concurrent consumers each replaying it from the start."""
    n, k = parse_size(size)
    tokens = make_tokens(n)

    async def produce(buffer: _ReplayBuffer) -> None:
        for i in range(n):
            buffer.append(tokens[i])
        buffer.close()

    async def consume(buffer: _ReplayBuffer) -> tuple[int, int]:
        n_tokens = n_chars = 0
        async for token in buffer.replay():
            n_tokens += 1
            n_chars += len(token)
        return n_tokens, n_chars

    async def amain():
        buffer = _ReplayBuffer()
        producer = asyncio.create_task(produce(buffer))
        results = await asyncio.gather(*[asyncio.create_task(consume(buffer)) for _ in range(k)])
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


def bench_toplevel_fanout(size: str) -> Callable[[], Any]:
    """The same as `bench_fanout` (in plain asyncio every task is top-level)."""
    return bench_fanout(size)


def bench_store(size: str) -> Callable[[], Any]:
    """
    The floor of the message store: the very rows the store writes for a fan-out of `n` calls (hash key, class,
    serialized JSON of every persisted message, in the order the store receives them), written with plain sqlite3
    into the store's schema with the store's pragmas, `executemany` in ONE transaction, plus the run row and the
    run's links. The rows are made before the timed part (by MiniAgents from this repo: its texts are the data);
    timed: the transaction only.
    """
    import os  # pylint: disable=import-outside-toplevel
    import sqlite3  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    from _common import STORE_PRAGMAS, store_check, store_schema  # pylint: disable=import-outside-toplevel

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo, for the data only
    # pylint: disable=import-outside-toplevel
    from workloads_ours import _fresh_db_path, _remove_db, persisted_messages_of_fanout

    (n,) = parse_size(size)
    rows = [(message.hash_key, message.class_, message.serialized) for _, message in persisted_messages_of_fanout(n)]
    path = _fresh_db_path()
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in STORE_PRAGMAS:
        connection.execute(pragma)
    for statement in store_schema().split(";"):
        if statement.strip():
            connection.execute(statement)

    def run() -> None:
        connection.execute("BEGIN IMMEDIATE")
        run_id = connection.execute("INSERT INTO runs (started_at) VALUES (?)", (time.time(),)).lastrowid
        connection.executemany("INSERT OR IGNORE INTO messages (hash_key, class_, serialized) VALUES (?, ?, ?)", rows)
        connection.executemany(
            "INSERT OR IGNORE INTO run_messages (run_id, hash_key) VALUES (?, ?)", [(run_id, row[0]) for row in rows]
        )
        connection.execute("COMMIT")

    def after(_: None) -> Any:
        connection.close()
        try:
            return store_check(path)
        finally:
            _remove_db(path)

    run.after = after  # type: ignore[attr-defined]
    return run
