"""
Equality and hashing of Frozen models: pydantic's semantics (the same class, equal fields and extra fields;
`1 == 1.0`; the hash over the declared fields), but nested models are compared and hashed by a loop, so reference
chains of any depth compare and hash (pydantic's own recursed and raised RecursionError past ~1,000 levels).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from miniagents import Message

DEPTH = 10_000

scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False)
json_like = st.recursive(
    scalars | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text("abc", max_size=3), children, max_size=3),
    max_leaves=12,
)
fields = st.dictionaries(st.sampled_from(["a", "b", "meta", "items"]), json_like, max_size=3)


class Link(Message):
    """A message whose declared field holds the previous one (so the declared-fields hash goes through the chain)."""

    previous: Link | None = None


def chain(depth: int, bottom: str, through_declared_field: bool) -> Message:
    message: Message = Link(text=bottom) if through_declared_field else Message(text=bottom)
    for level in range(depth):
        if through_declared_field:
            message = Link(text=str(level), previous=message)
        else:
            message = Message(text=str(level), previous=message)
    return message


@settings(max_examples=300)
@given(first=fields, second=fields, text=st.text(max_size=3))
def test_equality_is_pydantics(first: dict[str, Any], second: dict[str, Any], text: str) -> None:
    left, right = Message(text=text, **first), Message(text=text, **second)
    assert (left == right) is BaseModel.__eq__(left, right)
    assert (left == Message(text=text, **first)) is True
    if left == right:
        assert hash(left) == hash(right)


@given(value=st.integers(-1000, 1000))
def test_equal_numbers_of_other_types_compare_and_hash_alike(value: int) -> None:
    as_int, as_float = (
        Message(text="n", n=value, meta={"n": [value]}),
        Message(text="n", n=float(value), meta={"n": [float(value)]}),
    )
    assert as_int == as_float and hash(as_int) == hash(as_float)


def test_models_of_other_classes_or_other_objects_are_not_equal() -> None:
    assert Message(text="x") != Link(text="x")
    assert Message(text="x") != "x"
    assert Message(text="x", meta={"a": 1}) != Message(text="x", meta={"a": 2})
    assert Message(text="x", items=[1, 2]) != Message(text="x", items=[1, 2, 3])


def test_reference_chains_of_any_depth_compare_and_hash() -> None:
    for through_declared_field in (True, False):
        left = chain(DEPTH, "bottom", through_declared_field)
        right = chain(DEPTH, "bottom", through_declared_field)
        assert left == right
        assert hash(left) == hash(right)
        different_at_the_bottom = chain(DEPTH, "other bottom", through_declared_field)
        assert left != different_at_the_bottom
        assert len({left, right, different_at_the_bottom}) == 2
