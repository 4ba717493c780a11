"""`SCHEMA` is the DDL a new message store creates (the benchmarks' floor writes into the same tables with it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from miniagents.ext.sqlite_store import SCHEMA, SCHEMA_VERSION, SQLiteMessageStore


def normalized(sql: str) -> str:
    return " ".join(sql.split())


def test_a_new_store_has_exactly_the_tables_and_index_of_schema(tmp_path: Path) -> None:
    SQLiteMessageStore(tmp_path / "store.db").close()
    by_hand = sqlite3.connect(tmp_path / "by_hand.db")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            by_hand.execute(statement)

    def objects(connection: sqlite3.Connection) -> list[tuple[str, str]]:
        rows = connection.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
        return [(name, normalized(sql or "")) for name, sql in rows]

    store = sqlite3.connect(tmp_path / "store.db")
    assert objects(store) == objects(by_hand)
    assert {name for name, _ in objects(store)} == {"messages", "messages_by_class", "runs", "run_messages"}
    assert store.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()
    by_hand.close()
