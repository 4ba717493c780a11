"""
SQLiteMessageStore: every persisted message in an SQLite file, once, under its hash key.

    store = SQLiteMessageStore("messages.db")
    async with MiniAgents(on_persist_message=store.on_persist_message):   # or store.attach(context)
        ...
    await store.aflush()   # everything handed to the hook so far is committed
    graph = store.load_run(store.runs()[-1].id)

Messages are stored git-style, in their externalised form (`Message.serialized`: nested messages as
hash keys), content-addressed and deduplicated: `messages(hash_key, class_, serialized)`; `runs(id,
started_at)` and `run_messages(run_id, hash_key)` record which run persisted what. The hook only queues
the message; one writer thread serialises, hashes and inserts in batches, one transaction per batch
(WAL mode), so the event loop never waits for the disk. A crash keeps every committed batch, and nested
messages are always committed no later than the messages that reference them.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import hashlib
import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miniagents.ext.stored_graph import MessageLoader, RunGraph, StoredCall, StoredRun, direct_sub_messages
from miniagents.messages import Message
from miniagents.miniagents import MiniAgents
from miniagents.promising.promising import Promise, PromisingContext

__all__ = ["MessageStoreError", "RunGraph", "SQLiteMessageStore", "StoredCall", "StoredRun"]

logger = logging.getLogger("miniagents.sqlite_store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    hash_key TEXT PRIMARY KEY,
    class_ TEXT NOT NULL,
    serialized TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_class ON messages (class_);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS run_messages (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    hash_key TEXT NOT NULL REFERENCES messages (hash_key),
    PRIMARY KEY (run_id, hash_key)
) WITHOUT ROWID;
"""

CommitCallback = Callable[[tuple[str, ...]], None]


class MessageStoreError(Exception):
    """A message could not be stored (see the message), or the store is closed."""


@dataclass(eq=False)
class _Run:
    started_at: float
    id: int | None = None  # assigned by the writer thread when it records the run


@dataclass
class _Write:
    message: Message | None  # None: only record the run
    run: _Run
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


_STOP = object()
_WRITTEN_CACHE_LIMIT = 200_000  # hash keys the writer remembers as stored; past it, it forgets (and re-checks)


class SQLiteMessageStore:
    """
    A content-addressed message store in one SQLite file (WAL mode), fed by `on_persist_message`.

    `batch_size` caps the messages per transaction. `on_commit(hash_keys)` is called from the writer
    thread after each commit with the hash keys it newly stored. Query methods read what is committed
    (call `aflush()` first) and block while they read.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        batch_size: int = 500,
        on_commit: CommitCallback | None = None,
        synchronous: str = "NORMAL",
    ) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise ValueError("SQLiteMessageStore needs a file path (the writer and readers use separate connections)")
        self.path = Path(path)
        self.batch_size = batch_size
        self._on_commit = on_commit
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._runs: weakref.WeakKeyDictionary[PromisingContext, _Run] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()  # guards _closed, _runs and the error lists (held only briefly)
        self._reader_lock = threading.Lock()  # guards the reader connection (held while a query reads)
        self._errors: list[str] = []
        self._unreported_errors: list[str] = []  # since the last flush
        self._reader: sqlite3.Connection | None = None
        self._closed = False
        writer = self._connect()  # created here, so a bad path or a broken file fails in the constructor
        self._writer = threading.Thread(target=self._write_loop, args=(writer,), name="sqlite-store", daemon=True)
        self._writer.start()
        atexit.register(_close_if_alive, weakref.ref(self))

    # ------------------------------------------------------------------ input

    async def on_persist_message(self, promise: Promise[Any], message: Message) -> None:
        """
        The persistence hook: `MiniAgents(on_persist_message=store.on_persist_message)`. It only queues
        the message; each outermost MiniAgents context it is called in becomes one run.
        """
        context = PromisingContext.get_current_or_none()
        while context is not None and context.parent is not None:
            context = context.parent
        if context is None:
            run = _Run(started_at=time.time())
        else:
            with self._lock:
                run = self._runs.get(context)
                if run is None:
                    run = self._runs[context] = _Run(started_at=time.time())
        self._put(_Write(message, run))

    def attach(self, context: MiniAgents) -> None:
        """Persist every message of `context` (and of contexts nested in it) as one new run."""
        run = _Run(started_at=time.time())
        self._put(_Write(None, run))

        async def persist(promise: Promise[Any], message: Message) -> None:
            self._put(_Write(message, run))

        context.on_persist_message(persist)

    def _put(self, item: Any) -> None:
        with self._lock:  # nothing may be queued behind _STOP: it would never be written (or released)
            if self._closed:
                raise MessageStoreError(f"the message store {self.path} is closed")
            self._queue.put(item)

    # ------------------------------------------------------- flushing, closing

    async def aflush(self) -> None:
        """
        Wait until everything queued so far is committed (without blocking the event loop).
        Raises MessageStoreError if messages failed to be stored since the last flush.
        """
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._put(future)
        await asyncio.wrap_future(future)
        self._raise_unreported_errors()

    def flush(self, timeout: float | None = None) -> None:
        """`aflush()` for synchronous code: blocks until everything queued so far is committed."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._put(future)
        future.result(timeout)
        self._raise_unreported_errors()

    def close(self) -> None:
        """Commit what is queued, stop the writer thread and close the connections (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._writer.join()
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    async def aclose(self) -> None:
        """`close()` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> SQLiteMessageStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def write_errors(self) -> tuple[str, ...]:
        """A description of every message that could not be stored."""
        with self._lock:
            return tuple(self._errors)

    def _raise_unreported_errors(self) -> None:
        with self._lock:
            errors, self._unreported_errors = self._unreported_errors, []
        if errors:
            raise MessageStoreError(f"{len(errors)} write error(s) in {self.path}; the first: {errors[0]}")

    # ----------------------------------------------------------- writer thread

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self._synchronous}")
        connection.executescript(_SCHEMA)
        return connection

    def _write_loop(self, connection: sqlite3.Connection) -> None:
        written: set[str] = set()  # hash keys known to be stored, with everything they reference
        try:
            running = True
            while running:
                batch = [self._queue.get()]
                while len(batch) < self.batch_size:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                running = _STOP not in batch
                if len(written) > _WRITTEN_CACHE_LIMIT:
                    written.clear()
                try:
                    self._write_batch(connection, [item for item in batch if isinstance(item, _Write)], written)
                except Exception as exc:  # a bug here must not strand the flushes waiting below
                    self._record_error(f"the writer failed on a batch of {len(batch)} item(s): {exc!r}")
                for item in batch:
                    if isinstance(item, concurrent.futures.Future):
                        item.set_result(None)
        finally:
            connection.close()

    def _write_batch(self, connection: sqlite3.Connection, writes: list[_Write], written: set[str]) -> None:
        """Write one batch in one transaction, then tell `on_commit`; all or nothing."""
        if not writes:
            return
        new_keys: list[str] = []
        new_runs: list[_Run] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for write in writes:
                self._write_one(connection, write, written, new_keys, new_runs)
            connection.execute("COMMIT")
        except sqlite3.Error as exc:  # the disk or the file, not a message: the whole batch is lost, say so
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            written.difference_update(new_keys)
            for run in new_runs:
                run.id = None
            self._record_error(f"a batch of {len(writes)} message(s) was not committed: {exc!r}")
            return
        if new_keys and self._on_commit is not None:
            try:
                self._on_commit(tuple(new_keys))
            except Exception as exc:
                logger.error("on_commit callback failed: %r", exc, exc_info=exc)

    def _write_one(
        self,
        connection: sqlite3.Connection,
        write: _Write,
        written: set[str],
        new_keys: list[str],
        new_runs: list[_Run],
    ) -> None:
        run = write.run
        if run.id is None:
            run.id = connection.execute("INSERT INTO runs (started_at) VALUES (?)", (run.started_at,)).lastrowid
            new_runs.append(run)
        if write.message is None:
            return
        try:
            # in the caller's context: nested hash keys get the length that context uses
            key = write.context.run(self._insert_tree, connection, write.message, written, new_keys)
        except sqlite3.Error:
            raise
        except Exception as exc:  # e.g. text with lone surrogates is not UTF-8: this message only
            self._record_error(f"could not store {write.message!r:.120}: {type(exc).__name__}: {exc}")
            return
        connection.execute("INSERT OR IGNORE INTO run_messages (run_id, hash_key) VALUES (?, ?)", (run.id, key))

    def _insert_tree(
        self, connection: sqlite3.Connection, message: Message, written: set[str], new_keys: list[str]
    ) -> str:
        """Insert `message` after the nested messages it references (unless stored already); its key."""
        serialized = message.serialized  # caches the hash keys of the nested messages as a side effect
        data = serialized.encode("utf-8")
        key = hashlib.sha256(data).hexdigest()
        context = PromisingContext.get_current_or_none()
        if context is None or not context.longer_hash_keys:
            key = key[:40]
        if key not in written:
            for child in direct_sub_messages(message):
                if child.hash_key not in written:
                    self._insert_tree(connection, child, written, new_keys)
            cursor = connection.execute(
                "INSERT OR IGNORE INTO messages (hash_key, class_, serialized) VALUES (?, ?, ?)",
                (key, message.class_, serialized),
            )
            written.add(key)
            if cursor.rowcount == 1:
                new_keys.append(key)
        return key

    def _record_error(self, description: str) -> None:
        logger.error("message store %s: %s", self.path, description)
        with self._lock:
            self._errors.append(description)
            self._unreported_errors.append(description)

    # ----------------------------------------------------------------- queries

    def _read(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._reader_lock:
            if self._reader is None:
                if self._closed:
                    raise MessageStoreError(f"the message store {self.path} is closed")
                self._reader = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
                self._reader.execute("PRAGMA query_only=1")
            return self._reader.execute(sql, parameters).fetchall()

    def _fetch_row(self, hash_key: str) -> tuple[str, str] | None:
        rows = self._read("SELECT class_, serialized FROM messages WHERE hash_key = ?", (hash_key,))
        return rows[0] if rows else None

    def load_message(self, hash_key: str) -> Message:
        """
        Rebuild the message stored under `hash_key`, nested messages included. Its class is looked up by
        name; an unknown class gives a Message with `original_class`. Raises KeyError if not stored.
        """
        return MessageLoader(self._fetch_row, str(self.path)).load(hash_key)

    def load_serialized(self, hash_key: str) -> str:
        """The stored JSON of a message, as hashed. Raises KeyError if not stored."""
        row = self._fetch_row(hash_key)
        if row is None:
            raise KeyError(f"no message with hash_key {hash_key!r} in {self.path}")
        return row[1]

    def runs(self, run_id: int | None = None) -> list[StoredRun]:
        """Every recorded run, oldest first (or only run `run_id`)."""
        rows = self._read(
            "SELECT runs.id, runs.started_at, count(run_messages.hash_key) FROM runs LEFT JOIN run_messages ON "
            "run_messages.run_id = runs.id WHERE ? IS NULL OR runs.id = ? GROUP BY runs.id ORDER BY runs.id",
            (run_id, run_id),
        )
        return [StoredRun(id=row[0], started_at=row[1], message_count=row[2]) for row in rows]

    def load_run(self, run_id: int) -> RunGraph:
        """The agent calls of a run as a tree (who called whom, with what, replying what). KeyError if none."""
        runs = self.runs(run_id)
        if not runs:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        keys = self._read(
            "SELECT messages.hash_key FROM run_messages JOIN messages ON messages.hash_key = run_messages.hash_key "
            "WHERE run_messages.run_id = ? AND messages.class_ IN ('AgentCallNode', 'AgentReplyNode')",
            (run_id,),
        )
        loader = MessageLoader(self._fetch_row, str(self.path))
        return RunGraph.from_nodes(runs[0], [loader.load(key) for (key,) in keys])

    def iter_hash_keys(self, run_id: int | None = None) -> Iterator[str]:
        """The hash keys of every stored message, or of those persisted during one run."""
        if run_id is None:
            rows = self._read("SELECT hash_key FROM messages ORDER BY hash_key")
        else:
            rows = self._read("SELECT hash_key FROM run_messages WHERE run_id = ? ORDER BY hash_key", (run_id,))
        return (key for (key,) in rows)

    def count_messages(self, class_: str | None = None) -> int:
        """How many distinct messages are stored (of one class, if `class_` is given)."""
        if class_ is None:
            return self._read("SELECT count(*) FROM messages")[0][0]
        return self._read("SELECT count(*) FROM messages WHERE class_ = ?", (class_,))[0][0]

    def count_runs(self) -> int:
        """How many runs are recorded."""
        return self._read("SELECT count(*) FROM runs")[0][0]


def _close_if_alive(store_ref: weakref.ref[SQLiteMessageStore]) -> None:
    store = store_ref()
    if store is not None:
        store.close()
