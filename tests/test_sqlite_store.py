"""SQLiteMessageStore: content-addressed, deduplicated, nested by reference, rebuildable, never in the loop's way."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniagents import InteractionContext, Message, MiniAgents, miniagent
from miniagents.ext.sqlite_store import MessageStoreError, SQLiteMessageStore
from miniagents.miniagents import AgentCallNode, AgentReplyNode
from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.promising import Promise

TIMEOUT = 10.0


class Citation(Frozen):
    source: str
    page: int = 0


class ResearchNote(Message):
    topic: str
    citation: Citation
    sources: tuple[Message, ...] = ()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteMessageStore]:
    message_store = SQLiteMessageStore(tmp_path / "messages.db")
    yield message_store
    message_store.close()


def rows(store: SQLiteMessageStore) -> list[tuple[str, str, str]]:
    with sqlite3.connect(store.path) as connection:
        return connection.execute("SELECT hash_key, class_, serialized FROM messages ORDER BY hash_key").fetchall()


async def within(awaitable: Any, seconds: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(awaitable, seconds)


async def test_message_is_stored_once_when_equal_content_is_resolved_twice(store: SQLiteMessageStore) -> None:
    instances: list[Message] = []

    async def collect(promise: Promise[Any], message: Message) -> None:
        instances.append(message)

    async with MiniAgents(on_persist_message=[store.on_persist_message, collect]):
        Message("same words", role="user").as_promise  # noqa: B018
        Message("same words", role="user").as_promise  # noqa: B018
    await store.aflush()

    assert len(instances) == 2 and instances[0] is not instances[1]
    assert store.count_messages() == 1
    (row,) = rows(store)
    assert row[0] == instances[0].hash_key
    assert row[1] == "Message"
    assert row[2] == instances[0].serialized


async def test_nested_messages_are_stored_by_reference_when_persisted(store: SQLiteMessageStore) -> None:
    child = Message("a long child text that must not be copied into its parent")
    sources = (Message("first source"), Message("second source"))
    parent = Message("parent", child=child, sources=sources, mixed=(1, Message("inside a mixed tuple")))

    async with MiniAgents(on_persist_message=store.on_persist_message):
        parent.as_promise  # noqa: B018
    await store.aflush()

    stored = json.loads(store.load_serialized(parent.hash_key))
    assert stored["child__hash_key"] == child.hash_key
    assert stored["sources__hash_keys"] == [message.hash_key for message in sources]
    assert stored["mixed"] == [1, {"__hash_key": Message("inside a mixed tuple").hash_key}]
    assert "must not be copied" not in store.load_serialized(parent.hash_key)
    assert store.count_messages() == 5
    assert {key for key, _, _ in rows(store)} == {message.hash_key for message in (*parent.sub_messages(), parent)}


async def test_load_message_rebuilds_equal_message_when_it_has_nested_messages_and_models(
    store: SQLiteMessageStore,
) -> None:
    note = ResearchNote(
        'Ünïcödé text ✓ with "quotes" and\nnewlines',
        topic="promises",
        citation=Citation(source="seeds", page=3),
        sources=(Message("source one", score=0.5), Message("source two", tags=["a", "b"])),
        extra={"nested": {"deeper": [1, 2.5, None, True]}},
        reviewed_by=Message("reviewer"),
    )
    async with MiniAgents(on_persist_message=store.on_persist_message):
        note.as_promise  # noqa: B018
    await store.aflush()

    rebuilt = store.load_message(note.hash_key)

    assert type(rebuilt) is ResearchNote
    assert type(rebuilt.citation) is Citation
    assert rebuilt == note
    assert rebuilt.hash_key == note.hash_key
    assert rebuilt.serialized == note.serialized
    assert [message.hash_key for message in rebuilt.sub_messages()] == [m.hash_key for m in note.sub_messages()]


def test_load_message_falls_back_to_message_when_class_is_unknown(store: SQLiteMessageStore) -> None:
    serialized = json.dumps({"class_": "VanishedMessage", "text": "from an old version", "text_template": None})
    with sqlite3.connect(store.path) as connection:
        connection.execute("INSERT INTO messages VALUES (?, ?, ?)", ("k" * 40, "VanishedMessage", serialized))

    rebuilt = store.load_message("k" * 40)

    assert type(rebuilt) is Message
    assert rebuilt.text == "from an old version"
    assert rebuilt.original_class == "VanishedMessage"


def test_load_message_raises_key_error_naming_key_when_not_stored(store: SQLiteMessageStore) -> None:
    with pytest.raises(KeyError, match="0123456789abcdef"):
        store.load_message("0123456789abcdef")


async def test_load_run_walks_who_called_whom_when_agents_call_agents(store: SQLiteMessageStore) -> None:
    @miniagent
    async def search(ctx: InteractionContext, query: str) -> None:
        if query == "nothing":
            raise LookupError("no results for nothing")
        ctx.reply(f"results for {query}")

    @miniagent
    async def researcher(ctx: InteractionContext) -> None:
        ctx.reply(search.inquire(query="promises"))
        ctx.reply(search.inquire(query="nothing"))

    @miniagent
    async def writer(ctx: InteractionContext) -> None:
        notes = await researcher.inquire(ctx.messages).aresolve_messages()
        ctx.reply(f"an article from {len(notes)} notes")

    context = MiniAgents()
    store.attach(context)
    async with context:
        with pytest.raises(LookupError):
            await writer.inquire("write about promises").aresolve_messages()
    await store.aflush()

    (run,) = store.runs()
    graph = store.load_run(run.id)
    assert [(depth, call.agent_alias) for depth, call in graph.walk()] == [
        (0, "WRITER"),
        (1, "RESEARCHER"),
        (2, "SEARCH"),
        (2, "SEARCH"),
    ]
    assert len(graph) == 4
    (writer_call,) = graph.roots
    assert [message.text for message in writer_call.input_messages] == ["write about promises"]
    assert writer_call.error is not None and writer_call.error.startswith("LookupError")
    researcher_call = writer_call.children[0]
    found, not_found = researcher_call.children
    assert found.call.query == "promises" and [m.text for m in found.replies] == ["results for promises"]
    assert not_found.error == "LookupError: no results for nothing" and not_found.replies == ()
    assert [m.text for m in researcher_call.replies] == ["results for promises"]
    assert isinstance(found.call, AgentCallNode) and isinstance(found.reply, AgentReplyNode)
    assert found.parent is researcher_call


async def test_each_context_is_a_run_when_stores_reopen_the_same_file(tmp_path: Path) -> None:
    for round_number in range(2):
        with SQLiteMessageStore(tmp_path / "runs.db") as store:
            async with MiniAgents(on_persist_message=store.on_persist_message):
                Message(f"round {round_number}").as_promise  # noqa: B018
                Message("in every round").as_promise  # noqa: B018
            async with MiniAgents(on_persist_message=store.on_persist_message):
                Message("in every round").as_promise  # noqa: B018
            await store.aflush()

    with SQLiteMessageStore(tmp_path / "runs.db") as store:
        runs = store.runs()
        assert [run.message_count for run in runs] == [2, 1, 2, 1]
        assert runs[0].started_at <= runs[-1].started_at
        assert store.count_runs() == 4
        assert store.count_messages() == 3
        assert [store.load_message(key).text for key in store.iter_hash_keys(runs[2].id)] == sorted(
            ["round 1", "in every round"], key=lambda text: Message(text).hash_key
        )


async def test_hook_returns_at_once_when_database_is_locked_by_another_writer(store: SQLiteMessageStore) -> None:
    hook_seconds: list[float] = []

    async def timed_hook(promise: Promise[Any], message: Message) -> None:
        started = time.perf_counter()
        await store.on_persist_message(promise, message)
        hook_seconds.append(time.perf_counter() - started)

    @miniagent
    async def echo(ctx: InteractionContext, number: int) -> None:
        ctx.reply(f"echo {number}")

    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the store's writer thread has to wait
    try:

        async def run_agents() -> None:
            async with MiniAgents(on_persist_message=timed_hook):
                for number in range(50):
                    echo.inquire(number=number)

        await within(run_agents())
        # the run finished while the database stayed locked: the hook never waited for the writer
        assert len(hook_seconds) == 150  # per call: its reply, its AgentCallNode and its AgentReplyNode
        assert store.count_messages() == 0  # nothing could be committed yet
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    await within(store.aflush())
    assert store.count_messages() == 150


async def test_aflush_commits_everything_queued_when_called(store: SQLiteMessageStore) -> None:
    committed: list[tuple[str, ...]] = []
    store_with_callback = SQLiteMessageStore(store.path, batch_size=7, on_commit=committed.append)
    async with MiniAgents(on_persist_message=store_with_callback.on_persist_message) as context:
        messages = [Message(f"message {number}") for number in range(100)]
        for message in messages:
            message.as_promise  # noqa: B018
        await context.aflush_tasks()
        await store_with_callback.aflush()
        assert store.count_messages() == 100
    store_with_callback.close()

    assert sorted(key for batch in committed for key in batch) == sorted(message.hash_key for message in messages)
    assert all(len(batch) <= 7 for batch in committed)


async def test_hash_keys_are_stored_full_length_when_context_wants_longer_keys(store: SQLiteMessageStore) -> None:
    async with MiniAgents(on_persist_message=store.on_persist_message, longer_hash_keys=True):
        message = Message("parent", child=Message("child"))
        message.as_promise  # noqa: B018
        key, child_key = message.hash_key, message.child.hash_key
    await store.aflush()

    assert len(key) == len(child_key) == 64
    assert set(store.iter_hash_keys()) == {key, child_key}
    assert json.loads(store.load_serialized(key))["child__hash_key"] == child_key


async def test_aflush_raises_naming_message_when_it_cannot_be_stored(store: SQLiteMessageStore) -> None:
    async with MiniAgents(on_persist_message=store.on_persist_message):
        Message("fine").as_promise  # noqa: B018
        # construction rejects lone surrogates; corrupt a message behind pydantic's back to reach the store
        corrupted = Message("placeholder", role="provider")
        corrupted.__dict__["text"] = "bad \ud800 surrogate"
        corrupted.as_promise  # noqa: B018

    with pytest.raises(MessageStoreError, match=r"(?s)could not store Message\(text='bad .*surrogate"):
        await store.aflush()
    assert store.count_messages() == 1
    assert len(store.write_errors) == 1
    await store.aflush()  # reported once


async def test_closed_store_refuses_messages_when_hook_is_called(store: SQLiteMessageStore) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(MessageStoreError, match="closed"):
        await store.on_persist_message(None, Message("late"))  # type: ignore[arg-type]
    with pytest.raises(MessageStoreError, match="closed"):
        store.count_messages()


def test_constructor_raises_when_path_is_in_memory() -> None:
    with pytest.raises(ValueError, match="file path"):
        SQLiteMessageStore(":memory:")


async def test_on_commit_names_only_newly_stored_keys_when_some_were_stored_before(tmp_path: Path) -> None:
    path = tmp_path / "messages.db"
    with SQLiteMessageStore(path) as earlier:
        async with MiniAgents(on_persist_message=earlier.on_persist_message):
            Message("stored before").as_promise  # noqa: B018
        await earlier.aflush()

    committed: list[tuple[str, ...]] = []
    with SQLiteMessageStore(path, on_commit=committed.append) as store:
        async with MiniAgents(on_persist_message=store.on_persist_message):
            for text in ("stored before", "new", "new", "also new"):  # two equal instances of "new"
                Message(text).as_promise  # noqa: B018
        await store.aflush()

        assert sorted(key for batch in committed for key in batch) == sorted(
            Message(text).hash_key for text in ("new", "also new")
        )
        assert store.count_messages() == 3
        assert [run.message_count for run in store.runs()] == [1, 3]


async def test_interleaved_contexts_are_separate_runs_when_they_persist_at_the_same_time(
    store: SQLiteMessageStore,
) -> None:
    started: list[str] = []
    both_started_event = asyncio.Event()

    class _BothStarted:  # asyncio.Barrier(2), which Python 3.10 lacks
        async def wait(self) -> None:
            started.append("one")
            if len(started) == 2:
                both_started_event.set()
            await both_started_event.wait()

    both_started = _BothStarted()

    async def run(name: str) -> None:
        async with MiniAgents(on_persist_message=store.on_persist_message) as context:
            for number in range(3):
                Message(f"{name} {number}").as_promise  # noqa: B018
                await context.aflush_tasks()  # this message reached the hook before the other context's next one
                if number == 0:
                    await both_started.wait()

    await within(asyncio.gather(run("first"), run("second")))
    await store.aflush()

    runs = store.runs()
    assert [run.message_count for run in runs] == [3, 3]
    texts = [sorted(store.load_message(key).text or "" for key in store.iter_hash_keys(run.id)) for run in runs]
    assert sorted(texts) == [[f"{name} {n}" for n in range(3)] for name in ("first", "second")]


@settings(max_examples=50, deadline=None)
@given(batch_size=st.integers(max_value=0) | st.floats() | st.text(max_size=5) | st.booleans() | st.none())
def test_constructor_raises_naming_batch_size_when_it_is_not_a_positive_int(batch_size: Any) -> None:
    # checked before the file is opened (opening one in a missing folder would raise MessageStoreError)
    with pytest.raises(ValueError, match=r"batch_size must be a positive int .* got "):
        SQLiteMessageStore("/no/such/folder/messages.db", batch_size=batch_size)
