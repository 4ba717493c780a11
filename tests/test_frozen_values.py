"""Frozen values (SPEC 3.7): the leaf types and their JSON forms, the key rules, mapping access."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pytest
from pydantic import ValidationError

from miniagents import Message, MiniAgents
from miniagents.ext.sqlite_store import SQLiteMessageStore
from miniagents.promising.ext.frozen import Frozen, from_json_form, to_json_form
from miniagents.promising.promising import PromisingContext

REPO = Path(__file__).resolve().parent.parent
PLUS_TWO = timezone(timedelta(hours=2))


class Weather(enum.Enum):
    SUNNY = "sunny"
    RAINY = 2


class Level(int, enum.Enum):
    LOW = 1


class Permission(enum.Flag):
    READ = 1
    WRITE = 2


def expected_hash(plain: dict[str, Any], length: int = 40) -> str:
    """The SPEC's hash_key recipe applied to JSON data written out by hand."""
    text = json.dumps(plain, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


# leaf value, its documented JSON form
LEAVES: dict[str, tuple[Any, Any]] = {
    "aware-datetime": (
        datetime(2024, 5, 1, 12, 30, 0, 1, tzinfo=PLUS_TWO),
        {"__datetime": "2024-05-01T12:30:00.000001+02:00"},
    ),
    "naive-datetime": (datetime(2024, 5, 1, 12, 30), {"__datetime": "2024-05-01T12:30:00"}),
    "date": (date(2024, 5, 1), {"__date": "2024-05-01"}),
    "time": (time(12, 30, tzinfo=PLUS_TWO), {"__time": "12:30:00+02:00"}),
    "uuid": (
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        {"__uuid": "12345678-1234-5678-1234-567812345678"},
    ),
    "decimal": (Decimal("1.10"), {"__decimal": "1.10"}),
    "decimal-exponent": (Decimal("-1E+3"), {"__decimal": "-1E+3"}),
    "enum": (Weather.RAINY, {"__enum": ["Weather", "RAINY"]}),
    "int-enum": (Level.LOW, {"__enum": ["Level", "LOW"]}),
    "path": (Path("docs/a.md"), {"__path": "docs/a.md"}),
    "bytes": (b"hi\x00\xff", {"__bytes": "aGkA/w=="}),
}


# ==================================================================== leaves


@pytest.mark.parametrize("kind", LEAVES)
def test_leaf_value_stays_python_value_on_model(kind: str) -> None:
    value, _ = LEAVES[kind]
    message = Message("x", value=value, inside={"list": [value]})
    assert message.value == value and type(message.value) is type(value)
    assert message.inside.list[0] is value


@pytest.mark.parametrize("kind", LEAVES)
def test_leaf_is_written_in_its_documented_json_form_when_hashed(kind: str) -> None:
    value, form = LEAVES[kind]
    message = Message("x", value=value)
    assert json.loads(message.serialized)["value"] == form
    assert message.hash_key == expected_hash({"class_": "Message", "text": "x", "text_template": None, "value": form})


@pytest.mark.parametrize("kind", LEAVES)
def test_leaf_round_trips_through_serialize_with_same_hash(kind: str) -> None:
    value, _ = LEAVES[kind]
    message = Message("x", value=value, deep={"items": [value, 1]})
    rebuilt = Message(**message.serialize())
    assert rebuilt == message
    assert rebuilt.value == value and type(rebuilt.value) is type(value)
    assert rebuilt.hash_key == message.hash_key


@pytest.mark.parametrize("kind", LEAVES)
def test_leaf_round_trips_through_json_text_with_same_hash(kind: str) -> None:
    value, _ = LEAVES[kind]
    message = Message("x", value=value, deep={"items": [value, 1]})
    rebuilt = Message(**from_json_form(json.loads(message.serialized)))
    assert rebuilt == message
    assert type(rebuilt.value) is type(value)
    assert rebuilt.hash_key == message.hash_key


def test_serialize_keeps_leaf_values_as_python_values() -> None:
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert Frozen(when=when, blob=b"x").serialize() == {"class_": "Frozen", "when": when, "blob": b"x"}


def test_full_json_writes_leaves_in_their_json_forms() -> None:
    model = Frozen(day=date(2024, 5, 1), inner={"id": uuid.UUID(int=1)})
    assert json.loads(model.full_json) == {
        "class_": "Frozen",
        "day": {"__date": "2024-05-01"},
        "inner": {"class_": "Frozen", "id": {"__uuid": "00000000-0000-0000-0000-000000000001"}},
    }


def test_to_json_form_writes_nested_values_as_json_data() -> None:
    assert to_json_form((1, date(2024, 5, 1), Frozen(a=(b"",)))) == [
        1,
        {"__date": "2024-05-01"},
        {"class_": "Frozen", "a": [{"__bytes": ""}]},
    ]


def test_path_of_any_flavour_has_posix_form() -> None:
    assert Frozen(p=PureWindowsPath("docs\\a.md")).hash_key == Frozen(p=PurePosixPath("docs/a.md")).hash_key
    assert json.loads(Frozen(p=PureWindowsPath("docs\\a.md")).serialized)["p"] == {"__path": "docs/a.md"}


def test_aware_datetime_keeps_its_offset_when_read_back() -> None:
    when = datetime(2024, 5, 1, 12, tzinfo=PLUS_TWO)
    rebuilt = Frozen(**from_json_form(json.loads(Frozen(when=when).serialized)))
    assert rebuilt.when == when and rebuilt.when.utcoffset() == timedelta(hours=2)


def test_enum_form_reads_back_to_the_same_member() -> None:
    assert from_json_form({"__enum": ["Weather", "SUNNY"]}) is Weather.SUNNY


def test_enum_form_of_unknown_class_fails_naming_it() -> None:
    with pytest.raises(ValueError, match="'NoSuchEnum'"):
        from_json_form({"__enum": ["NoSuchEnum", "X"]})


def test_from_json_form_refuses_a_message_reference_naming_it() -> None:
    with pytest.raises(ValueError, match="__hash_key"):
        from_json_form({"class_": "Message", "mixed": [{"__hash_key": "abc"}]})


def test_str_enum_member_and_its_value_hash_differently() -> None:
    class Mood(str, enum.Enum):
        CALM = "calm"

    assert Frozen(mood=Mood.CALM).hash_key != Frozen(mood="calm").hash_key
    assert Frozen(mood=Mood.CALM).mood is Mood.CALM


HASH_IN_SUBPROCESS = """
import enum, json, sys, uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from miniagents import Message
class Sky(enum.Enum):
    CLEAR = 1
plus_two = timezone(timedelta(hours=2))
message = Message(
    "x",
    when=datetime(2024, 5, 1, 12, 30, 0, 1, tzinfo=plus_two),
    naive=datetime(2024, 5, 1, 12, 30),
    day=date(2024, 5, 1),
    at=time(12, 30, tzinfo=plus_two),
    id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    amount=Decimal("1.10"),
    weather=Sky.CLEAR,
    path=Path("docs/a.md"),
    blob=b"hi\\x00\\xff",
    nested={"set_of_all": [Decimal("-1E+3"), b"", Sky.CLEAR]},
)
print(json.dumps([message.hash_key, message.serialized]))
"""


def test_hash_of_every_leaf_type_is_identical_in_another_process_and_timezone() -> None:
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TZ": "Pacific/Kiritimati", "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-c", HASH_IN_SUBPROCESS], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    their_key, their_text = json.loads(completed.stdout)
    namespace: dict[str, Any] = {}
    exec(HASH_IN_SUBPROCESS.replace("print(", "result = ("), namespace)  # the same code, here
    ours = namespace["message"]
    assert ours.serialized == their_text
    assert ours.hash_key == their_key


# ================================================================ rejected values


@pytest.mark.parametrize(
    ("value", "excerpts"),
    [
        ({1, 2}, ("set",)),
        (frozenset({1}), ("frozenset",)),
        (bytearray(b"x"), ("bytearray",)),
        (complex(1, 2), ("complex",)),
        (object(), ("object",)),
        (float("nan"), ("nan", "JSON")),
        (float("inf"), ("inf", "JSON")),
        (-float("inf"), ("-inf",)),
        (Decimal("NaN"), ("NaN", "finite")),
        (Decimal("Infinity"), ("Infinity", "finite")),
        (Permission.READ | Permission.WRITE, ("Permission", "single member")),
        ("a\ud800b", ("surrogate",)),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, tuple) else "",
)
def test_unsupported_value_rejected_at_construction_naming_field_path_and_type(value: Any, excerpts: tuple) -> None:
    with pytest.raises(ValidationError) as raised:
        Message("x", meta={"rows": [1, {"cell": value}]})
    text = str(raised.value)
    assert "meta.rows[1].cell" in text
    for excerpt in excerpts:
        assert excerpt in text


def test_non_finite_float_rejected_as_top_level_field() -> None:
    with pytest.raises(ValidationError, match=r"'score'.*nan"):
        Frozen(score=float("nan"))


def test_very_large_int_is_accepted_and_round_trips() -> None:
    big = 10**4000
    model = Frozen(n=big, inner=[-big])
    assert Frozen(**model.serialize()).hash_key == model.hash_key
    assert json.loads(model.serialized)["n"] == big


def test_int_too_large_for_json_rejected_naming_field() -> None:
    with pytest.raises(ValidationError, match=r"'n'.*digits"):
        Frozen(n=10**5000)


def test_bytes_text_of_message_rejected_naming_field() -> None:
    with pytest.raises(ValidationError, match=r"'text'.*bytes"):
        Message(b"raw")


# ====================================================================== keys


def test_empty_string_key_is_accepted_and_round_trips() -> None:
    message = Message("x", **{"": 1}, meta={"": "empty"})
    assert message[""] == 1 and message.meta[""] == "empty"
    assert json.loads(message.serialized)[""] == 1
    assert Message(**message.serialize()).hash_key == message.hash_key


def test_underscore_key_in_nested_dict_is_kept_in_hash_and_serialized_form() -> None:
    first = Message("doc", document={"_id": 1, "title": "t"})
    second = Message("doc", document={"_id": 2, "title": "t"})
    assert first.hash_key != second.hash_key
    assert json.loads(first.serialized)["document"]["_id"] == 1
    assert first.serialize()["document"]["_id"] == 1
    assert first.document["_id"] == 1
    assert Message(**first.serialize()).hash_key == first.hash_key


def test_underscore_key_at_top_level_is_a_field() -> None:
    message = Message("doc", _id="abc")
    assert message["_id"] == "abc" and "_id" in message.keys()
    assert Message("doc", _id="abc").hash_key != Message("doc", _id="xyz").hash_key


def test_private_attribute_set_by_hand_is_still_not_a_field() -> None:
    message = Message("x")
    message._scratch = 1
    assert "_scratch" not in message and "_scratch" not in message.serialize()
    assert message.hash_key == Message("x").hash_key


@pytest.mark.parametrize("name", ["reply__hash_key", "history__hash_keys", "__hash_key"])
def test_reserved_reference_name_rejected_at_top_level_naming_it(name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Message("x", **{name: "abc"})
    assert f"field {name!r}" in str(raised.value) and "reserved" in str(raised.value)


def test_reserved_reference_name_rejected_in_nested_dict_naming_path_and_key() -> None:
    with pytest.raises(ValidationError) as raised:
        Message("x", meta={"rows": [{"source__hash_key": "abc"}]})
    assert "meta.rows[0]" in str(raised.value) and "'source__hash_key'" in str(raised.value)


def test_name_merely_containing_hash_key_is_accepted() -> None:
    assert Frozen(my__hash_key_notes="ok")["my__hash_key_notes"] == "ok"


def test_key_with_lone_surrogate_rejected_at_construction() -> None:
    with pytest.raises(ValidationError) as raised:
        Message("x", meta={"a\udc80": 1})
    assert "'meta'" in str(raised.value) and "surrogate" in str(raised.value)


def test_top_level_name_with_lone_surrogate_rejected_at_construction() -> None:
    with pytest.raises(ValidationError, match="surrogate"):
        Message("x", **{"a\ud800": 1})


def test_non_str_key_rejected_naming_path_and_type() -> None:
    with pytest.raises(ValidationError) as raised:
        Message("x", meta={"inner": {(1, 2): "a"}})
    assert "'meta.inner'" in str(raised.value) and "tuple" in str(raised.value)


def test_nested_class_key_other_than_frozen_rejected() -> None:
    with pytest.raises(ValidationError, match="class_"):
        Message("x", meta={"class_": "Message"})


def test_odd_key_is_named_readably_in_a_path() -> None:
    with pytest.raises(ValidationError) as raised:
        Frozen(meta={"a b": {"": [{1}]}})
    assert "meta['a b']['']" in str(raised.value)


# ============================================================= mapping access


def test_getitem_reads_declared_and_extra_fields() -> None:
    message = Message("hi", role="user", meta={"k": 1})
    assert message["text"] == "hi" and message["role"] == "user" and message["meta"]["k"] == 1


def test_getitem_of_missing_field_raises_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="'nope'"):
        Message("hi")["nope"]


def test_class_is_not_a_mapping_key() -> None:
    message = Frozen(a=1)
    assert "class_" not in message and "class_" not in message.keys()
    with pytest.raises(KeyError):
        message["class_"]


def test_get_returns_value_or_default() -> None:
    message = Frozen(a=1)
    assert message.get("a") == 1
    assert message.get("b") is None
    assert message.get("b", 7) == 7


def test_contains_keys_len_and_iteration_cover_fields_without_class() -> None:
    message = Message("hi", role="user")
    assert "role" in message and "text" in message and "nope" not in message and 3 not in message
    assert message.keys() == ("text", "text_template", "role")
    assert len(message) == 3
    assert list(message) == ["text", "text_template", "role"]


def test_model_without_fields_is_empty_yet_truthy() -> None:
    assert len(Frozen()) == 0
    assert Frozen()


def test_mapping_access_is_read_only_at_every_depth() -> None:
    message = Message("hi", role="user", meta={"k": [1]})
    with pytest.raises(TypeError):
        message["role"] = "assistant"  # type: ignore[index]
    with pytest.raises(TypeError):
        del message["role"]  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        message["meta"]["k"] = [2]
    with pytest.raises(ValidationError, match="frozen"):
        message.role = "assistant"
    assert message["role"] == "user" and message["meta"]["k"] == (1,)
    assert message.hash_key == Message("hi", role="user", meta={"k": [1]}).hash_key


def test_mapping_unpacks_into_an_equal_model() -> None:
    message = Message("hi", role="user", meta={"k": [1]})
    assert Message(**message) == message
    assert {**Frozen(a=1)} == {"a": 1}


def test_frozen_fields_and_values_still_work_next_to_mapping_access() -> None:
    model = Frozen(a=1, _b=2)
    assert model.frozen_fields() == ("class_", "a", "_b")
    assert dict(model.frozen_fields_and_values()) == {"a": 1, "_b": 2}
    assert dict(model.frozen_fields_and_values(exclude_class=False)) == {"class_": "Frozen", "a": 1, "_b": 2}


# ================================================================ the store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteMessageStore]:
    message_store = SQLiteMessageStore(tmp_path / "messages.db")
    yield message_store
    message_store.close()


@pytest.mark.parametrize("kind", LEAVES)
async def test_leaf_survives_sqlite_store_with_same_value_and_hash(kind: str, store: SQLiteMessageStore) -> None:
    value, _ = LEAVES[kind]
    message = Message("x", value=value, nested={"items": [value]}, reply=Message("child", value=value))
    async with MiniAgents(on_persist_message=store.on_persist_message):
        message.as_promise  # noqa: B018
    await asyncio.wait_for(store.aflush(), 10)

    loaded = store.load_message(message.hash_key)

    assert loaded.value == value and type(loaded.value) is type(value)
    assert loaded.nested["items"][0] == value
    assert loaded.reply.value == value
    assert loaded == message
    assert loaded.hash_key == message.hash_key


async def test_hash_key_of_leaf_is_64_characters_in_longer_context() -> None:
    message = Message("x", when=date(2024, 5, 1))
    async with PromisingContext(longer_hash_keys=True):
        assert message.hash_key == expected_hash(
            {"class_": "Message", "text": "x", "text_template": None, "when": {"__date": "2024-05-01"}}, length=64
        )
