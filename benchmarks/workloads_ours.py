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

from _common import (
    build_message,
    count_live,
    current_rss_kb,
    hash_check,
    make_tokens,
    parse_count_reply,
    parse_size,
    store_check,
    tokens_check,
)

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
        return _fanout_check([str(reply) for reply in replies])

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


# --------------------------------------------------------------------------------------------------------------------
# workloads only "ours" runs (the message store and the notebook layer are not in the published versions; their
# imports happen inside the functions, so that 0.0.13 can still import this module)
# --------------------------------------------------------------------------------------------------------------------


def _fanout_check(texts: list[str]) -> dict[str, Any]:
    return {"replies": len(texts), "chars": sum(map(len, texts)), "last": texts[-1]}


def persisted_messages_of_fanout(n: int) -> list[tuple[Any, Any]]:
    """
    The (promise, message) pairs a persistence hook receives during a fan-out of `n` sub-agent calls, in the order
    it receives them (nested messages first). Nothing reads their hash keys or JSON here: as in a real run, the
    store is the first to ask for them.
    """
    pairs: list[tuple[Any, Any]] = []

    async def collect(promise: Any, message: Any) -> None:
        pairs.append((promise, message))

    async def amain() -> None:
        async with MiniAgents(on_persist_message=collect):
            await fanout_agent.inquire(n=n).aresolve_messages()

    asyncio.run(amain())
    return pairs


def _fresh_db_path() -> str:
    import os  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel

    return os.path.join(tempfile.mkdtemp(prefix="miniagents-bench-"), "messages.db")


def _remove_db(path: str) -> None:
    import shutil  # pylint: disable=import-outside-toplevel
    from pathlib import Path  # pylint: disable=import-outside-toplevel

    shutil.rmtree(Path(path).parent, ignore_errors=True)


def bench_store(size: str) -> Callable[[], Any]:
    """
    The store persists the messages of a fan-out of `n` calls (30,002 for 10,000 calls), fed through its hook in the
    order MiniAgents feeds them, until `aflush()` says all is committed. Timed: the hook calls, reading every
    message's JSON and hash key (not computed before, as in a real run), the batches. Not timed: producing the
    messages (the run), opening the file, closing the store, the check.
    """
    from miniagents.ext.sqlite_store import SQLiteMessageStore  # pylint: disable=import-outside-toplevel

    (n,) = parse_size(size)
    pairs = persisted_messages_of_fanout(n)
    path = _fresh_db_path()
    store = SQLiteMessageStore(path)

    async def amain() -> None:
        async with MiniAgents():
            hook = store.on_persist_message
            for promise, message in pairs:
                await hook(promise, message)
            await store.aflush()

    def run() -> None:
        asyncio.run(amain())

    def after(_: None) -> Any:
        store.close()
        try:
            return store_check(path)
        finally:
            _remove_db(path)

    run.after = after  # type: ignore[attr-defined]
    return run


def bench_store_run(size: str) -> Callable[[], Any]:
    """A fan-out of `n` calls with the store attached (`on_persist_message`), until `aflush()` returns."""
    from miniagents.ext.sqlite_store import SQLiteMessageStore  # pylint: disable=import-outside-toplevel

    (n,) = parse_size(size)
    path = _fresh_db_path()
    store = SQLiteMessageStore(path)

    async def amain() -> int:
        async with MiniAgents(on_persist_message=store.on_persist_message):
            replies = await fanout_agent.inquire(n=n).aresolve_messages()
        await store.aflush()
        return len(replies)

    def run() -> int:
        return asyncio.run(amain())

    def after(replies: int) -> Any:
        store.close()
        try:
            return {"replies": replies, **store_check(path)}
        finally:
            _remove_db(path)

    run.after = after  # type: ignore[attr-defined]
    return run


def _bench_toplevel(size: str, in_cell: bool) -> Callable[[], Any]:
    (n,) = parse_size(size)
    if in_cell:
        # pylint: disable=import-outside-toplevel
        from miniagents.notebook.run_scope import RunScope, attribute_calls_to_scopes, current_scope

    async def amain() -> Any:
        async with MiniAgents() as context:
            if in_cell:  # what a notebook cell does: its calls are attributed to the cell's scope
                attribute_calls_to_scopes(context)
                current_scope.set(RunScope("cell"))
            calls = [sub_agent.inquire(i=i) for i in range(n)]  # made outside any agent, like a cell's code
            texts = [str(message) for call in calls for message in await call.aresolve_messages()]
        return _fanout_check(texts)

    return lambda: asyncio.run(amain())


def bench_cell_fanout(size: str) -> Callable[[], Any]:
    """`n` parallel top-level calls made while a notebook cell's RunScope is current (the calls join the scope)."""
    return _bench_toplevel(size, in_cell=True)


def bench_toplevel_fanout(size: str) -> Callable[[], Any]:
    """The same `n` parallel top-level calls outside any notebook scope."""
    return _bench_toplevel(size, in_cell=False)


def _bench_rounds(size: str, with_tree: bool) -> Callable[[], Any]:
    """
    One MiniAgents context (a notebook kernel's), optionally one MessageTree created at the start, then `rounds`
    rounds of a fan-out of `n` calls. After each round (outside the timed part): live Message instances, objects
    tracked by the garbage collector, the tree's call records and the current RSS. The reported time is the sum
    of the rounds (the probes excluded).
    """
    import gc  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    from miniagents.notebook import MessageTree  # pylint: disable=import-outside-toplevel

    rounds, n = parse_size(size)
    extra: dict[str, Any] = {}

    async def amain() -> list[dict[str, Any]]:
        per_round = []
        async with MiniAgents():
            tree = MessageTree() if with_tree else None
            for number in range(rounds):
                wall, cpu = time.perf_counter(), time.process_time()
                replies = await fanout_agent.inquire(n=n).aresolve_messages()
                if tree is not None:
                    await tree.aquiet()  # the tree has taken in the round
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                assert len(replies) == n
                del replies
                messages, objects = count_live(Message)
                per_round.append(
                    {
                        "round": number + 1,
                        "seconds": wall,
                        "cpu_seconds": cpu,
                        "live_messages": messages,
                        "gc_objects": objects,
                        "tree_calls": len(tree.calls) if tree is not None else None,
                        "rss_kb": current_rss_kb(),
                    }
                )
            if tree is not None:
                tree.close()
        return per_round

    def run() -> Any:
        gc.collect()
        per_round = asyncio.run(amain())
        extra.update(
            rounds=per_round,
            seconds=sum(r["seconds"] for r in per_round),
            cpu_seconds=sum(r["cpu_seconds"] for r in per_round),
        )
        return {"rounds": rounds, "calls_per_round": n}

    run.extra = extra  # type: ignore[attr-defined]
    return run


def bench_tree_rounds(size: str) -> Callable[[], Any]:
    """Rounds of fan-outs with a MessageTree created once at the start (see `_bench_rounds`)."""
    return _bench_rounds(size, with_tree=True)


def bench_rounds(size: str) -> Callable[[], Any]:
    """The same rounds without a tree (the floor of `tree_rounds`)."""
    return _bench_rounds(size, with_tree=False)
