"""
The one rule for Frozen data (SPEC 3.7) as data and as an oracle: hypothesis strategies of arbitrary nested
JSON-like and leaf values (any keys, including "", "_x" and "x__hash_key"; any strings, lone surrogates included;
any numbers, nan, infinity and ints past the JSON limit included), and an independent oracle, written from the
documented rules, that says whether a value must be accepted (and round-trip exactly) or refused at construction.
Used by tests/test_frozen_properties.py (serialize / JSON text) and tests/test_sqlite_store_faults.py (the store).
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st


class Shade(enum.Enum):
    LIGHT = 1
    DARK = "dark"


class Access(enum.Flag):
    READ = 1
    WRITE = 2


RESERVED_SUFFIXES = ("__hash_key", "__hash_keys")
MAX_INT_BITS = 14_000  # documented: ints up to ~4,200 digits


# ------------------------------------------------------------------ strategies

any_character = st.one_of(st.characters(exclude_categories=()), st.characters(categories=["Cs"]))
any_text = st.text(any_character, max_size=8)
special_keys = st.sampled_from(
    ["", "_x", "_id", "x__hash_key", "x__hash_keys", "__hash_key", "a__hash_key_b", "class_", "text", "keys"]
)
keys = st.one_of(special_keys, any_text)
offsets = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))
leaves = st.one_of(
    st.datetimes(timezones=st.none() | offsets),
    st.dates(),
    st.times(timezones=st.none() | offsets),
    st.uuids(),
    st.decimals(),  # nan and infinity included
    st.sampled_from([Shade.LIGHT, Shade.DARK, Access.READ, Access.READ | Access.WRITE]),
    st.builds(Path, st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)),
    st.binary(max_size=8),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    # around the size limit (built by map: hypothesis cannot repr ints over 4,300 digits)
    st.sampled_from([MAX_INT_BITS, MAX_INT_BITS + 1, 16_610]).map(lambda bits: 2**bits - 1),
    st.sampled_from([MAX_INT_BITS, MAX_INT_BITS + 1]).map(lambda bits: -(2**bits)),
    st.floats(),  # nan, inf and -0.0 included
    any_text,
)
unsupported = st.one_of(
    st.sets(st.integers(), max_size=2), st.builds(bytearray, st.binary(max_size=2)), st.complex_numbers()
)
values = st.recursive(
    st.one_of(scalars, leaves, unsupported),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=12,
)
message_fields = st.dictionaries(keys, values, max_size=5)


# ------------------------------------------------------------------ the oracle


def valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def acceptable_key(key: Any) -> bool:
    return isinstance(key, str) and valid_text(key) and not key.endswith(RESERVED_SUFFIXES)


def acceptable_value(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, enum.Enum):
        return type(value).__members__.get(value.name) is value
    if isinstance(value, int):
        return value.bit_length() <= MAX_INT_BITS
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, Decimal):
        return value.is_finite()
    if isinstance(value, (datetime, date, time, uuid.UUID, Path, bytes)):
        return True
    if isinstance(value, (list, tuple)):
        return all(acceptable_value(item) for item in value)
    if isinstance(value, dict):
        return (
            all(acceptable_key(key) and acceptable_value(item) for key, item in value.items())
            and value.get("class_", "Frozen") == "Frozen"
        )
    return False


def acceptable_message(fields: dict[str, Any]) -> bool:
    for name, value in fields.items():
        if name == "class_":
            if value != "Message":
                return False
        elif not acceptable_key(name) or not acceptable_value(value):
            return False
        elif name in ("text", "text_template") and value is not None and not isinstance(value, str):
            return False
    return True


def names_a_field(error: Exception, fields: dict[str, Any]) -> bool:
    text = str(error)
    return any((name.isidentifier() and name in text) or repr(name) in text for name in fields)
