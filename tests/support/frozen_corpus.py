"""
A fixed corpus of nested values for hash-key stability tests: built from a seeded `random.Random`, so the
same values come out in every process and with every library version (hypothesis' generation may change).
`corpus_keys()` gives, for each value, its short and long hash keys and a digest of its `serialized` text;
tests/data/frozen_golden_keys.json holds what this gave before the serialization was optimised, and
tests/test_frozen_hash_stability.py asserts that it still gives exactly that.

    python -m tests.support.frozen_corpus > tests/data/frozen_golden_keys.json   # only to (re)create it
"""

from __future__ import annotations

import enum
import hashlib
import json
import random
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

from miniagents import Message
from miniagents.promising.ext.frozen import Frozen

CORPUS_SIZE = 400


class CorpusTint(enum.Enum):
    RED = 1
    BLUE = "blue"


class CorpusLevel(enum.IntEnum):  # an Enum that is also an int: written as its enum form, not as the int
    LOW = 1
    HIGH = 2


class CorpusMode(str, enum.Enum):  # an Enum that is also a str
    FAST = "fast"
    SLOW = "slow"


class Score(float):  # a float subclass: written as the float
    pass


class Label(str):  # a str subclass (not an Enum): written as the str
    pass


class CorpusDocument(Frozen):
    title: str = ""
    pages: int = 0


class CorpusNote(Message):
    author: str = ""


TEXTS = [
    "",
    "a",
    "hello world",
    "héllo 世界",
    "tab\there",
    'quote " and \\ backslash',
    "\u2028line",
    "emoji 🎉",
    "\x00",
]
KEYS = ["", "a", "b", "text", "meta", "_id", "key with space", "ключ", "x1", "items", "class"]


def _leaf(rng: random.Random) -> Any:
    kind = rng.randrange(24)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randint(-(2**70), 2**70)
    if kind == 3:
        return rng.randint(-1000, 1000)
    if kind == 4:
        return rng.choice([0.0, -0.0, 1.5, 1e300, -2.5e-300, 0.1, 123456789.123])
    if kind in (5, 6):
        return rng.choice(TEXTS)
    if kind == 7:
        offset = timezone(timedelta(minutes=rng.randint(-600, 600)))
        return datetime(
            2024, 5, 1, 12, 30, rng.randint(0, 59), rng.randint(0, 999999), tzinfo=rng.choice([None, offset])
        )
    if kind == 8:
        return date(2000 + rng.randint(0, 50), rng.randint(1, 12), rng.randint(1, 28))
    if kind == 9:
        return time(rng.randint(0, 23), rng.randint(0, 59), tzinfo=rng.choice([None, timezone.utc]))
    if kind == 10:
        return uuid.UUID(int=rng.getrandbits(128))
    if kind == 11:
        return Decimal(rng.choice(["1.10", "-0", "1E+5", "3.14159", "0.000"]))
    if kind == 12:
        return rng.choice([CorpusTint.RED, CorpusTint.BLUE])
    if kind == 13:
        return rng.choice([CorpusLevel.LOW, CorpusLevel.HIGH])
    if kind == 14:
        return rng.choice([CorpusMode.FAST, CorpusMode.SLOW])
    if kind == 15:
        return PurePosixPath(rng.choice(["docs/a.md", "/abs/path", "x"]))
    if kind == 16:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 6)))
    if kind == 17:
        return Score(rng.choice([0.5, 2.0]))
    if kind == 18:
        return Label(rng.choice(TEXTS))
    return rng.choice([*TEXTS, 0, 1, None, True])


def _value(rng: random.Random, depth: int) -> Any:
    if depth <= 0:
        return _leaf(rng)
    kind = rng.randrange(10)
    if kind < 4:
        return _leaf(rng)
    if kind == 4:
        return [_value(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    if kind == 5:
        return tuple(_value(rng, depth - 1) for _ in range(rng.randint(0, 3)))
    if kind in (6, 7):
        return {rng.choice(KEYS): _value(rng, depth - 1) for _ in range(rng.randint(0, 4))}
    if kind == 8:
        return _message(rng, depth - 1)
    return [_message(rng, depth - 2) for _ in range(rng.randint(1, 3))]  # a tuple of messages


def _fields(rng: random.Random, depth: int) -> dict[str, Any]:
    return {rng.choice(KEYS[1:]) + str(i): _value(rng, depth) for i in range(rng.randint(0, 5))}


def _message(rng: random.Random, depth: int) -> Message:
    kind = rng.randrange(3)
    fields = _fields(rng, max(depth, 0))
    if kind == 0:
        return Message(rng.choice(TEXTS), **fields)
    if kind == 1:
        return CorpusNote(rng.choice(TEXTS), author=rng.choice(TEXTS), **fields)
    return Message(**fields)


def corpus() -> list[Frozen]:
    """The models of the corpus (plain Frozen, a Frozen subclass, messages nesting messages), fresh each call."""
    rng = random.Random(20261128)
    models: list[Frozen] = []
    for index in range(CORPUS_SIZE):
        kind = index % 4
        if kind == 0:
            models.append(Frozen(**_fields(rng, 3)))
        elif kind == 1:
            models.append(CorpusDocument(title=rng.choice(TEXTS), pages=rng.randint(0, 9), **_fields(rng, 2)))
        else:
            models.append(_message(rng, 3))
    return models


def corpus_keys() -> list[list[str]]:
    """[short hash key, long hash key, sha256 of the short-key serialized text] of every corpus model."""
    rows = []
    for model in corpus():
        short_text = model.serialized
        short_key = model.hash_key
        long_key = model.hash_key_for(True)  # as read in a context with longer_hash_keys
        rows.append([short_key, long_key, hashlib.sha256(short_text.encode("utf-8")).hexdigest()])
    return rows


if __name__ == "__main__":
    print(json.dumps(corpus_keys(), indent=0))
