"""
SQLiteMessageStore batches of any size: whatever the number of messages, the batch size, the repeats and the runs,
the store holds each distinct message once and links every run to exactly the messages it persisted (the writer
inserts many rows per statement and checks in bulk which keys it has written: these are its edges).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniagents import Message, MiniAgents
from miniagents.ext.sqlite_store import SQLiteMessageStore
from miniagents.promising.promising import Promise


def messages_of(count: int, distinct: int, nested_every: int) -> list[Message]:
    """`count` messages, equal texts repeating every `distinct`; every `nested_every`-th one holds two others."""
    made: list[Message] = []
    for index in range(count):
        if nested_every and index % nested_every == nested_every - 1:
            made.append(Message(f"holder {index % distinct}", children=(Message(f"{index}"), Message("shared"))))
        else:
            made.append(Message(f"text {index % distinct}", n=index % 3))
    return made


async def persist_in_runs(store: SQLiteMessageStore, runs: list[list[Message]]) -> list[list[Message]]:
    """Persist each list in its own MiniAgents context (one run each); the messages the store was handed, per run."""
    handed: list[list[Message]] = []
    for messages in runs:
        received: list[Message] = []

        async def collect(promise: Promise[Any], message: Message, into: list[Message] = received) -> None:
            into.append(message)

        async with MiniAgents(on_persist_message=[store.on_persist_message, collect]):
            for message in messages:
                message.as_promise  # noqa: B018  # (resolved: persisted, nested messages first)
        handed.append(received)
    await store.aflush()
    return handed


def assert_store_holds(path: Path, handed: list[list[Message]]) -> None:
    with sqlite3.connect(path) as connection:
        stored = set(connection.execute("SELECT hash_key, class_, serialized FROM messages"))
        links = connection.execute("SELECT run_id, hash_key FROM run_messages").fetchall()
        run_ids = [run_id for (run_id,) in connection.execute("SELECT id FROM runs ORDER BY id")]
    expected = {(message.hash_key, message.class_, message.serialized) for run in handed for message in run}
    assert stored == expected
    assert len(links) == len(set(links))
    persisting = [run for run in handed if run]  # (a context that persists nothing records no run)
    assert sorted(links) == sorted(
        {(run_id, message.hash_key) for run_id, run in zip(run_ids, persisting, strict=True) for message in run}
    )


@pytest.mark.parametrize("count", [0, 1, 332, 333, 334, 499, 500, 666, 667, 1001])
async def test_every_message_is_stored_once_and_linked_whatever_the_count(tmp_path: Path, count: int) -> None:
    committed: list[str] = []
    store = SQLiteMessageStore(tmp_path / "messages.db", on_commit=committed.extend)
    try:
        handed = await persist_in_runs(store, [messages_of(count, distinct=count or 1, nested_every=0)])
    finally:
        store.close()

    assert_store_holds(store.path, handed)
    assert sorted(committed) == sorted({message.hash_key for message in handed[0]})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    runs=st.lists(
        st.tuples(st.integers(0, 800), st.integers(1, 900), st.sampled_from([0, 2, 7])), min_size=1, max_size=3
    ),
    batch_size=st.sampled_from([1, 5, 333, 1000, 10_000]),
)
async def test_repeats_across_batches_and_runs_are_stored_once_and_linked_per_run(
    tmp_path_factory: pytest.TempPathFactory, runs: list[tuple[int, int, int]], batch_size: int
) -> None:
    path = tmp_path_factory.mktemp("store") / "messages.db"
    committed: list[str] = []
    store = SQLiteMessageStore(path, batch_size=batch_size, on_commit=committed.extend)
    try:
        handed = await persist_in_runs(store, [messages_of(*run) for run in runs])
    finally:
        store.close()

    assert_store_holds(path, handed)
    assert sorted(committed) == sorted({message.hash_key for run in handed for message in run})
