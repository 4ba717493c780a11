"""SQLiteMessageStore under faults: cancelled flushes, bad files, locks, schema versions, keys, deep chains."""

from __future__ import annotations

import asyncio
import enum
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniagents import InteractionContext, Message, MiniAgents, miniagent
from miniagents.ext.sqlite_store import SCHEMA_VERSION, MessageStoreError, SQLiteMessageStore
from tests.support.frozen_rules import acceptable_message, keys, message_fields, names_a_field, scalars

TIMEOUT = 10.0

# the schema the store created before it had a version (PRAGMA user_version 0)
SCHEMA_V0 = """
CREATE TABLE messages (hash_key TEXT PRIMARY KEY, class_ TEXT NOT NULL, serialized TEXT NOT NULL);
CREATE INDEX messages_by_class ON messages (class_);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL);
CREATE TABLE run_messages (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    hash_key TEXT NOT NULL REFERENCES messages (hash_key),
    PRIMARY KEY (run_id, hash_key)
) WITHOUT ROWID;
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "messages.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteMessageStore]:
    message_store = SQLiteMessageStore(db_path)
    yield message_store
    message_store.close()


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("PRAGMA user_version").fetchone()[0]


def table_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


async def within(awaitable: Any, seconds: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(awaitable, seconds)


class WriteLock:
    """Another connection holding the database's write lock (`BEGIN IMMEDIATE`) until released."""

    def __init__(self, path: Path, mode: str = "IMMEDIATE") -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute(f"BEGIN {mode}")

    def release(self) -> None:
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")
        self.connection.close()


# ------------------------------------------------------------------------------------- flushing


async def test_aflush_completes_when_an_earlier_aflush_was_cancelled(store: SQLiteMessageStore) -> None:
    lock = WriteLock(store.path)  # the writer cannot commit: the first flush cannot finish before its timeout
    try:
        async with MiniAgents(on_persist_message=store.on_persist_message):
            Message("queued before the cancelled flush").as_promise  # noqa: B018
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(store.aflush(), 0.01)
    finally:
        lock.release()

    await within(store.aflush())
    assert store.count_messages() == 1
    async with MiniAgents(on_persist_message=store.on_persist_message):
        Message("queued after it").as_promise  # noqa: B018
    await within(store.aflush())  # the writer thread is still there
    assert store.count_messages() == 2


async def test_messages_are_kept_and_committed_later_when_the_database_is_locked(db_path: Path) -> None:
    store = SQLiteMessageStore(db_path, busy_timeout=0)
    lock = WriteLock(db_path)
    try:
        async with MiniAgents(on_persist_message=store.on_persist_message):
            Message("written while locked").as_promise  # noqa: B018
        with pytest.raises(MessageStoreError, match=re.escape(str(db_path)) + r".*locked.*1 message\(s\) are kept"):
            await within(store.aflush())
    finally:
        lock.release()

    await within(store.aflush())  # the retry commits them: nothing was lost
    assert [store.load_message(key).text for key in store.iter_hash_keys()] == ["written while locked"]
    store.close()


# ------------------------------------------------------------------------------ opening a file


def test_constructor_names_the_path_when_its_folder_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "no such folder" / "messages.db"
    with pytest.raises(MessageStoreError, match=re.escape(str(path)) + r".*folder .* does not exist"):
        SQLiteMessageStore(path)


def test_constructor_names_the_path_when_the_file_is_not_sqlite(db_path: Path) -> None:
    db_path.write_bytes(b"these are notes, not a database\n" * 200)
    with pytest.raises(MessageStoreError, match=re.escape(str(db_path)) + r".* not an SQLite database"):
        SQLiteMessageStore(db_path)
    assert db_path.read_bytes() == b"these are notes, not a database\n" * 200


def test_constructor_refuses_another_applications_database_untouched(db_path: Path) -> None:
    with sqlite3.connect(db_path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    not_a_store = re.escape(str(db_path)) + r".*not a MiniAgents message store.*customers"
    with pytest.raises(MessageStoreError, match=not_a_store):
        SQLiteMessageStore(db_path)
    assert table_names(db_path) == {"customers"}
    assert user_version(db_path) == 0


def test_constructor_names_the_path_when_the_database_is_locked(db_path: Path) -> None:
    sqlite3.connect(db_path).close()  # an empty database in rollback-journal mode, locked whole below
    lock = WriteLock(db_path, mode="EXCLUSIVE")
    try:
        with pytest.raises(MessageStoreError, match=re.escape(str(db_path)) + r".*locked"):
            SQLiteMessageStore(db_path, busy_timeout=0)
    finally:
        lock.release()


def test_queries_name_the_path_when_the_file_was_deleted(store: SQLiteMessageStore) -> None:
    store.path.unlink()
    with pytest.raises(MessageStoreError, match=re.escape(str(store.path)) + ".*no such table"):
        store.count_messages()


# ------------------------------------------------------------------------------- schema version


def test_new_database_gets_the_current_schema_version(store: SQLiteMessageStore) -> None:
    assert SCHEMA_VERSION >= 1
    assert user_version(store.path) == SCHEMA_VERSION


async def test_version_0_database_is_upgraded_in_place_keeping_its_messages(db_path: Path) -> None:
    old = Message("stored by the version without a schema version")
    with sqlite3.connect(db_path) as connection:
        connection.executescript(SCHEMA_V0)
        connection.execute("INSERT INTO messages VALUES (?, ?, ?)", (old.hash_key, "Message", old.serialized))
        connection.execute("INSERT INTO runs (started_at) VALUES (1.5)")
        connection.execute("INSERT INTO run_messages VALUES (1, ?)", (old.hash_key,))
    assert user_version(db_path) == 0

    with SQLiteMessageStore(db_path) as store:
        assert user_version(db_path) == SCHEMA_VERSION
        assert store.load_message(old.hash_key) == old
        async with MiniAgents(on_persist_message=store.on_persist_message):
            Message("stored after the upgrade").as_promise  # noqa: B018
        await within(store.aflush())
        assert store.count_messages() == 2
        assert [run.message_count for run in store.runs()] == [1, 1]


def test_database_from_a_newer_version_is_refused_naming_both_versions(db_path: Path) -> None:
    with SQLiteMessageStore(db_path):
        pass
    with sqlite3.connect(db_path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    with pytest.raises(
        MessageStoreError, match=re.escape(str(db_path)) + rf".*schema version {SCHEMA_VERSION + 7}.*{SCHEMA_VERSION}"
    ):
        SQLiteMessageStore(db_path)
    assert user_version(db_path) == SCHEMA_VERSION + 7


# ------------------------------------------------------------------------------------- hash keys


async def test_stored_keys_are_the_persisting_contexts_keys_when_a_child_was_read_elsewhere_first(
    store: SQLiteMessageStore,
) -> None:
    child = Message("child")
    assert len(child.hash_key) == 40  # read outside any context first
    async with MiniAgents(on_persist_message=store.on_persist_message, longer_hash_keys=True):
        parent = Message("parent", child=child)
        parent.as_promise  # noqa: B018
        parent_key, child_key = parent.hash_key, child.hash_key
    await within(store.aflush())

    assert len(parent_key) == len(child_key) == 64
    assert set(store.iter_hash_keys()) == {parent_key, child_key}
    assert json.loads(store.load_serialized(parent_key))["child__hash_key"] == child_key


async def test_stored_key_is_the_messages_hash_key_in_each_context(store: SQLiteMessageStore) -> None:
    message = Message("persisted by a short-key and a long-key context")
    async with MiniAgents(on_persist_message=store.on_persist_message):
        message.as_promise  # noqa: B018
        short_key = message.hash_key
    async with MiniAgents(on_persist_message=store.on_persist_message, longer_hash_keys=True):
        Message("persisted by a short-key and a long-key context").as_promise  # noqa: B018
        long_key = message.hash_key
    await within(store.aflush())

    assert long_key.startswith(short_key) and len(long_key) == 64
    assert set(store.iter_hash_keys()) == {short_key, long_key}
    assert [run.message_count for run in store.runs()] == [1, 1]


async def test_stored_keys_follow_the_persisting_context_not_the_one_the_store_was_created_in(db_path: Path) -> None:
    async with MiniAgents(longer_hash_keys=True):
        store = SQLiteMessageStore(db_path)  # its writer thread must not read keys under this context
    message = Message("persisted by a short-key context", child=Message("a child"))
    async with MiniAgents(on_persist_message=store.on_persist_message):
        message.as_promise  # noqa: B018
        keys = {message.hash_key, message.child.hash_key}
    await within(store.aflush())
    assert set(store.iter_hash_keys()) == keys and {len(key) for key in keys} == {40}
    store.close()


# ---------------------------------------------------------------------------------- deep chains


async def test_load_message_rebuilds_a_reference_chain_10000_deep(store: SQLiteMessageStore) -> None:
    chain = [Message("link 0")]
    for number in range(1, 10_000):
        chain.append(Message(f"link {number}", previous=chain[-1]))
        chain[-1].hash_key  # noqa: B018  (keys computed bottom-up, one level at a time)
    async with MiniAgents():
        for message in chain:  # what the persistence hook receives: nested messages first
            await store.on_persist_message(message.as_promise, message)
    await within(store.aflush())

    rebuilt = store.load_message(chain[-1].hash_key)

    links = [rebuilt]
    while getattr(links[-1], "previous", None) is not None:
        links.append(links[-1].previous)
    assert [link.text for link in reversed(links)] == [message.text for message in chain]
    assert [link.hash_key for link in reversed(links)] == [message.hash_key for message in chain]


@miniagent
async def echo(ctx: InteractionContext) -> None:
    ctx.reply(ctx.messages)


async def test_a_reference_chain_10000_deep_goes_through_an_agent_with_persistence_on(
    store: SQLiteMessageStore,
) -> None:
    chain = [Message("link 0")]
    for number in range(1, 10_000):  # no key computed yet: persistence walks the whole chain at once
        chain.append(Message(f"link {number}", previous=chain[-1]))
    async with MiniAgents(on_persist_message=store.on_persist_message):
        (reply,) = await within(echo.inquire(chain[-1]).aresolve_messages())
    await within(store.aflush())

    assert reply is chain[-1] and store.count_messages() >= 10_000
    rebuilt = store.load_message(chain[-1].hash_key)
    links = [rebuilt]
    while (previous := links[-1].get("previous")) is not None:
        links.append(previous)
    assert [link.hash_key for link in reversed(links)] == [message.hash_key for message in chain]


def insert_row(path: Path, hash_key: str, serialized: dict[str, Any]) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO messages VALUES (?, ?, ?)", (hash_key, serialized["class_"], json.dumps(serialized))
        )


def test_load_message_names_the_missing_key_and_who_refers_to_it(store: SQLiteMessageStore) -> None:
    insert_row(store.path, "p" * 40, {"class_": "Message", "text": "parent", "child__hash_key": "c" * 40})
    with pytest.raises(KeyError, match=f"no message with hash_key '{'c' * 40}'.*referred to by '{'p' * 40}'"):
        store.load_message("p" * 40)


def test_load_message_raises_when_stored_messages_refer_to_each_other(store: SQLiteMessageStore) -> None:
    insert_row(store.path, "a" * 40, {"class_": "Message", "text": "a", "other__hash_key": "b" * 40})
    insert_row(store.path, "b" * 40, {"class_": "Message", "text": "b", "other__hash_key": "a" * 40})
    with pytest.raises(ValueError, match="refer to each other"):
        store.load_message("a" * 40)


# ---------------------------------------------------------------------------------- leaf values


class Mood(enum.Enum):
    CALM = "calm"


async def test_leaf_values_survive_the_store_with_the_same_hash_key(store: SQLiteMessageStore) -> None:
    message = Message(
        "with every kind of leaf",
        when=datetime(2024, 5, 1, 12, 30, 0, 1, tzinfo=timezone(timedelta(hours=2))),
        day=date(2024, 5, 1),
        at=time(12, 30),
        id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        price=Decimal("1.10"),
        mood=Mood.CALM,
        file=PurePosixPath("docs/a.md"),
        raw=b"\x00\xff",
        nested={"when": [date(2000, 1, 1)]},
    )
    async with MiniAgents(on_persist_message=store.on_persist_message):
        message.as_promise  # noqa: B018
    await within(store.aflush())

    rebuilt = store.load_message(message.hash_key)

    assert rebuilt == message
    assert rebuilt.hash_key == message.hash_key
    assert type(rebuilt.when) is datetime and rebuilt.nested.when == (date(2000, 1, 1),)


# ------------------------------------------------------------------------------------ property

# JSON-like data (and the leaf types), any keys ("", "_x", "x__hash_key"...), any strings (lone surrogates too), any
# numbers (nan, infinity, ints past the JSON limit): the same strategies and oracle as tests/test_frozen_properties.py
JSON_DATA = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(keys, JSON_DATA, max_size=4) | message_fields,
    longer_hash_keys=st.booleans(),
)
def test_any_json_like_message_is_refused_at_construction_or_loads_back_with_its_hash_key(
    tmp_path: Path, fields: dict[str, Any], longer_hash_keys: bool
) -> None:
    try:
        message = Message(**fields)
    except (ValueError, TypeError) as error:  # refused where it was given, naming the field; never a failure later
        assert not acceptable_message(fields), f"acceptable data refused: {error}"
        assert names_a_field(error, fields), f"the error names no field: {error}"
        return
    assert acceptable_message(fields), "data the rules refuse was accepted"
    nested = Message("holder", inner=message, many=(message, Message("other")))

    async def store_and_load() -> tuple[Message, str]:
        with SQLiteMessageStore(tmp_path / f"{uuid.uuid4()}.db") as store:
            async with MiniAgents(on_persist_message=store.on_persist_message, longer_hash_keys=longer_hash_keys):
                nested.as_promise  # noqa: B018
                key = nested.hash_key
            await within(store.aflush())
            return store.load_message(key), key

    loaded, key = asyncio.run(store_and_load())

    assert loaded == nested
    assert loaded.hash_key_for(longer_hash_keys) == key
    assert loaded["inner"].serialize() == message.serialize()
    assert loaded["inner"].hash_key_for(longer_hash_keys) == message.hash_key_for(longer_hash_keys)
