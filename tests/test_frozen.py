"""Acceptance tests for sentinels (SPEC 3.6) and Frozen (SPEC 3.7)."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from miniagents.promising import sentinels
from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.promising import PromisingContext
from miniagents.promising.sentinels import AWAIT, CLEAR, DEFAULT, END_OF_QUEUE, FAILED, NO_VALUE, Sentinel

SENTINEL_NAMES = ["NO_VALUE", "DEFAULT", "FAILED", "END_OF_QUEUE", "AWAIT", "CLEAR"]


def expected_hash(plain: dict, length: int = 40) -> str:
    """The SPEC's hash_key recipe, applied to a dict written out by hand."""
    text = json.dumps(plain, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class Note(Frozen):
    text: str
    tags: tuple[str, ...] = ()


class Shouting(Frozen):
    text: str

    def _as_string(self) -> str:
        return self.text.upper() + "!"


# ================================================================= sentinels


@pytest.mark.parametrize("name", SENTINEL_NAMES)
def test_sentinel_singletons_exist_as_sentinels(name):
    assert isinstance(getattr(sentinels, name), Sentinel)


def test_sentinel_singletons_are_distinct():
    singletons = [NO_VALUE, DEFAULT, FAILED, END_OF_QUEUE, AWAIT, CLEAR]
    assert len({id(sentinel) for sentinel in singletons}) == 6


@pytest.mark.parametrize("name", SENTINEL_NAMES)
def test_sentinel_bool_raises(name):
    sentinel = getattr(sentinels, name)
    with pytest.raises(Exception):  # noqa: B017 - SPEC only says "raises"
        bool(sentinel)


def test_sentinel_in_if_statement_raises():
    with pytest.raises(Exception):  # noqa: B017 - SPEC only says "raises"
        if NO_VALUE:  # pragma: no cover
            pass


def test_new_sentinel_bool_raises():
    with pytest.raises(Exception):  # noqa: B017 - SPEC only says "raises"
        bool(Sentinel("MINE"))


# ============================================================== construction


def test_frozen_accepts_extra_fields():
    model = Frozen(text="hello", count=3, ratio=0.5, flag=True, nothing=None)
    assert model.text == "hello"
    assert model.count == 3
    assert model.ratio == 0.5
    assert model.flag is True
    assert model.nothing is None


def test_frozen_subclass_accepts_extra_fields_next_to_declared():
    note = Note(text="t", mood="calm")
    assert note.text == "t"
    assert note.mood == "calm"


@pytest.mark.parametrize("field", ["text", "count", "class_"])
def test_assigning_existing_field_raises_validation_error(field):
    model = Frozen(text="hello", count=3)
    with pytest.raises(ValidationError):
        setattr(model, field, "changed")
    assert model.text == "hello" and model.count == 3 and model.class_ == "Frozen"


def test_assigning_declared_field_of_subclass_raises_validation_error():
    note = Note(text="original")
    with pytest.raises(ValidationError):
        note.text = "changed"
    assert note.text == "original"


def test_assigning_new_field_raises_validation_error():
    model = Frozen(text="hello")
    with pytest.raises(ValidationError):
        model.brand_new = 1


def test_private_attribute_can_be_set():
    model = Frozen(text="hello")
    model._scratch = "anything"
    assert model._scratch == "anything"


def test_private_attribute_does_not_affect_hash_key():
    plain = Frozen(text="hello", n=1)
    decorated = Frozen(text="hello", n=1)
    decorated._scratch = {"not": "hashed"}
    assert decorated.hash_key == plain.hash_key
    assert decorated.hash_key == expected_hash({"class_": "Frozen", "text": "hello", "n": 1})


def test_private_attribute_set_after_hashing_does_not_change_hash_key():
    model = Frozen(text="hello")
    before = model.hash_key
    model._scratch = 42
    assert model.hash_key == before
    assert Frozen(text="hello").hash_key == before


def test_private_attribute_does_not_affect_python_hash():
    plain = Note(text="x")
    decorated = Note(text="x")
    decorated._scratch = 1
    assert hash(decorated) == hash(plain)


def test_private_attribute_not_serialized_or_listed():
    model = Frozen(text="hello")
    model._scratch = 1
    assert model.serialize() == {"class_": "Frozen", "text": "hello"}
    assert "_scratch" not in model.frozen_fields()


def test_nested_dict_becomes_frozen():
    model = Frozen(meta={"author": "ann", "inner": {"depth": 2}})
    assert isinstance(model.meta, Frozen)
    assert model.meta.author == "ann"
    assert isinstance(model.meta.inner, Frozen)
    assert model.meta.inner.depth == 2
    with pytest.raises(ValidationError):
        model.meta.author = "bob"


def test_nested_list_becomes_tuple():
    model = Frozen(items=[1, [2, 3], {"k": [4]}])
    assert model.items[:2] == (1, (2, 3))
    assert isinstance(model.items, tuple)
    assert isinstance(model.items[1], tuple)
    assert isinstance(model.items[2], Frozen)
    assert model.items[2].k == (4,)


def test_tuple_stays_tuple_with_frozen_contents():
    model = Frozen(pair=({"a": 1}, [2]))
    assert isinstance(model.pair, tuple)
    assert isinstance(model.pair[0], Frozen)
    assert model.pair[1] == (2,)


def test_set_value_rejected_naming_field_and_type():
    with pytest.raises(ValidationError) as error_info:
        Frozen(tags={"a", "b"})
    message = str(error_info.value)
    assert "tags" in message
    assert "set" in message


def test_arbitrary_object_rejected_naming_field_and_type():
    class Gadget:
        pass

    with pytest.raises(ValidationError) as error_info:
        Frozen(gadget=Gadget())
    message = str(error_info.value)
    assert "gadget" in message
    assert "Gadget" in message


def test_nested_bad_value_rejected_naming_nested_path_and_type():
    with pytest.raises(ValidationError) as error_info:
        Frozen(meta={"tags": ["ok", "fine", {"x"}]})
    message = str(error_info.value)
    assert "meta" in message and "tags" in message and "[2]" in message
    assert "set" in message


def test_bytearray_value_rejected_naming_type():
    with pytest.raises(ValidationError) as error_info:
        Frozen(blob=bytearray(b"raw"))  # mutable; bytes are accepted (tests/test_frozen_values.py)
    assert "blob" in str(error_info.value)
    assert "bytearray" in str(error_info.value)


def test_nested_model_is_kept_as_same_object():
    inner = Frozen(text="inner")
    outer = Frozen(child=inner, children=[inner], meta={"deep": inner})
    assert outer.child is inner
    assert outer.children[0] is inner
    assert outer.meta.deep is inner


def test_nested_model_in_declared_field_is_kept_as_same_object():
    class Holder(Frozen):
        note: Note

    note = Note(text="n")
    assert Holder(note=note).note is note


# ==================================================================== class_


def test_class_field_equals_class_name():
    assert Frozen(a=1).class_ == "Frozen"
    assert Note(text="x").class_ == "Note"
    assert Frozen(nested={"a": 1}).nested.class_ == "Frozen"


def test_class_field_accepts_matching_class_name():
    assert Note(text="x", class_="Note").class_ == "Note"


def test_class_field_rejects_different_class_name():
    with pytest.raises(ValidationError):
        Note(text="x", class_="Frozen")


# ============================================================= serialization


def test_serialize_gives_plain_dict_with_class_and_tuples_kept():
    model = Frozen(text="hi", items=[1, {"k": "v"}], meta={"a": None})
    serialized = model.serialize()
    assert serialized == {
        "class_": "Frozen",
        "text": "hi",
        "items": (1, {"class_": "Frozen", "k": "v"}),
        "meta": {"class_": "Frozen", "a": None},
    }
    assert type(serialized["items"]) is tuple


def test_serialize_is_what_model_dump_gives():
    model = Note(text="x", tags=["a"], meta={"n": [1, [2]]})
    assert model.serialize() == model.model_dump()


def test_serialize_includes_declared_defaults():
    assert Note(text="x").serialize() == {"class_": "Note", "text": "x", "tags": ()}


def test_serialized_is_json_with_sorted_keys_and_non_ascii_kept():
    model = Frozen(zeta="héllo 世界", alpha=1)
    assert model.serialized == '{"alpha": 1, "class_": "Frozen", "zeta": "héllo 世界"}'


def test_full_json_contains_whole_model_as_json():
    model = Frozen(text="héllo", meta={"k": [1, 2]})
    assert json.loads(model.full_json) == {
        "class_": "Frozen",
        "text": "héllo",
        "meta": {"class_": "Frozen", "k": [1, 2]},
    }


# ================================================================== hash_key


def test_hash_key_matches_spec_recipe_for_flat_model():
    model = Frozen(text="hello", n=1)
    assert model.hash_key == expected_hash({"class_": "Frozen", "text": "hello", "n": 1})


def test_hash_key_matches_spec_recipe_for_non_ascii_text():
    model = Frozen(text="héllo 世界")
    assert model.hash_key == expected_hash({"class_": "Frozen", "text": "héllo 世界"})
    # the recipe keeps non-ASCII characters; an escaped encoding would give another key
    escaped = json.dumps({"class_": "Frozen", "text": "héllo 世界"}, sort_keys=True, ensure_ascii=True)
    assert model.hash_key != hashlib.sha256(escaped.encode()).hexdigest()[:40]


def test_hash_key_matches_spec_recipe_for_nested_values():
    model = Note(text="ünïcode", tags=["a", "b"], meta={"score": 0.5, "ok": True, "none": None})
    assert model.hash_key == expected_hash(
        {
            "class_": "Note",
            "text": "ünïcode",
            "tags": ["a", "b"],
            "meta": {"class_": "Frozen", "score": 0.5, "ok": True, "none": None},
        }
    )


def test_hash_key_is_40_characters_by_default():
    assert len(Frozen(text="x").hash_key) == 40


def test_hash_key_independent_of_field_order():
    assert Frozen(a=1, b="two", c=[3]).hash_key == Frozen(c=[3], b="two", a=1).hash_key
    assert Frozen(m={"x": 1, "y": 2}).hash_key == Frozen(m={"y": 2, "x": 1}).hash_key


def test_hash_key_differs_when_content_differs():
    assert Frozen(a=1).hash_key != Frozen(a=2).hash_key
    assert Frozen(a=1).hash_key != Note(text="x").hash_key


def test_hash_key_differs_between_classes_with_same_fields():
    class Other(Frozen):
        pass

    assert Frozen(a=1).hash_key != Other(a=1).hash_key
    assert Other(a=1).hash_key == expected_hash({"class_": "Other", "a": 1})


async def test_hash_key_is_64_characters_with_longer_hash_keys_context():
    async with PromisingContext(longer_hash_keys=True):
        model = Frozen(text="héllo 世界")
        assert len(model.hash_key) == 64
        assert model.hash_key == expected_hash({"class_": "Frozen", "text": "héllo 世界"}, length=64)


async def test_hash_key_is_40_characters_with_default_context():
    async with PromisingContext():
        assert len(Frozen(text="x").hash_key) == 40


def test_hash_key_is_computed_once_and_cached(monkeypatch):
    model = Frozen(text="cache me")
    first = model.hash_key
    calls = []
    real_sha256 = hashlib.sha256

    def counting_sha256(*args, **kwargs):
        calls.append(1)
        return real_sha256(*args, **kwargs)

    monkeypatch.setattr(hashlib, "sha256", counting_sha256)
    assert model.hash_key == first
    assert model.hash_key == first
    assert calls == []


async def test_hash_key_read_under_longer_context_after_default_read_is_64_characters():
    model = Frozen(text="x")
    short = model.hash_key
    async with PromisingContext(longer_hash_keys=True):
        assert model.hash_key == expected_hash({"class_": "Frozen", "text": "x"}, length=64)
    assert model.hash_key == short


# ==================================================================== fields


def test_frozen_fields_lists_all_fields_including_class():
    note = Note(text="t", extra_field=1)
    assert set(note.frozen_fields()) == {"class_", "text", "tags", "extra_field"}
    assert isinstance(note.frozen_fields(), tuple)


def test_frozen_fields_and_values_excludes_class_by_default():
    note = Note(text="t", extra_field=1)
    assert dict(note.frozen_fields_and_values()) == {"text": "t", "tags": (), "extra_field": 1}


def test_frozen_fields_and_values_includes_class_when_asked():
    note = Note(text="t", extra_field=1)
    assert dict(note.frozen_fields_and_values(exclude_class=False)) == {
        "class_": "Note",
        "text": "t",
        "tags": (),
        "extra_field": 1,
    }


# ============================================================== presentation


def test_str_uses_as_string_override_in_subclass():
    model = Shouting(text="hey")
    assert str(model) == "HEY!"
    assert model.as_string == "HEY!"


def test_str_equals_as_string_by_default():
    model = Frozen(text="plain")
    assert str(model) == model.as_string
    assert json.loads(str(model)) == {"class_": "Frozen", "text": "plain"}


# ======================================================= no context required


def test_frozen_works_without_active_context():
    assert PromisingContext.get_current_or_none() is None
    model = Frozen(text="héllo 世界", meta={"k": [1]})
    assert model.hash_key == expected_hash(
        {"class_": "Frozen", "text": "héllo 世界", "meta": {"class_": "Frozen", "k": [1]}}
    )
    assert model.serialized
    assert str(model)
