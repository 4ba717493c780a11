"""
The shape writers of referencing texts (frozen.py, "referencing texts, by shape") are a fast path: whatever a
writer writes is byte for byte what the general path (`_referencing_fields` and the encoder) writes, and whatever
it cannot write it hands back (None) to the general path. The general path is the oracle here; the documented form
itself is held by tests/test_frozen_hash_stability.py.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniagents import Message
from miniagents.agent_call import AgentCallNode, AgentReplyNode
from miniagents.promising.ext import frozen
from miniagents.promising.ext.frozen import Frozen, set_model_state
from tests.support.frozen_rules import any_text, keys, values

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("FROZEN_PROPERTY_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Node(Frozen):
    """A plain Frozen subclass referenced by hash key, as messages are."""

    nested_by_hash_key: ClassVar[bool] = True


class FixedKeyMessage(Message):
    """A message computing its hash key its own way: a text referencing it embeds that key."""

    def hash_key_for(self, longer_hash_keys: bool) -> str:
        return "f" * (64 if longer_hash_keys else 40)


def general_text(model: Frozen, longer_hash_keys: bool) -> str:
    """The oracle: the text the general path writes."""
    return frozen._REFERENCING_TEXT[longer_hash_keys](frozen._referencing_fields(model, longer_hash_keys))


def shape_and_values(model: Frozen) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """What `_referencing_text` gives a writer: the declared fields' names and values, then the extra ones'."""
    own, extra = model.__dict__, model.__pydantic_extra__ or {}
    return (*own, *extra), (*own.values(), *extra.values())


def writer_text(model: Frozen, longer_hash_keys: bool) -> str | None:
    """What a writer made for the shape of `model` writes (None: it hands the model to the general path)."""
    shape, field_values = shape_and_values(model)
    return frozen._make_shape_writer(shape)(field_values, model, longer_hash_keys)


def assert_writer_agrees(model: Frozen) -> str | None:
    """The writer writes what the general path writes, or hands over; so do `_referencing_text` and the store API."""
    written = None
    for longer_hash_keys in (False, True):
        expected = general_text(model, longer_hash_keys)
        written = writer_text(model, longer_hash_keys)
        assert written is None or written == expected
        for _ in range(frozen._SHAPE_WRITER_AFTER + 1):  # before and after the shape gets its writer
            assert frozen._referencing_text(model, longer_hash_keys) == expected
    return written


# ------------------------------------------------------------------ strategies

tricky_names = st.sampled_from(
    ["x", "x_", "x2", "xB", "x__a", "x__hash_key_", "x__hash_keyz", "x__hash_keyS", "a", "b", "text", "", "é", "日本"]
)
names = st.one_of(tricky_names, keys)
inner_messages = st.one_of(
    st.builds(Message, st.text(max_size=5)),
    st.builds(lambda text: Message(text, n=1), st.text(max_size=5)),
    st.builds(lambda text: Node(**{"t": text}), st.text(max_size=5)),
    st.just(FixedKeyMessage(text="fixed")),
)
field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
    inner_messages,
    st.lists(inner_messages, max_size=3).map(tuple),
    st.lists(st.one_of(inner_messages, st.integers(), st.none(), any_text), max_size=3).map(tuple),
    values,
)
model_fields = st.dictionaries(names, field_values, max_size=6)
holders: st.SearchStrategy[Callable[..., Frozen]] = st.sampled_from([Message, Node])


# ------------------------------------------------------------------ properties


@PROPERTY_SETTINGS
@given(holder=holders, fields=model_fields)
def test_a_writer_writes_what_the_general_path_writes_or_hands_over(
    holder: Callable[..., Frozen], fields: dict[str, Any]
) -> None:
    try:
        model = holder(**fields)
    except (ValueError, TypeError):
        return  # refused at construction (tests/test_frozen_properties.py holds which)
    assert_writer_agrees(model)


@PROPERTY_SETTINGS
@given(text=st.one_of(any_text, st.text(), st.just(""), st.text(min_size=2000, max_size=5000)))
def test_the_text_of_a_text_only_message_is_the_general_one_for_any_text(text: str) -> None:
    message = Message("x")
    # lone surrogates are refused at construction: set behind pydantic's back, the text is still written alike
    set_model_state(message, {"class_": "Message", "text": text, "text_template": None}, {}, {"class_", "text"})

    assert assert_writer_agrees(message) is not None  # (the writer itself writes it)


@PROPERTY_SETTINGS
@given(text=st.text(), alias=st.text(), call_id=st.integers(), argument=st.integers() | st.text() | st.none())
def test_the_texts_of_call_and_reply_nodes_are_the_general_ones(
    text: str, alias: str, call_id: int, argument: Any
) -> None:
    reply = Message(text)
    call = AgentCallNode(agent_alias=alias, call_id=call_id, parent_call_id=None, **{"argument": argument})
    node = AgentReplyNode(agent_alias=alias, agent_call=call, replies=(reply,))
    empty = AgentReplyNode(agent_alias=alias, agent_call=call, replies=(), error=text)

    for model in (reply, call, node, empty):
        assert assert_writer_agrees(model) is not None  # (the writer itself writes it)


# ------------------------------------------------------------------ what goes to the general path


@pytest.mark.parametrize(
    "fields",
    [
        {"meta": {"a": 1}},  # a nested plain model
        {"when": (1, {"a": 1})},  # a tuple holding one
        {"mixed": (1, Message("m"))},  # a tuple of scalars and messages
        {"x": Message("m"), "x2": 1},  # a reference that would sort after the next name
        {"xs": (Message("m"),), "xs2": 1},
        {"_id": 1},  # a name starting with "_"
    ],
)
def test_what_a_writer_does_not_write_is_written_by_the_general_path(fields: dict[str, Any]) -> None:
    model = Message("text", **fields)

    assert writer_text(model, False) is None
    assert_writer_agrees(model)


def test_an_attribute_set_by_hand_is_not_written() -> None:
    message = Message("text", n=1)
    object.__setattr__(message, "_note", "not a field")  # into the instance __dict__, as pydantic would not

    assert "_note" not in frozen._referencing_text(message, False)
    assert_writer_agrees(message)


def test_a_name_both_declared_and_extra_is_written_once() -> None:
    message = Message("text", n=1)
    object.__setattr__(message, "__pydantic_extra__", {"text": "extra text"})  # set behind pydantic's back

    assert writer_text(message, False) is None
    assert_writer_agrees(message)


def test_a_message_referencing_itself_is_refused_by_both_paths() -> None:
    message = Message("text", n=1)
    _ = message.hash_key  # known: a writer reading it would not notice the cycle
    object.__setattr__(message, "__pydantic_extra__", {"n": 1, "me": message})  # set behind pydantic's back

    for _ in range(frozen._SHAPE_WRITER_AFTER + 1):
        with pytest.raises(ValueError, match="reference cycle"):
            message.serialized_and_hash_key_for(False)


def test_a_reference_embeds_the_key_of_a_class_computing_its_own() -> None:
    for _ in range(frozen._SHAPE_WRITER_AFTER + 1):
        holder = Message("holder", child=FixedKeyMessage(text="child"), children=(FixedKeyMessage(text="c"),))

        text, key = holder.serialized_and_hash_key_for(False)

        assert text == general_text(holder, False)
        assert f'"child__hash_key": "{"f" * 40}"' in text
        assert key == hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def test_writers_are_made_for_repeated_shapes_only_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frozen, "_shape_writers", {})
    monkeypatch.setattr(frozen, "_shapes_seen", {})
    monkeypatch.setattr(frozen, "_MAX_SHAPE_WRITERS", 20)
    monkeypatch.setattr(frozen, "_MAX_SHAPES_SEEN", 30)
    for number in range(frozen._MAX_SHAPES_SEEN + 50):  # one-off shapes: no writer each
        _ = Message("text", **{f"field_{number}": number}).serialized

    assert not frozen._shape_writers
    assert len(frozen._shapes_seen) <= frozen._MAX_SHAPES_SEEN

    last = frozen._MAX_SHAPE_WRITERS + 50
    for number in range(last + 1):  # repeated shapes: a writer each, the newest ones kept
        for _ in range(frozen._SHAPE_WRITER_AFTER):
            _ = Message("text", **{f"repeated_{number}": number}).serialized

    assert 0 < len(frozen._shape_writers) <= frozen._MAX_SHAPE_WRITERS
    assert ("class_", "text", "text_template", f"repeated_{last}") in frozen._shape_writers
    message = Message("text", repeated_0=1)
    assert message.serialized == general_text(message, False)


def test_a_shape_whose_writer_keeps_handing_over_goes_to_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frozen, "_shape_writers", {})
    monkeypatch.setattr(frozen, "_shapes_seen", {})
    monkeypatch.setattr(frozen, "_shapes_handed_over", {})
    for number in range(frozen._SHAPE_WRITER_AFTER + frozen._HANDED_OVER_BEFORE_GENERAL_PATH):
        message = Message("text", meta={"n": number})  # a nested dict: only the general path writes it
        assert message.serialized == general_text(message, False)

    assert frozen._shape_writers[("class_", "text", "text_template", "meta")] is frozen._GENERAL_PATH
    assert not frozen._shapes_handed_over
