"""
Hash keys never change for the same content: the canonical JSON text of a Frozen and its hash keys are
those of the documented form (SPEC 3.7), whatever the implementation does to compute them faster.
Stored messages and the LLM recordings are keyed by these hash keys.

* a fixed corpus (tests/support/frozen_corpus.py) gives exactly the keys recorded before the serialization
  was optimised (tests/data/frozen_golden_keys.json);
* over hypothesis-generated nested values, `serialized` is the text an independent oracle writes from the
  documented rules, and `serialized_and_hash_key_for` agrees with `serialized` and `hash_key`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniagents import Message
from miniagents.promising.ext.frozen import Frozen
from tests.support.frozen_corpus import corpus, corpus_keys

GOLDEN = Path(__file__).parent / "data" / "frozen_golden_keys.json"


def test_corpus_hash_keys_are_the_recorded_ones() -> None:
    recorded = json.loads(GOLDEN.read_text(encoding="utf-8"))

    keys = corpus_keys()

    assert len(keys) == len(recorded)
    mismatches = [index for index, (now, before) in enumerate(zip(keys, recorded, strict=True)) if now != before]
    assert not mismatches, f"{len(mismatches)} corpus models hash differently now, first at index {mismatches[0]}"


def test_serialized_and_hash_key_for_agrees_with_serialized_and_hash_key_on_the_corpus() -> None:
    for model in corpus():
        text, key = model.serialized_and_hash_key_for(False)
        assert text == model.serialized
        assert key == model.hash_key
    for model in corpus():  # fresh instances: the long form computed first
        text, key = model.serialized_and_hash_key_for(True)
        assert key == model.hash_key_for(True)
        assert len(key) == 64
        assert hashlib.sha256(text.encode("utf-8")).hexdigest() == key


def test_serialized_and_hash_key_for_caches_the_key() -> None:
    model = Message("hello", n=1)
    assert not model.hash_key_cached(False)

    text, key = model.serialized_and_hash_key_for(False)

    assert model.hash_key_cached(False)
    assert key == hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]
    assert model.serialized_and_hash_key_for(False) == (text, key)


def test_serialized_and_hash_key_for_names_a_reference_cycle() -> None:
    model = Frozen(a=1)
    object.__setattr__(model, "__pydantic_extra__", {"a": model})  # set behind pydantic's back

    with pytest.raises(ValueError, match="reference cycle"):
        model.serialized_and_hash_key_for(False)


# ------------------------------------------------------------------ the oracle: the documented JSON form


class StabilityHue(enum.Enum):
    RED = 1


class StabilityRank(enum.IntEnum):
    FIRST = 1


class StabilitySpeed(str, enum.Enum):
    FAST = "fast"


def documented_form(value: Any, in_message: bool) -> Any:
    """What SPEC 3.7 says a frozen value is written as (in a message's text, nested messages: by hash key)."""
    if isinstance(value, Message) and in_message:
        return {"__hash_key": value.hash_key}
    if isinstance(value, Frozen):
        return documented_object(value, in_message)  # inside a plain Frozen, messages are written in full
    if isinstance(value, tuple):
        return [documented_form(item, in_message) for item in value]
    if isinstance(value, enum.Enum):
        return {"__enum": [type(value).__name__, value.name]}
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, datetime):
        return {"__datetime": value.isoformat()}
    if isinstance(value, date):
        return {"__date": value.isoformat()}
    if isinstance(value, time):
        return {"__time": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"__uuid": str(value)}
    if isinstance(value, Decimal):
        return {"__decimal": str(value)}
    if isinstance(value, PurePath):
        return {"__path": value.as_posix()}
    if isinstance(value, bytes):
        return {"__bytes": base64.b64encode(value).decode("ascii")}
    raise AssertionError(f"no documented form for {value!r}")


def documented_object(model: Frozen, in_message: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"class_": model.class_}
    for name, value in model.frozen_fields_and_values():
        if in_message and isinstance(value, Message):
            data[f"{name}__hash_key"] = value.hash_key
        elif in_message and type(value) is tuple and value and all(isinstance(item, Message) for item in value):
            data[f"{name}__hash_keys"] = [item.hash_key for item in value]
        else:
            data[name] = documented_form(value, in_message)
    return data


def documented_text(model: Frozen) -> str:
    return json.dumps(
        documented_object(model, in_message=isinstance(model, Message)), ensure_ascii=False, sort_keys=True
    )


texts = st.text(st.characters(codec="utf-8"), max_size=6)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    st.datetimes(timezones=st.none() | st.just(timezone(timedelta(hours=2)))),
    st.dates(),
    st.times(),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from([StabilityHue.RED, StabilityRank.FIRST, StabilitySpeed.FAST]),
    st.builds(Path, st.text(st.characters(codec="utf-8", exclude_characters="\x00/"), max_size=4)),
    st.binary(max_size=6),
)
field_names = st.one_of(st.sampled_from(["a", "b", "meta", "_id", ""]), texts).filter(
    lambda name: not name.endswith(("__hash_key", "__hash_keys")) and name not in ("class_", "text", "text_template")
)


def nested(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(field_names, children, max_size=4),
        st.builds(
            lambda text, fields: Message(text, **fields), texts, st.dictionaries(field_names, children, max_size=3)
        ),
        st.lists(st.builds(Message, texts), min_size=1, max_size=3).map(tuple),
    )


values = st.recursive(leaves, nested, max_leaves=16)
STABILITY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@STABILITY_SETTINGS
@given(fields=st.dictionaries(field_names, values, max_size=5), as_message=st.booleans())
def test_serialized_is_the_documented_form(fields: dict[str, Any], as_message: bool) -> None:
    model: Frozen = Message(**fields) if as_message else Frozen(**fields)

    text = model.serialized

    assert text == documented_text(model)
    assert model.hash_key == hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


@STABILITY_SETTINGS
@given(fields=st.dictionaries(field_names, values, max_size=5), as_message=st.booleans())
def test_serialized_and_hash_key_for_is_serialized_and_hash_key(fields: dict[str, Any], as_message: bool) -> None:
    model: Frozen = Message(**fields) if as_message else Frozen(**fields)
    twin: Frozen = Message(**fields) if as_message else Frozen(**fields)  # nothing cached on it yet

    assert twin.serialized_and_hash_key_for(False) == (model.serialized, model.hash_key)
