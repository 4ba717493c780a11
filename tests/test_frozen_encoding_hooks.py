"""
The public hooks of Frozen's canonical JSON: `holds_models()` (does a model hold other models) and
`nested_by_hash_key` (models referenced by hash key in the text of the model holding them, as messages are).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

import pytest

from miniagents import Message
from miniagents.promising.ext.frozen import Frozen
from tests.support.frozen_corpus import corpus_keys
from tests.test_frozen_hash_stability import GOLDEN, documented_text


class Node(Frozen):
    """A model referenced by hash key, whatever Message does."""

    nested_by_hash_key: ClassVar[bool] = True


def sha(text: str, length: int = 40) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


@pytest.mark.parametrize(
    ("fields", "holds"),
    [
        ({}, False),
        ({"a": 1, "b": "x", "c": None, "d": 1.5, "e": True}, False),
        ({"a": (1, (2, 3), "x")}, False),
        ({"a": ()}, False),
        ({"a": {"b": 1}}, True),
        ({"a": (1, (2, {"b": 1}))}, True),
        ({"a": Message("hi")}, True),
        ({"a": (Message("hi"),)}, True),
    ],
)
def test_holds_models_says_whether_a_field_holds_a_model_at_any_tuple_depth(
    fields: dict[str, Any], holds: bool
) -> None:
    assert Frozen(**fields).holds_models() is holds
    assert Message("text", **fields).holds_models() is holds


def test_a_model_nested_by_hash_key_is_referenced_in_every_documented_place() -> None:
    leaf = Node(x=1)
    key = sha(leaf.serialized)
    holder = Node(one=leaf, many=(leaf, leaf), mixed=(1, leaf, (leaf,)), deep={"inner": leaf, "t": (leaf,)})

    data = json.loads(holder.serialized)

    assert data["one__hash_key"] == key
    assert data["many__hash_keys"] == [key, key]
    assert data["mixed"] == [1, {"__hash_key": key}, [{"__hash_key": key}]]
    assert data["deep"] == {"class_": "Frozen", "inner__hash_key": key, "t__hash_keys": [key]}
    assert holder.hash_key == sha(holder.serialized)


def test_a_plain_model_writes_models_nested_by_hash_key_out_in_full() -> None:
    holder = Frozen(one=Node(x=1, child=Node(y=2)))

    assert json.loads(holder.serialized)["one"] == {"class_": "Node", "child": {"class_": "Node", "y": 2}, "x": 1}


def test_a_reference_chain_of_any_depth_is_hashed() -> None:
    node = Node(level=0)
    for level in range(1, 3000):
        node = Node(level=level, below=node)

    text, key = node.serialized_and_hash_key_for(False)

    assert json.loads(text)["level"] == 2999
    assert key == sha(text)


def test_a_model_referencing_itself_is_refused_when_hashed() -> None:
    node = Node(x=1)
    object.__setattr__(node, "__pydantic_extra__", {"x": 1, "me": node})  # set behind pydantic's back

    with pytest.raises(ValueError, match="reference cycle"):
        _ = node.hash_key


def test_messages_nested_by_hash_key_through_the_hook_keep_their_recorded_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what `Message` gets when it declares `nested_by_hash_key = True` (and drops its own JSON walk)
    monkeypatch.setattr(Message, "nested_by_hash_key", True)
    assert Message("x").nested_by_hash_key
    recorded = json.loads(GOLDEN.read_text(encoding="utf-8"))

    assert corpus_keys() == recorded
    message = Message("top", child=Message("child"), pair=(Message("a"), Message("b")), mixed=(1, Message("c")))
    assert message.serialized == documented_text(message)
