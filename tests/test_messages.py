"""Acceptance tests for messages (SPEC 3.8): Message, MessagePromise, MessageSequencePromise."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from miniagents import Frozen, Message, MessagePromise, MessageSequencePromise, MiniAgents, Promise
from miniagents.message_sequence import MessageSequence
from tests.support.frozen_rules import message_fields

TIMEOUT = 5.0


async def within(awaitable: Any, seconds: float = TIMEOUT) -> Any:
    """Fail instead of hanging."""
    return await asyncio.wait_for(awaitable, seconds)


def digest(externalised: dict[str, Any]) -> str:
    """The hash key of an externalised message, computed by hand as the spec describes it."""
    text = json.dumps(externalised, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def message_dict(text: str | None = None, **fields: Any) -> dict[str, Any]:
    """The externalised form of a plain Message: class_, both declared fields, then extras."""
    return {"class_": "Message", "text": text, "text_template": None, **fields}


async def collect_tokens(promise: MessagePromise) -> list[str]:
    return [token async for token in promise]


class ChatMessage(Message):
    role: str = "user"


# --------------------------------------------------------------------------- construction


def test_message_positional_text_equals_keyword_text() -> None:
    assert Message("t", role="user") == Message(text="t", role="user")


def test_message_positional_text_keeps_metadata() -> None:
    message = Message("t", role="user", score=3)
    assert (message.text, message.role, message.score) == ("t", "user", 3)


def test_message_fields_are_immutable_after_construction() -> None:
    message = Message("t")
    with pytest.raises(ValidationError):
        message.text = "changed"


# --------------------------------------------------------------------------- str / repr


def test_str_is_text_when_text_is_set() -> None:
    assert str(Message("hello", text_template="ignored {x}", x=1)) == "hello"


def test_str_formats_text_template_with_fields_when_text_missing() -> None:
    assert str(Message(text_template="Hi {name}, you are {age}", name="Ann", age=7)) == "Hi Ann, you are 7"


def test_str_is_full_json_when_text_and_template_missing() -> None:
    message = Message(role="user", score=2)
    rendered = str(message)
    assert rendered == message.full_json
    parsed = json.loads(rendered)
    assert parsed["role"] == "user"
    assert parsed["score"] == 2


def test_repr_of_text_message_matches_seed_form() -> None:
    assert repr(Message(text="hi")) == "Message(text='hi')"


def test_repr_lists_non_default_fields_without_class() -> None:
    text = repr(Message(text="hi", role="user"))
    assert text == "Message(text='hi', role='user')"
    assert "class_" not in text


def test_repr_of_message_subclass_omits_fields_left_at_their_defaults() -> None:
    assert repr(ChatMessage("x")) == "ChatMessage(text='x')"
    assert repr(ChatMessage("x", role="assistant")) == "ChatMessage(text='x', role='assistant')"


def test_repr_of_tuple_of_messages_matches_seed_form() -> None:
    assert repr((Message(text="Agent 2 received: Hello from Agent 1!"),)) == (
        "(Message(text='Agent 2 received: Hello from Agent 1!'),)"
    )


# ------------------------------------------------------------------ git-style serialization


def test_serialize_replaces_nested_message_with_hash_key_field() -> None:
    child = Message("child")
    parent = Message("parent", reply_to=child)
    serialized = parent.serialize()
    assert "reply_to" not in serialized
    assert serialized["reply_to__hash_key"] == child.hash_key


def test_serialize_replaces_tuple_of_messages_with_hash_keys_field() -> None:
    first, second = Message("one"), Message("two")
    parent = Message("parent", history=[first, second])
    serialized = parent.serialize()
    assert "history" not in serialized
    assert list(serialized["history__hash_keys"]) == [first.hash_key, second.hash_key]


def test_serialize_externalises_messages_inside_nested_frozen_values() -> None:
    child = Message("child")
    parent = Message("parent", meta={"inner": {"source": child}})
    inner = parent.serialize()["meta"]["inner"]
    assert inner["source__hash_key"] == child.hash_key
    assert "source" not in inner


def test_serialize_externalises_message_tuples_inside_frozen_inside_tuples() -> None:
    first, second = Message("one"), Message("two")
    parent = Message("parent", steps=[{"inputs": [first, second]}])
    step = parent.serialize()["steps"][0]
    assert list(step["inputs__hash_keys"]) == [first.hash_key, second.hash_key]


def test_hash_key_matches_digest_of_plain_message_computed_by_hand() -> None:
    message = Message("hello", role="user", score=1.5, flags=[True, None])
    expected = digest(message_dict("hello", role="user", score=1.5, flags=[True, None]))
    assert message.hash_key == expected


def test_hash_key_matches_digest_of_non_ascii_message_computed_by_hand() -> None:
    message = Message("héllo wörld — 日本語 🚀", author="Zoë")
    expected = digest(message_dict("héllo wörld — 日本語 🚀", author="Zoë"))
    assert message.hash_key == expected


def test_hash_key_matches_digest_of_nested_messages_computed_by_hand() -> None:
    child = Message("ça va?")
    first, second = Message("un"), Message("deux")
    parent = Message(
        "parent ✓",
        reply_to=child,
        history=[first, second],
        meta={"source": child, "tags": ["a", "b"]},
    )
    child_key = digest(message_dict("ça va?"))
    first_key, second_key = digest(message_dict("un")), digest(message_dict("deux"))
    expected = digest(
        message_dict(
            "parent ✓",
            reply_to__hash_key=child_key,
            history__hash_keys=[first_key, second_key],
            meta={"class_": "Frozen", "source__hash_key": child_key, "tags": ["a", "b"]},
        )
    )
    assert parent.hash_key == expected


def test_hash_key_matches_digest_of_message_subclass_computed_by_hand() -> None:
    message = ChatMessage("bonjour")
    expected = digest({"class_": "ChatMessage", "text": "bonjour", "text_template": None, "role": "user"})
    assert message.hash_key == expected


def test_hash_key_is_40_characters_by_default() -> None:
    assert len(Message("x").hash_key) == 40


class FixedKeyMessage(Message):
    """A message whose hash key ignores its content: shows what a parent's hash really depends on."""

    def hash_key_for(self, longer_hash_keys: bool) -> str:
        return "f" * (64 if longer_hash_keys else 40)


def test_parent_hash_ignores_child_content_beyond_its_hash_key() -> None:
    one_child = FixedKeyMessage("one child")
    other_child = FixedKeyMessage("a completely different child", extra=1)
    assert Message("parent", child=one_child).hash_key == Message("parent", child=other_child).hash_key


def test_parent_hash_changes_when_child_hash_changes() -> None:
    assert Message("parent", child=Message("a")).hash_key != Message("parent", child=Message("b")).hash_key


def test_parent_serialized_does_not_contain_child_text() -> None:
    parent = Message("parent", child=Message("secret child text"))
    assert "secret child text" not in parent.serialized


# ------------------------------------------------------------------------- sub_messages


def test_sub_messages_lists_children_depth_first_before_parents() -> None:
    grandchild = Message("grandchild")
    child = Message("child", origin=grandchild)
    sibling_one, sibling_two = Message("s1"), Message("s2")
    deep = Message("deep")
    parent = Message("parent", child=child, siblings=[sibling_one, sibling_two], meta={"deep": deep})
    assert [m.text for m in parent.sub_messages()] == ["grandchild", "child", "s1", "s2", "deep"]


def test_sub_messages_yields_the_nested_instances_themselves() -> None:
    child = Message("child")
    parent = Message("parent", child=child)
    assert next(iter(parent.sub_messages())) is child


def test_sub_messages_is_empty_without_nested_messages() -> None:
    assert list(Message("alone", meta={"a": [1, 2]}).sub_messages()) == []


def test_sub_messages_yields_an_instance_held_twice_once() -> None:
    shared = Message("shared")
    parent = Message("parent", first=Message("a", source=shared), second=Message("b", source=shared))
    assert [m.text for m in parent.sub_messages()] == ["shared", "a", "b"]


def test_sub_messages_leaves_out_skipped_message_and_everything_below_it() -> None:
    old = Message("old", origin=Message("older"))
    parent = Message("parent", history=[old, Message("new")])
    assert [m.text for m in parent.sub_messages(skip=lambda m: m.text == "old")] == ["new"]


def test_sub_messages_raises_value_error_on_a_cycle_made_by_mutating_pydantic_storage() -> None:
    first = Message("first", other=Message("placeholder"))
    second = Message("second", other=first)
    first.__pydantic_extra__["other"] = second  # only possible by mutating pydantic's private storage
    with pytest.raises(ValueError, match="cycle"):
        list(Message("root", start=first).sub_messages())
    with pytest.raises(ValueError, match="cycle"):
        Message("root", start=first).hash_key  # noqa: B018


# ------------------------------------------------------------------ tuples in serialize()


def test_serialize_gives_tuple_of_hash_keys_for_tuple_of_messages() -> None:
    first, second = Message("one"), Message("two")
    serialized = Message("parent", history=[first, second]).serialize()
    assert serialized["history__hash_keys"] == (first.hash_key, second.hash_key)


def test_serialize_keeps_tuples_at_any_depth() -> None:
    child = Message("child")
    serialized = Message("parent", rows=[[1, 2], {"cells": ("a",)}], mixed=[1, child]).serialize()
    assert serialized["rows"] == ((1, 2), {"class_": "Frozen", "cells": ("a",)})
    assert serialized["mixed"] == (1, {"__hash_key": child.hash_key})


def test_serialize_of_message_without_nested_messages_is_model_dump() -> None:
    message = ChatMessage("hi", tags=["a"], meta={"k": (1, [2])})
    assert message.serialize() == message.model_dump()


def test_serialized_text_writes_tuples_as_json_arrays() -> None:
    first = Message("one")
    text = Message("parent", history=[first], rows=[[1]]).serialized
    assert json.loads(text)["history__hash_keys"] == [first.hash_key]
    assert json.loads(text)["rows"] == [[1]]


def test_message_rebuilt_from_serialize_is_equal_with_same_hash_key() -> None:
    message = ChatMessage("hi", rows=[[1, 2.5]], meta={"_id": "x", "": None}, role="system")
    rebuilt = ChatMessage(**message.serialize())
    assert rebuilt == message
    assert rebuilt.hash_key == message.hash_key


# ------------------------------------------------------------ hash_key is pure (SPEC 3.7)


async def test_hash_key_read_under_longer_context_first_does_not_change_default_read() -> None:
    child = Message("child")
    async with MiniAgents(longer_hash_keys=True):
        assert len(child.hash_key) == 64
    assert child.hash_key == Message("child").hash_key
    assert len(child.hash_key) == 40


async def test_hash_key_read_under_default_context_first_does_not_change_longer_read() -> None:
    child = Message("child")
    assert len(child.hash_key) == 40
    async with MiniAgents(longer_hash_keys=True):
        assert child.hash_key == Message("child").hash_key
        assert len(child.hash_key) == 64
        assert child.hash_key.startswith(Message("child").hash_key_for(False))


async def test_parent_embeds_child_keys_of_the_length_in_force_when_read() -> None:
    child = Message("child")
    parent = Message("parent", child=child)
    async with MiniAgents(longer_hash_keys=True):
        long_parent_key = parent.hash_key
        assert json.loads(parent.serialized)["child__hash_key"] == child.hash_key_for(True)
    assert parent.hash_key == digest(message_dict("parent", child__hash_key=child.hash_key_for(False)))
    assert (
        long_parent_key
        == hashlib.sha256(
            json.dumps(
                message_dict("parent", child__hash_key=child.hash_key_for(True)), sort_keys=True, ensure_ascii=False
            ).encode("utf-8")
        ).hexdigest()
    )


async def test_equal_messages_have_equal_keys_whichever_context_read_first() -> None:
    read_long_first, read_short_first = Message("m", child=Message("c")), Message("m", child=Message("c"))
    async with MiniAgents(longer_hash_keys=True):
        long_key = read_long_first.hash_key
    short_key = read_short_first.hash_key
    assert read_long_first.hash_key == short_key
    async with MiniAgents(longer_hash_keys=True):
        assert read_short_first.hash_key == long_key


# ------------------------------------------------------------------ deep reference chains


CHAIN_DEPTH = 10_000


def reference_chain(depth: int = CHAIN_DEPTH) -> list[Message]:
    chain = [Message(text="0")]
    for i in range(1, depth):
        chain.append(Message(text=str(i), prev=chain[-1]))
    return chain


def test_hash_key_of_deep_reference_chain_matches_digests_computed_by_hand() -> None:
    chain = reference_chain()
    key = digest(message_dict("0"))
    for i in range(1, CHAIN_DEPTH):
        key = digest(message_dict(str(i), prev__hash_key=key))
    assert chain[-1].hash_key == key


async def test_hash_key_of_deep_reference_chain_works_with_longer_keys() -> None:
    chain = reference_chain()
    async with MiniAgents(longer_hash_keys=True):
        assert len(chain[-1].hash_key) == 64
        assert chain[-1].serialize()["prev__hash_key"] == chain[-2].hash_key


def test_serialize_of_deep_reference_chain_references_the_previous_link() -> None:
    chain = reference_chain()
    serialized = chain[-1].serialize()  # before any hash_key was read
    assert serialized["prev__hash_key"] == chain[-2].hash_key
    assert serialized["text"] == str(CHAIN_DEPTH - 1)


def test_sub_messages_of_deep_reference_chain_lists_oldest_first() -> None:
    chain = reference_chain()
    assert list(chain[-1].sub_messages()) == chain[:-1]


def test_hash_key_of_chain_hashed_link_by_link_equals_chain_hashed_at_once() -> None:
    at_once = reference_chain(2_000)
    link_by_link = [Message(text="0")]
    for i in range(1, 2_000):
        link_by_link[-1].hash_key  # noqa: B018
        link_by_link.append(Message(text=str(i), prev=link_by_link[-1]))
    assert link_by_link[-1].hash_key == at_once[-1].hash_key


# ------------------------------------------------------------------------- Message.promise


async def test_message_promise_without_streamer_resolves_to_message_of_that_class() -> None:
    async with MiniAgents():
        promise = ChatMessage.promise(text="hi", role="system")
        assert isinstance(promise, MessagePromise)
        message = await within(promise)
    assert type(message) is ChatMessage
    assert message == ChatMessage(text="hi", role="system")


async def test_message_promise_without_streamer_yields_whole_text_as_one_token() -> None:
    async with MiniAgents():
        tokens = await within(collect_tokens(Message.promise(text="whole text here")))
    assert tokens == ["whole text here"]


async def test_message_promise_with_streamer_streams_tokens_and_builds_message_class() -> None:
    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        for token in ("Hel", "lo", "!"):
            await asyncio.sleep(0)
            yield token

    async with MiniAgents():
        promise = ChatMessage.promise(message_token_streamer=streamer, role="assistant")
        tokens = await within(collect_tokens(promise))
        message = await within(promise)
    assert tokens == ["Hel", "lo", "!"]
    assert type(message) is ChatMessage
    assert (message.text, message.role) == ("Hello!", "assistant")


async def test_message_promise_tokens_replay_for_a_second_consumer() -> None:
    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "a"
        yield "b"

    async with MiniAgents():
        promise = Message.promise(message_token_streamer=streamer)
        first = await within(collect_tokens(promise))
        second = await within(collect_tokens(promise))
    assert first == second == ["a", "b"]


async def test_as_promise_is_cached_per_message() -> None:
    async with MiniAgents():
        message = Message("cached")
        assert message.as_promise is message.as_promise


async def test_as_promise_resolves_to_the_same_message_instance() -> None:
    async with MiniAgents():
        message = Message("same")
        assert await within(message.as_promise) is message


async def test_as_promise_yields_whole_text_as_single_token() -> None:
    async with MiniAgents():
        tokens = await within(collect_tokens(Message("one two three").as_promise))
    assert tokens == ["one two three"]


async def test_as_promise_of_templated_message_yields_rendered_text_as_single_token() -> None:
    async with MiniAgents():
        tokens = await within(collect_tokens(Message(text_template="Hi {name}", name="Bob").as_promise))
    assert tokens == ["Hi Bob"]


# --------------------------------------------------------------------------- MessagePromise


async def test_preliminary_metadata_is_readable_before_any_token() -> None:
    release = asyncio.Event()
    streamer_started = asyncio.Event()

    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        streamer_started.set()
        await release.wait()
        yield "late"

    async with MiniAgents():
        promise = Message.promise(message_token_streamer=streamer, role="assistant", model="m-1")
        await within(streamer_started.wait())
        metadata = promise.preliminary_metadata
        assert isinstance(metadata, Frozen)
        assert (metadata.role, metadata.model) == ("assistant", "m-1")
        release.set()
        assert (await within(promise)).text == "late"


async def test_preliminary_metadata_is_readable_before_streaming_starts_lazily() -> None:
    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "x"

    async with MiniAgents():
        promise = Message.promise(start_asap=False, message_token_streamer=streamer, agent_alias="BOT")
        assert promise.preliminary_metadata.agent_alias == "BOT"
        await within(promise)


async def test_streamer_metadata_so_far_entries_reach_final_message() -> None:
    async def streamer(metadata_so_far: dict[str, Any]) -> AsyncIterator[str]:
        yield "text"
        metadata_so_far["usage"] = {"output_tokens": 1}
        metadata_so_far["finish_reason"] = "stop"

    async with MiniAgents():
        message = await within(Message.promise(message_token_streamer=streamer, role="assistant"))
    assert message.text == "text"
    assert message.role == "assistant"
    assert message.finish_reason == "stop"
    assert message.usage.output_tokens == 1


async def test_streamer_metadata_so_far_starts_with_preliminary_metadata() -> None:
    seen: dict[str, Any] = {}

    async def streamer(metadata_so_far: dict[str, Any]) -> AsyncIterator[str]:
        seen.update(metadata_so_far)
        yield "t"

    async with MiniAgents():
        await within(Message.promise(message_token_streamer=streamer, role="assistant", model="m"))
    assert seen["role"] == "assistant"
    assert seen["model"] == "m"


async def test_non_str_token_fails_the_stream_with_type_error() -> None:
    async def streamer(_: dict[str, Any]) -> AsyncIterator[Any]:
        yield "ok"
        yield 42

    async with MiniAgents():
        promise = Message.promise(message_token_streamer=streamer)
        tokens = []
        with pytest.raises(TypeError):
            async for token in promise:
                tokens.append(token)
    assert tokens == ["ok"]


async def test_non_str_token_fails_await_with_type_error() -> None:
    async def streamer(_: dict[str, Any]) -> AsyncIterator[Any]:
        yield b"bytes are not text"

    async with MiniAgents():
        with pytest.raises(TypeError):
            await within(Message.promise(message_token_streamer=streamer))


async def test_streamer_error_reaches_await_of_message_promise() -> None:
    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "partial"
        raise ValueError("stream broke")

    async with MiniAgents():
        with pytest.raises(ValueError, match="stream broke"):
            await within(Message.promise(message_token_streamer=streamer))


# ------------------------------------------------------------------- MessageSequencePromise


async def test_sequence_promise_await_gives_tuple_of_message_promises() -> None:
    async with MiniAgents():
        sequence = MessageSequence.turn_into_sequence_promise(["a", "b"])
        assert isinstance(sequence, MessageSequencePromise)
        promises = await within(sequence)
    assert isinstance(promises, tuple)
    assert all(isinstance(p, MessagePromise) for p in promises)
    assert len(promises) == 2


async def test_sequence_promise_aresolve_messages_gives_tuple_of_messages() -> None:
    async with MiniAgents():
        sequence = MessageSequence.turn_into_sequence_promise(["a", Message("b", role="user")])
        messages = await within(sequence.aresolve_messages())
    assert messages == (Message("a"), Message("b", role="user"))


async def test_sequence_promise_async_for_yields_message_promises_in_order() -> None:
    async with MiniAgents():
        sequence = MessageSequence.turn_into_sequence_promise(["x", "y", "z"])

        async def texts() -> list[str]:
            return [(await p).text async for p in sequence]

        assert await within(texts()) == ["x", "y", "z"]


async def test_as_single_promise_joins_texts_with_delimiter() -> None:
    async with MiniAgents():
        sequence = MessageSequence.turn_into_sequence_promise(["a", "b", "c"])
        joined = await within(sequence.as_single_promise())
    assert joined.text == "a\n\nb\n\nc"


async def test_as_single_promise_uses_custom_delimiter_and_metadata() -> None:
    async with MiniAgents():
        sequence = MessageSequence.turn_into_sequence_promise(["a", "b"])
        joined = await within(sequence.as_single_promise(delimiter=" | ", role="assistant"))
    assert joined.text == "a | b"
    assert joined.role == "assistant"


async def test_as_single_promise_references_original_messages() -> None:
    async with MiniAgents():
        originals = (Message("a"), Message("b"))
        joined = await within(MessageSequence.turn_into_sequence_promise(originals).as_single_promise())
    assert tuple(joined.original_messages) == originals


async def test_as_single_promise_streams_tokens_of_all_messages() -> None:
    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "to"
        yield "ken"

    async with MiniAgents():
        streamed = Message.promise(message_token_streamer=streamer)
        sequence = MessageSequence.turn_into_sequence_promise(["first", streamed])
        tokens = await within(collect_tokens(sequence.as_single_promise()))
    assert "".join(tokens) == "first\n\ntoken"
    assert len(tokens) > 1


async def test_promise_resolving_to_message_is_a_plain_promise_too() -> None:
    async with MiniAgents():
        message = Message("via promise")

        async def resolver(_: Promise[Message]) -> Message:
            return message

        assert await within(Promise(resolver=resolver)) is message


async def test_streamed_tokens_are_the_text_when_preliminary_metadata_also_has_text() -> None:
    from miniagents import MiniAgents

    async def tokens(_: dict) -> object:
        yield "final"

    async with MiniAgents():
        message = await Message.promise(message_token_streamer=tokens, text="preliminary", role="x")
    assert (message.text, message.role) == ("final", "x")


def _validated_by_pydantic(fields: dict[str, Any]) -> Message:
    """A Message made by pydantic's validation alone (`model_validate` would call Message.__init__, the quick way)."""
    message = Message.__new__(Message)
    BaseModel.__init__(message, **fields)
    return message


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_a_text_only_message_is_the_same_whichever_way_it_is_built(text: str) -> None:
    quick = Message(text=text)  # (the quick way, for an ASCII str: nothing to validate)
    positional = Message(text)
    validated = _validated_by_pydantic({"text": text})
    for message in (quick, positional):
        assert message == validated
        assert message.__dict__ == validated.__dict__ and list(message.__dict__) == list(validated.__dict__)
        assert message.model_fields_set == validated.model_fields_set
        assert message.__pydantic_extra__ == validated.__pydantic_extra__
        assert message.model_dump() == validated.model_dump() and message.serialize() == validated.serialize()
        assert message.hash_key == validated.hash_key and repr(message) == repr(validated)
        with pytest.raises(Exception):  # noqa: B017 - frozen, whatever pydantic calls the error
            message.text = "changed"  # type: ignore[misc]


_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)
_texts = st.dictionaries(
    st.sampled_from(["text", "text_template", "class_"]),
    st.none() | st.text(max_size=6) | st.just("Message") | st.binary(max_size=2) | st.integers(),
)
_any_message_fields = st.builds(
    lambda fields, texts: {**fields, **texts},
    message_fields | st.dictionaries(st.text(max_size=5), _json_like, max_size=5),
    _texts,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=_any_message_fields)
def test_a_message_is_the_same_as_pydantic_validation_makes_it_or_refused_with_its_error(fields: dict) -> None:
    # `Message(**fields)` freezes without pydantic's machinery when it can: the same state, or the same error
    try:
        validated = _validated_by_pydantic(fields)
    except (ValueError, TypeError) as validation_error:
        with pytest.raises(type(validation_error)) as raised:
            Message(**fields)
        assert str(raised.value) == str(validation_error)
        return
    message = Message(**fields)
    assert message == validated
    assert message.__dict__ == validated.__dict__ and list(message.__dict__) == list(validated.__dict__)
    assert message.model_fields_set == validated.model_fields_set
    assert message.__pydantic_extra__ == validated.__pydantic_extra__
    assert list(message.__pydantic_extra__ or {}) == list(validated.__pydantic_extra__ or {})
    assert all(type(a) is type(b) for a, b in zip(message.__dict__.values(), validated.__dict__.values(), strict=True))
    assert message.__pydantic_private__ == validated.__pydantic_private__
    assert message.model_dump() == validated.model_dump() and message.serialize() == validated.serialize()
    assert message.serialized == validated.serialized and message.hash_key == validated.hash_key
    assert repr(message) == repr(validated)


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_the_quick_promise_of_a_text_is_the_promise_of_its_message(text: str) -> None:
    # `MessagePromise.of_text()` (what an agent replying a str gets) builds the message and its resolved promise
    # without pydantic's machinery, and makes the stream of its one token only if somebody asks for it
    async def check() -> None:
        async with MiniAgents():
            promise = MessagePromise.of_text(text)
            validated = _validated_by_pydantic({"text": text})
            message = await promise
            assert message == validated and message.hash_key == validated.hash_key
            assert message.model_fields_set == validated.model_fields_set
            assert message.as_promise is promise and promise.done() and promise.stream_done
            assert promise.pieces_if_done() == (text,)
            assert [token async for token in promise] == [text]
            assert promise.snapshot() == ((text,), True)
            general = MessagePromise(prefill_message=validated)
            assert promise.preliminary_metadata == general.preliminary_metadata

    asyncio.run(check())


def test_copies_of_a_quick_message_never_share_what_they_change() -> None:
    # the quick text-only messages share their (never written) set of given field names: a copy gets its own
    first, second = Message(text="a"), Message(text="b")
    changed = first.model_copy(update={"text": "c", "role": "user"})
    assert changed.model_fields_set == {"class_", "text", "role"}
    assert first.model_fields_set == second.model_fields_set == {"class_", "text"}
