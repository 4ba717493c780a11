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
