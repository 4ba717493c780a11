"""
Acceptance 1 and 2 of the persistence issue: a 10,000-call load with failures, persisted to SQLite,
loses nothing; a SIGKILL in the middle of such a run leaves a sound database that a later run extends.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from miniagents import Message, MiniAgents
from miniagents.ext.sqlite_store import SQLiteMessageStore
from miniagents.promising.promising import Promise
from tests.support.agent_tree_load import LoadStats, arun_load, make_plan

REPO_ROOT = Path(__file__).resolve().parents[1]
CALLS = 10_000


def stored_rows(db_path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db_path) as connection:
        return connection.execute("SELECT hash_key, class_, serialized FROM messages").fetchall()


def assert_rows_hash_to_their_keys(rows: list[tuple[str, str, str]]) -> None:
    for hash_key, class_, serialized in rows:
        digest = hashlib.sha256(serialized.encode("utf-8")).hexdigest()
        assert digest[: len(hash_key)] == hash_key, f"row {hash_key} ({class_}) does not hash to its key"
        assert json.loads(serialized)["class_"] == class_


def referenced_keys(serialized: str) -> set[str]:
    """The hash keys a stored message references (its nested messages)."""
    found: set[str] = set()

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                if name.endswith("__hash_keys"):
                    found.update(item)
                elif name.endswith("__hash_key"):
                    found.add(item)
                else:
                    visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(json.loads(serialized))
    return found


def integrity_check(db_path: Path) -> str:
    with sqlite3.connect(db_path) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.timeout(120)
async def test_every_resolved_message_is_stored_once_when_10000_calls_fail_at_random_depths(tmp_path: Path) -> None:
    plan = make_plan(CALLS, seed=20240611)
    stats = LoadStats()
    store = SQLiteMessageStore(tmp_path / "load.db")
    resolved: Counter[str] = Counter()

    async def collect(promise: Promise[Any], message: Message) -> None:
        resolved[message.hash_key] += 1

    async with MiniAgents(on_persist_message=[store.on_persist_message, collect], log_level_for_errors=logging.DEBUG):
        root_replies = await arun_load(plan, stats, tag="load")
    assert asyncio.all_tasks() == {asyncio.current_task()}, "a task is still pending after afinalize()"
    await store.aflush()

    # every failure surfaced to its consumer, once
    planned_failures = sorted(call.node_id for call in plan if call.fails)
    assert len(planned_failures) == pytest.approx(0.2 * CALLS, rel=0.1)
    assert len({plan[node_id].depth for node_id in planned_failures}) >= 5, "failures should happen at many depths"
    assert stats.unexpected == []
    assert sorted(stats.raised) == planned_failures
    assert sorted(stats.seen) == planned_failures, "each failure must reach exactly one consumer"
    for node_id, trace in stats.traces.items():  # the chain of calls the error came up through
        assert trace == ("NODE",) * (plan[node_id].depth + 1)
    assert len(root_replies) == CALLS  # every call replied once; flattened or forwarded up to the root

    # every resolved message is stored exactly once, and every row hashes to its key
    rows = stored_rows(tmp_path / "load.db")
    stored_keys = [row[0] for row in rows]
    assert len(stored_keys) == len(set(stored_keys)) == len(resolved)
    assert set(stored_keys) == set(resolved)
    assert_rows_hash_to_their_keys(rows)
    (run,) = store.runs()
    assert set(store.iter_hash_keys(run.id)) == set(resolved)
    assert store.count_messages("AgentCallNode") == store.count_messages("AgentReplyNode") == CALLS

    # the interaction graph of the run is the planned tree
    graph = store.load_run(run.id)
    assert len(graph) == CALLS
    for stored in graph.calls.values():
        planned = plan[stored.call.node_id]
        parent = stored.parent
        assert (None if parent is None else parent.call.node_id) == planned.parent
        assert (stored.error or "").startswith("NodeFailure") == planned.fails
    store.close()


def start_load_process(db_path: Path, rounds: int, seed: int) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """Run the load script; its stdout lines arrive on the returned queue (an empty string at EOF)."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.support.agent_tree_load", str(db_path)),
            *("--calls", "2000", "--rounds", str(rounds), "--seed", str(seed), "--batch-size", "100"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return process, lines


def read_committed_keys_until(lines: queue.Queue[str], batches: int, timeout: float = 60) -> set[str]:
    committed: set[str] = set()
    seen_batches = 0
    while seen_batches < batches:
        line = lines.get(timeout=timeout)
        assert line, "the load process ended before committing enough batches"
        if line.startswith("committed "):
            committed.update(line.split()[1:])
            seen_batches += 1
    return committed


def assert_database_is_sound(db_path: Path) -> list[tuple[str, str, str]]:
    assert integrity_check(db_path) == "ok"
    rows = stored_rows(db_path)
    assert_rows_hash_to_their_keys(rows)
    keys = {row[0] for row in rows}
    dangling = set().union(*(referenced_keys(row[2]) for row in rows)) - keys
    assert not dangling, f"{len(dangling)} referenced messages are missing (a torn batch?)"
    return rows


@pytest.mark.timeout(120)
def test_database_stays_sound_when_process_is_killed_mid_run(tmp_path: Path) -> None:
    db_path = tmp_path / "crash.db"
    process, lines = start_load_process(db_path, rounds=1000, seed=1)
    try:
        committed = read_committed_keys_until(lines, batches=5)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    rows = assert_database_is_sound(db_path)
    stored_keys = {row[0] for row in rows}
    assert committed <= stored_keys, "a message whose transaction committed is missing"
    with sqlite3.connect(db_path) as connection:
        runs_before = connection.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert runs_before >= 1

    # a second run appends to the same file
    process, lines = start_load_process(db_path, rounds=1, seed=2)
    try:
        assert process.wait(timeout=60) == 0, process.stderr.read()  # type: ignore[union-attr]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = []
    while (line := lines.get(timeout=10)) != "":
        output.append(line)
    assert output[-1] == "finished\n"
    committed_again = {key for line in output if line.startswith("committed ") for key in line.split()[1:]}

    rows_after = assert_database_is_sound(db_path)
    keys_after = {row[0] for row in rows_after}
    assert stored_keys < keys_after
    assert committed_again <= keys_after
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == runs_before + 1
