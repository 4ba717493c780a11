"""
Data shared by every implementation's workloads, so that all of them process exactly the same input.

Stdlib only: this module is imported inside the peer venvs as well.
"""

from collections.abc import Callable
from typing import Any


def make_tokens(n: int) -> list[str]:
    """`n` short, distinct-ish string tokens (built before the timed region)."""
    return [f"w{i % 997} " for i in range(n)]


def parse_size(size: str) -> list[int]:
    """`"200x500"` -> `[200, 500]`, `"5000"` -> `[5000]`."""
    return [int(part) for part in size.lower().split("x")]


def tokens_check(tokens: int, chars: int) -> dict[str, int]:
    return {"tokens": tokens, "chars": chars}


def parse_count_reply(text: str) -> tuple[int, int]:
    """The consumer agents reply `"<tokens> <chars>"`."""
    tokens, chars = text.split()
    return int(tokens), int(chars)


# --------------------------------------------------------------------------------------------------------------------
# freeze + hash payload
# --------------------------------------------------------------------------------------------------------------------

N_SECTIONS = 4
N_ITEMS = 5
N_TAGS = 10
N_FLAGS = 5
N_ATTACHMENTS = 2


def build_message(i: int, make_message: Callable[..., Any]) -> Any:
    """
    Build one top-level message with a nested structure of ~200 fields (counting every dict key and every list
    element, recursively, including the nested messages - see `count_fields`) and 3 nested messages.

    `make_message(text, **fields)` is the implementation-specific message factory (0.0.13-style
    `Message(text=..., **fields)`, 0.0.35-style `TextMessage(content=..., **fields)`, or a plain dict for the
    baseline). Nested messages are created through the same factory, so they are part of the timed work.
    """
    attachments = [
        make_message(
            f"attachment {i}-{k}",
            kind="note",
            n=k,
            extra={"x": i, "y": k, "labels": [f"l{j}" for j in range(3)]},
        )
        for k in range(N_ATTACHMENTS)
    ]
    quote = make_message(f"quote {i}", author=f"author {i % 7}", year=2000 + i % 25)
    return make_message(
        f"message {i}",
        meta={
            "idx": i,
            "kind": "benchmark",
            "lang": "en",
            "version": 3,
            "score": i * 0.25,
            "flags": [bool((i + j) % 2) for j in range(N_FLAGS)],
            "tags": [f"tag{(i + j) % 50}" for j in range(N_TAGS)],
        },
        sections=[
            {
                "title": f"section {s}",
                "level": s,
                "items": [{"a": s * 10 + t, "b": f"{i}:{s}:{t}", "c": [t, t + 1, t + 2]} for t in range(N_ITEMS)],
            }
            for s in range(N_SECTIONS)
        ],
        attachments=attachments,
        quote=quote,
    )


def count_fields(value: Any) -> int:
    """Count dict keys + list elements recursively (plain-dict version of a message, see `plain_message`)."""
    if isinstance(value, dict):
        return sum(1 + count_fields(v) for k, v in value.items() if k != "__message__")
    if isinstance(value, (list, tuple)):
        return sum(1 + count_fields(v) for v in value)
    return 0


def plain_message(text: str, **fields: Any) -> dict[str, Any]:
    """Plain-Python "message" factory used by the baseline (and by `count_fields`)."""
    return {"__message__": True, "text": text, **fields}


FIELDS_PER_MESSAGE = count_fields(build_message(0, plain_message))


def hash_check(hash_keys: list[str], n_messages: int) -> dict[str, Any]:
    return {
        "messages": n_messages,
        "unique_hash_keys": len(set(hash_keys)),
        "hash_key_lengths": sorted({len(k) for k in hash_keys}),
        "fields_per_message": FIELDS_PER_MESSAGE,
    }


# --------------------------------------------------------------------------------------------------------------------
# message store: the schema the store creates (the floor writes into the very same tables) and the check
# --------------------------------------------------------------------------------------------------------------------


def store_schema() -> str:
    """
    The DDL the message store creates (`miniagents.ext.sqlite_store.SCHEMA`, imported here, not repeated): the
    floor writes into the very same tables, and the check below digests the schema of the written file, so a
    floor that writes into different tables than the store shows MISMATCH. Only the store workloads call it
    (they run with this repo's `miniagents`; the peer venvs never import the store).
    """
    from miniagents.ext.sqlite_store import SCHEMA  # pylint: disable=import-outside-toplevel

    return SCHEMA


STORE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")  # what the store sets (its defaults)


def store_check(path: str) -> dict[str, Any]:
    """What a written message store holds: row counts, a digest of every (key, class, JSON) row and of the schema."""
    import hashlib  # pylint: disable=import-outside-toplevel
    import sqlite3  # pylint: disable=import-outside-toplevel

    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT hash_key, class_, serialized FROM messages ORDER BY hash_key").fetchall()
        links = connection.execute("SELECT count(*), count(DISTINCT run_id) FROM run_messages").fetchone()
        runs = connection.execute("SELECT count(*) FROM runs").fetchone()[0]
        schema = connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
    finally:
        connection.close()
    digest = hashlib.sha256()
    for row in rows:
        digest.update("\x00".join(row).encode("utf-8", "surrogatepass"))
    return {
        "messages": len(rows),
        "run_messages": links[0],
        "runs": runs,
        "runs_linked": links[1],
        "rows_sha256": digest.hexdigest()[:16],
        "schema_sha256": hashlib.sha256(
            repr([tuple(" ".join((s or "").split()) for s in r) for r in schema]).encode()
        ).hexdigest()[:16],
    }


# --------------------------------------------------------------------------------------------------------------------
# memory probes (between the timed parts of a workload)
# --------------------------------------------------------------------------------------------------------------------


def current_rss_kb() -> int:
    """The resident set size now (not the peak), in KB (Linux: /proc/self/statm)."""
    import os  # pylint: disable=import-outside-toplevel

    with open("/proc/self/statm", encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") // 1024


def count_live(cls: type) -> tuple[int, int]:
    """(live instances of `cls`, all objects the garbage collector tracks), after a full collection."""
    import gc  # pylint: disable=import-outside-toplevel

    gc.collect()
    objects = gc.get_objects()
    try:
        return sum(1 for obj in objects if isinstance(obj, cls)), len(objects)
    finally:
        del objects
