"""
SQLiteMessageStore: every persisted message in an SQLite file, once, under its hash key.

    store = SQLiteMessageStore("messages.db")
    async with MiniAgents(on_persist_message=store.on_persist_message):   # or store.attach(context)
        ...
    await store.aflush()   # everything handed to the hook so far is committed
    graph = store.load_run(store.runs()[-1].id)

Messages are stored git-style, in their externalised form (`Message.serialized`: nested messages as
hash keys), content-addressed and deduplicated: `messages(hash_key, class_, serialized)`; `runs(id,
started_at)` and `run_messages(run_id, hash_key)` record which run persisted what.

The hook only queues the message; one writer thread reads its `serialized` JSON once and its `hash_key`
(the sha256 of that text, unless the message has computed it already; no context is active in that thread,
so keys are the short ones; in a context with `longer_hash_keys` the hook reads both itself, in that
context) and inserts in batches (hundreds of rows per INSERT), one transaction per batch (WAL mode), so the
event loop never waits for the disk. The hook receives nested messages before the messages that hold them, and
the queue keeps that order: a crash keeps every committed batch, and a message is never committed before the
messages it references.

The schema is versioned (`PRAGMA user_version`, `SCHEMA_VERSION`); opening an older database upgrades it
in place, a database from a newer version is refused.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from miniagents.ext.stored_graph import MessageLoader, RunGraph, StoredCall, StoredRun
from miniagents.messages import Message
from miniagents.miniagents import MiniAgents
from miniagents.promising.ownership import current_owner_var
from miniagents.promising.promising import Promise, PromisingContext

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "MessageStoreError",
    "RunGraph",
    "SQLiteMessageStore",
    "StoredCall",
    "StoredRun",
]

logger = logging.getLogger("miniagents.sqlite_store")

SCHEMA_VERSION = 1
"""The schema this code writes (`PRAGMA user_version`). 0: the unversioned schema of earlier releases."""

_TABLES = ("messages", "runs", "run_messages")
SCHEMA = """
CREATE TABLE messages (
    hash_key TEXT PRIMARY KEY,
    class_ TEXT NOT NULL,
    serialized TEXT NOT NULL
);
CREATE INDEX messages_by_class ON messages (class_);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL
);
CREATE TABLE run_messages (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    hash_key TEXT NOT NULL REFERENCES messages (hash_key),
    PRIMARY KEY (run_id, hash_key)
) WITHOUT ROWID;
"""
"""The DDL of schema version `SCHEMA_VERSION` (statements separated by `;`), as a new store creates it."""

CommitCallback = Callable[[tuple[str, ...]], None]


class MessageStoreError(Exception):
    """The store cannot open its file, could not store messages (see the message), or is closed."""


@dataclass(eq=False)
class _Run:
    started_at: float
    id: int | None = None  # assigned by the writer thread when it records the run


_Row = tuple[str, str, str]  # (hash_key, class_, serialized): one row of the messages table
_Group = tuple[_Run, list[_Row]]  # rows the writer stores for one run (the run is recorded even with none)
# The queue carries, in order: a _Run (the payloads after it belong to that run), a Message (the writer reads
# its row: short keys), a _Row (read in the persisting context: long keys), _RECORD_RUN (record the run even
# without messages), a flush's Future, or _STOP. A run is queued only when it changes, so most hook calls queue
# the message itself and allocate nothing: the objects a batch keeps alive are few (the garbage collector's full
# collection, which walks every live object of the process, is not set off by a burst of messages).

_STOP = object()
_RECORD_RUN = object()
_WRITTEN_CACHE_LIMIT = 200_000  # hash keys the writer remembers as stored; past it, it forgets (and re-checks)


class SQLiteMessageStore:
    """
    A content-addressed message store in one SQLite file (WAL mode), fed by `on_persist_message`.

    `batch_size` (a positive int) caps the messages per transaction (a burst is written in few transactions:
    each commit rewrites the index pages it touched; a slow stream is committed as it comes anyway).
    `on_commit(hash_keys)` is called from the writer thread after each commit with the hash keys it newly
    stored. `busy_timeout` is how many seconds to
    wait for another connection's lock before giving up (the messages of a batch that could not be
    committed are kept and retried with the next one). Query methods read what is committed (call
    `aflush()` first) and block while they read.

    Raises MessageStoreError naming the file when it cannot be opened as a message store (a missing
    folder, a file that is not an SQLite database or holds another application's tables, a lock held
    past `busy_timeout`, a schema version newer than `SCHEMA_VERSION`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        batch_size: int = 10_000,
        on_commit: CommitCallback | None = None,
        synchronous: str = "NORMAL",
        busy_timeout: float = 60.0,
    ) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise ValueError("SQLiteMessageStore needs a file path (the writer and readers use separate connections)")
        if type(batch_size) is not int or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int (messages per transaction), got {batch_size!r:.80}")
        self.path = Path(path)
        self.batch_size = batch_size
        self.busy_timeout = busy_timeout
        self._on_commit = on_commit
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._queued_run: _Run | None = None  # the run the payloads queued next belong to (guarded by _lock)
        self._runs: weakref.WeakKeyDictionary[PromisingContext, _Run] = weakref.WeakKeyDictionary()
        # the run looked up last and the context it was looked up for (a weak reference): most hook calls need no lock
        self._last_run: tuple[Callable[[], PromisingContext | None], _Run] = (_nothing, _Run(started_at=0.0))
        self._lock = threading.Lock()  # guards _closed, _writer_failure, _runs and the error lists (held briefly)
        self._reader_lock = threading.Lock()  # guards the reader connection (held while a query reads)
        self._errors: list[str] = []
        self._unreported_errors: list[str] = []  # since the last flush
        self._reader: sqlite3.Connection | None = None
        self._closed = False
        self._writer_failure: str | None = None  # why the writer thread stopped, if it did so unexpectedly
        writer = self._open_writer_connection()  # here, so a bad path or a broken file fails in the constructor
        # an empty contextvars context, whatever the Python's threads inherit: no MiniAgents context is active
        # in the writer, so the keys and JSON it reads are the short-key ones
        self._writer = threading.Thread(
            target=contextvars.Context().run, args=(self._write_loop, writer), name="sqlite-store", daemon=True
        )
        self._writer.start()
        atexit.register(_close_if_alive, weakref.ref(self))

    # ------------------------------------------------------------------ input

    async def on_persist_message(self, promise: Promise[Any], message: Message) -> None:
        """
        The persistence hook: `MiniAgents(on_persist_message=store.on_persist_message)`. It queues the
        message (its hash key and JSON are read by the writer thread); each outermost MiniAgents context
        it is called in becomes one run. Raises MessageStoreError if the store is closed.
        """
        owner = current_owner_var.get()  # (`PromisingContext.get_current_or_none()`, without the call)
        if owner is None:
            self._put_for(_Run(started_at=time.time()), message)
            return
        context = owner.context
        last_context, run = self._last_run  # (`_run_of(context)`, without the call when it is the context of last time)
        if last_context() is not context:
            run = self._run_of(context)
        if context.longer_hash_keys:
            self._queue_with_long_keys(run, message)
            return
        self._put_for(run, message)  # the writer thread reads key and JSON (short keys there)

    def attach(self, context: MiniAgents) -> None:
        """Persist every message of `context` (and of contexts nested in it) as one new run."""
        run = _Run(started_at=time.time())
        self._put_for(run, None)

        async def persist(promise: Promise[Any], message: Message) -> None:
            context = PromisingContext.get_current_or_none()
            if context is not None and context.longer_hash_keys:
                self._queue_with_long_keys(run, message)
            else:
                self._put_for(run, message)

        context.on_persist_message(persist)

    def _run_of(self, context: PromisingContext) -> _Run:
        """The run of the outermost context around `context` (recorded the first time it persists)."""
        last_context, last_run = self._last_run  # one tuple, read at once: safe from any thread
        if last_context() is context:
            return last_run
        outermost = context
        while outermost.parent is not None:
            outermost = outermost.parent
        with self._lock:
            run = self._runs.get(outermost)
            if run is None:
                run = self._runs[outermost] = _Run(started_at=time.time())
            self._last_run = (weakref.ref(context), run)
        return run

    def _queue_with_long_keys(self, run: _Run, message: Message) -> None:
        # read here, in the persisting context: long keys, nested ones too
        row = self._row_of(message, longer_hash_keys=True)
        if row is not None:
            self._put_for(run, row)

    def _row_of(self, message: Message, longer_hash_keys: bool) -> _Row | None:
        """
        The stored form of `message`, its JSON made once and its key the digest of that very text (kept on
        the message, so a message referencing it later does not serialize it again); None if it has none
        (the error is recorded).
        """
        try:
            serialized, hash_key = message.serialized_and_hash_key_for(longer_hash_keys)
            return hash_key, message.class_, serialized
        except Exception as exc:  # e.g. text with lone surrogates (set behind pydantic's back): this message only
            self._record_unstorable(message, exc)
            return None

    def _record_unstorable(self, message: Message, exc: Exception) -> None:
        self._record_error(f"could not store {message!r:.120}: {type(exc).__name__}: {exc}")

    def _put_for(self, run: _Run, payload: Message | _Row | None) -> None:
        """Queue `payload` for `run` (None: only record the run), the run first if it is not the one queued last."""
        with self._lock:  # nothing may be queued behind _STOP: it would never be written (or released)
            if self._closed or self._writer_failure is not None:
                self._refuse_if_stopped()
            if run is not self._queued_run:
                self._queued_run = run
                self._queue.put(run)
            self._queue.put(_RECORD_RUN if payload is None else payload)

    def _put(self, item: Any) -> None:
        with self._lock:
            self._refuse_if_stopped()
            self._queue.put(item)

    def _refuse_if_stopped(self) -> None:
        if self._closed:
            raise MessageStoreError(f"the message store {self.path} is closed")
        if self._writer_failure is not None:
            raise MessageStoreError(f"the message store {self.path} stopped writing: {self._writer_failure}")

    # ------------------------------------------------------- flushing, closing

    async def aflush(self) -> None:
        """
        Wait until everything queued so far is committed (without blocking the event loop).

        Cancelling the wait (a timeout, say) changes nothing for the store: what was queued is still
        written. Raises MessageStoreError if messages failed to be stored since the last flush.
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
            if self._writer_failure is None:
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

    # ------------------------------------------------------------ opening the file

    def _open_writer_connection(self) -> sqlite3.Connection:
        """A connection to a database in the current schema: created, or upgraded in place."""
        if not self.path.parent.is_dir():
            raise MessageStoreError(
                f"cannot open the message store {self.path}: its folder {self.path.parent} does not exist"
            )
        try:
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise MessageStoreError(f"cannot open the message store {self.path}: {exc}") from exc
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            _migrate(connection, self.path)
        except BaseException as exc:
            connection.close()
            if isinstance(exc, sqlite3.Error):
                raise MessageStoreError(_describe_sqlite_error(self.path, exc, self.busy_timeout)) from exc
            raise
        return connection

    # ----------------------------------------------------------- writer thread

    def _write_loop(self, connection: sqlite3.Connection) -> None:
        try:
            self._write_until_stopped(connection)
        except BaseException as exc:  # a bug: say so, and never leave a flush waiting for a thread that is gone
            self._stop_after_failure(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            connection.close()

    def _write_until_stopped(self, connection: sqlite3.Connection) -> None:
        written: set[str] = set()  # hash keys known to be stored
        kept: list[_Group] = []  # a batch that could not be committed: retried with the next one
        get, get_nowait = self._queue.get, self._queue.get_nowait
        run: _Run | None = None  # the run of the payloads read next
        running = True
        while running:
            groups = kept
            rows: list[_Row] | None = None  # the rows of `run` in this batch
            flushes: list[concurrent.futures.Future[None]] = []
            item = get()
            count = 0
            while True:
                if isinstance(item, Message):
                    try:  # (`_row_of`, inline: once per message)
                        serialized, hash_key = item.serialized_and_hash_key_for(False)
                    except Exception as exc:  # unstorable: left out, the error is recorded
                        self._record_unstorable(item, exc)
                    else:
                        if rows is None:
                            rows = _new_group(groups, run)
                        rows.append((hash_key, item.class_, serialized))
                elif type(item) is tuple:
                    if rows is None:
                        rows = _new_group(groups, run)
                    rows.append(item)
                elif isinstance(item, _Run):
                    run = item
                    rows = None  # a group for it once it has a row
                elif item is _RECORD_RUN:
                    if rows is None:
                        rows = _new_group(groups, run)
                elif item is _STOP:
                    running = False
                else:
                    flushes.append(item)
                count += 1
                if count >= self.batch_size:
                    break
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
            if len(written) > _WRITTEN_CACHE_LIMIT:
                written.clear()
            try:
                kept = self._write_batch(connection, groups, written, last_attempt=not running)
            except Exception as exc:  # a bug here must not strand the flushes waiting below
                kept = []
                count = sum(len(rows) for _, rows in groups)
                self._record_error(f"the writer failed on a batch of {count} message(s): {exc!r}")
            for flush in flushes:
                _release(flush)

    def _write_batch(
        self,
        connection: sqlite3.Connection,
        groups: list[_Group],
        written: set[str],
        last_attempt: bool,
    ) -> list[_Group]:
        """Write one batch in one transaction, then tell `on_commit`; all or nothing. Returns the groups to retry."""
        if not groups:
            return []
        new_rows: list[_Row] = []  # rows not known to be stored (INSERT OR IGNORE: stored ones stay as they are)
        new_runs: list[_Run] = []
        new_keys: list[str] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for run, rows in groups:
                if run.id is None:
                    run.id = connection.execute("INSERT INTO runs (started_at) VALUES (?)", (run.started_at,)).lastrowid
                    new_runs.append(run)
                new_rows += _unwritten(rows, written)
            if new_rows:
                if self._on_commit is not None:
                    stored = _stored_keys(connection, [row[0] for row in new_rows])
                    new_keys = [row[0] for row in new_rows if row[0] not in stored]
                _INSERT_MESSAGES.write(connection, list(chain.from_iterable(new_rows)))
            for run, rows in groups:
                links = [run.id, ""] * len(rows)  # (run id, hash key) of every row, one after the other
                links[1::2] = map(_hash_key_of, rows)
                _INSERT_RUN_MESSAGES.write(connection, links)
            connection.execute("COMMIT")
        except BaseException as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            written.difference_update(row[0] for row in new_rows)
            for run in new_runs:
                run.id = None
            if not isinstance(exc, sqlite3.Error):  # a bug, not the disk, the file or a lock
                raise
            # the disk, the file or a lock, not a message: keep the batch for a retry
            count = sum(len(rows) for _, rows in groups)
            if last_attempt:
                self._record_error(f"{count} message(s) were not committed when the store closed: {exc!r}")
                return []
            reason = _describe_sqlite_error(self.path, exc, self.busy_timeout)
            self._record_error(f"{reason}; {count} message(s) are kept and retried with the next batch")
            return groups
        if new_keys and self._on_commit is not None:
            try:
                self._on_commit(tuple(new_keys))
            except Exception as exc:
                logger.error("on_commit callback %r failed: %r", self._on_commit, exc, exc_info=exc)
        return []

    def _stop_after_failure(self, description: str) -> None:
        """The writer thread is ending unexpectedly: refuse new input and release every waiting flush."""
        error = f"the writer thread of the message store {self.path} failed: {description}"
        logger.error("%s", error)
        with self._lock:
            self._writer_failure = description
            self._errors.append(error)
            pending = []
            while True:
                try:
                    pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
        for item in pending:
            if isinstance(item, concurrent.futures.Future) and item.set_running_or_notify_cancel():
                item.set_exception(MessageStoreError(error))

    def _record_error(self, description: str) -> None:
        logger.error("message store %s: %s", self.path, description)
        with self._lock:
            self._errors.append(description)
            self._unreported_errors.append(description)

    # ----------------------------------------------------------------- queries

    def _read(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._reader_lock:
            if self._reader is None and self._closed:
                raise MessageStoreError(f"the message store {self.path} is closed")
            try:
                if self._reader is None:
                    self._reader = sqlite3.connect(self.path, timeout=self.busy_timeout, check_same_thread=False)
                    self._reader.execute("PRAGMA query_only=1")
                return self._reader.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise MessageStoreError(f"cannot read the message store {self.path}: {exc}") from exc

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


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Bring the database to SCHEMA_VERSION: create the tables in a new one, upgrade an older one in place."""
    version = _user_version(connection)
    if version == SCHEMA_VERSION:
        return
    _refuse_newer(version, path)
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _user_version(connection)  # another process may have upgraded it meanwhile
        _refuse_newer(version, path)
        while version < SCHEMA_VERSION:
            _UPGRADES[version](connection, path)
            version += 1
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _user_version(connection: sqlite3.Connection) -> int:
    return connection.execute("PRAGMA user_version").fetchone()[0]


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise MessageStoreError(
            f"the message store {path} has schema version {version}, written by a newer MiniAgents; this one "
            f"knows versions up to {SCHEMA_VERSION}: upgrade MiniAgents, or use another file"
        )


def _upgrade_from_0(connection: sqlite3.Connection, path: Path) -> None:
    """Version 0: an empty database, or the unversioned tables of earlier releases (kept as they are)."""
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables.discard("sqlite_sequence")
    if not tables:
        for statement in SCHEMA.split(";"):  # not executescript(): it would commit the open transaction
            if statement.strip():
                connection.execute(statement)
        return
    columns = [row[1] for row in connection.execute("PRAGMA table_info(messages)")]
    if not set(_TABLES) <= tables or columns != ["hash_key", "class_", "serialized"]:
        raise MessageStoreError(
            f"{path} is an SQLite database but not a MiniAgents message store (its tables: "
            f"{', '.join(sorted(tables))}); it was left untouched: use another file"
        )
    connection.execute("CREATE INDEX IF NOT EXISTS messages_by_class ON messages (class_)")


_UPGRADES: dict[int, Callable[[sqlite3.Connection, Path], None]] = {0: _upgrade_from_0}


def _describe_sqlite_error(path: Path, error: sqlite3.Error, busy_timeout: float) -> str:
    text = str(error)
    if "not a database" in text:
        return f"{path} is not an SQLite database ({text}): use another file"
    if "locked" in text or "busy" in text:
        return f"the message store {path} is locked by another connection (waited {busy_timeout:g} s): {text}"
    return f"the message store {path} failed: {type(error).__name__}: {text}"


def _stored_keys(connection: sqlite3.Connection, hash_keys: list[str]) -> set[str]:
    """Which of `hash_keys` the messages table holds already (asked in chunks of bound parameters)."""
    stored: set[str] = set()
    for start in range(0, len(hash_keys), _KEYS_PER_QUERY):
        chunk = hash_keys[start : start + _KEYS_PER_QUERY]
        sql = f"SELECT hash_key FROM messages WHERE hash_key IN ({', '.join('?' * len(chunk))})"
        stored.update(key for (key,) in connection.execute(sql, chunk))
    return stored


_KEYS_PER_QUERY = 500  # below SQLite's smallest limit on bound parameters (999 before 3.32)
_MAX_BOUND_PARAMETERS = 999  # (that limit)
_hash_key_of = itemgetter(0)  # (of a row)


def _unwritten(rows: list[_Row], written: set[str]) -> list[_Row]:
    """The rows whose key is not in `written` (the first of each key), their keys added to `written`."""
    keys = list(map(_hash_key_of, rows))
    if written.isdisjoint(keys):
        new_keys = set(keys)
        if len(new_keys) == len(keys):  # (the common case, checked in C: every row new, each key once)
            written |= new_keys
            return rows
    unwritten = []
    for row in rows:
        if row[0] not in written:
            written.add(row[0])
            unwritten.append(row)
    return unwritten


class _MultiRowInsert:
    """
    `INSERT OR IGNORE` of rows into one table, as many rows per statement as SQLite takes bound parameters: far
    fewer statements than `executemany` runs (one per row, each a step, a reset and a round through the GIL).
    """

    def __init__(self, table: str, columns: tuple[str, ...]) -> None:
        self.width = len(columns)
        rows_per_statement = _MAX_BOUND_PARAMETERS // self.width
        row = f"({', '.join('?' * self.width)})"
        head = f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES "
        self.values_per_statement = rows_per_statement * self.width
        self.full_statement = head + ", ".join([row] * rows_per_statement)
        self.row_statement = head + row

    def write(self, connection: sqlite3.Connection, values: list[Any]) -> None:
        """Insert the rows whose values, row after row, are `values`."""
        size = self.values_per_statement
        full = len(values) - len(values) % size
        for start in range(0, full, size):
            connection.execute(self.full_statement, values[start : start + size])
        if full < len(values):  # the rest: row by row (the one iterator zipped with itself: each row's values)
            rest = iter(values[full:])
            connection.executemany(self.row_statement, zip(*[rest] * self.width, strict=True))


_INSERT_MESSAGES = _MultiRowInsert("messages", ("hash_key", "class_", "serialized"))
_INSERT_RUN_MESSAGES = _MultiRowInsert("run_messages", ("run_id", "hash_key"))


def _new_group(groups: list[_Group], run: _Run | None) -> list[_Row]:
    """The rows of a new group of `run` at the end of `groups` (a batch that began with its payloads)."""
    if run is None:
        raise AssertionError("a payload was queued before its run")
    rows: list[_Row] = []
    groups.append((run, rows))
    return rows


def _nothing() -> None:
    return None


def _release(flush: concurrent.futures.Future[None]) -> None:
    """Tell a waiting flush that its turn came; a flush that stopped waiting (cancelled) is skipped."""
    if flush.set_running_or_notify_cancel():
        flush.set_result(None)


def _close_if_alive(store_ref: weakref.ref[SQLiteMessageStore]) -> None:
    store = store_ref()
    if store is not None:
        store.close()
