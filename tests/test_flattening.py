"""Acceptance tests for MessageType and flattening (SPEC 3.10), and the errors around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from miniagents import InteractionContext, Message, MessagePromise, MessageSequencePromise, MiniAgents, miniagent
from miniagents.miniagents import MessageSequence
from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.promising import Promise

TIMEOUT = 5.0
# Hypothesis without shrinking: if the implementation hangs, every shrink step would wait for a timeout.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
NO_CONTEXT_HINT = "async with MiniAgents()"


async def within(awaitable: Any, seconds: float = TIMEOUT) -> Any:
    """Fail instead of hanging."""
    return await asyncio.wait_for(awaitable, seconds)


async def consume(sequence: MessageSequencePromise) -> tuple[list[Message], BaseException | None]:
    """The messages a consumer iterating `sequence` receives, and the error that ended the iteration."""

    async def run() -> tuple[list[Message], BaseException | None]:
        messages: list[Message] = []
        try:
            async for message_promise in sequence:
                messages.append(await message_promise)
        except Exception as exc:
            return messages, exc
        return messages, None

    return await within(run())


@miniagent
async def replier(ctx: InteractionContext, **_: Any) -> None:
    """Replies with whatever `ctx.messages` resolves to (used as an echo)."""
    ctx.reply(ctx.messages)


def reply_with(item: Any) -> MessageSequencePromise:
    """The reply sequence of an agent that calls `ctx.reply(item)` once."""

    async def replying(ctx: InteractionContext) -> None:
        ctx.reply(item)

    return miniagent(replying).inquire()


async def replied(item: Any) -> list[Message]:
    messages, error = await consume(reply_with(item))
    assert error is None, error
    return messages


async def replied_texts(item: Any) -> list[str]:
    return [message.text for message in await replied(item)]


def sync_gen(*items: Any) -> Iterator[Any]:
    yield from items


async def async_gen(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        await asyncio.sleep(0)
        yield item


class Note(BaseModel):
    text: str
    author: str


class ChatMessage(Message):
    role: str = "user"


class FlatteningFailure(Exception):
    pass


# ======================================================================= single types


async def test_str_becomes_message_with_that_text() -> None:
    async with MiniAgents():
        messages = await replied("plain text")
    assert messages == [Message(text="plain text")]
    assert type(messages[0]) is Message


async def test_dict_becomes_message_with_its_fields() -> None:
    async with MiniAgents():
        messages = await replied({"text": "from dict", "role": "user", "meta": {"n": 1}})
    assert messages == [Message(text="from dict", role="user", meta={"n": 1})]


async def test_message_is_passed_on_as_the_same_instance() -> None:
    message = ChatMessage("typed", role="assistant")
    async with MiniAgents():
        messages = await replied(message)
    assert messages[0] is message


async def test_pydantic_model_becomes_message_with_its_fields() -> None:
    async with MiniAgents():
        messages = await replied(Note(text="a note", author="Ann"))
    assert type(messages[0]) is Message
    assert (messages[0].text, messages[0].author) == ("a note", "Ann")


async def test_frozen_model_becomes_message_with_its_fields() -> None:
    async with MiniAgents():
        messages = await replied(Frozen(text="frozen note", score=3))
    assert isinstance(messages[0], Message)
    assert (messages[0].text, messages[0].score) == ("frozen note", 3)


async def test_message_promise_is_passed_on_as_the_same_promise() -> None:
    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "stream"
        yield "ed"

    async with MiniAgents():
        promise = Message.promise(message_token_streamer=streamer)
        promises = await within(reply_with(["before", promise]))
        assert promises[1] is promise
        assert (await within(promises[1])).text == "streamed"


async def test_exception_is_raised_at_its_position() -> None:
    failure = FlatteningFailure("at position 2")
    async with MiniAgents():
        messages, error = await consume(reply_with(["one", "two", failure, "three"]))
    assert [m.text for m in messages] == ["one", "two"]
    assert error is failure


async def test_empty_list_gives_no_messages() -> None:
    async with MiniAgents():
        assert await replied_texts([]) == []


# ==================================================================== nested iterables


async def test_nested_lists_and_tuples_are_flattened_in_order() -> None:
    async with MiniAgents():
        texts = await replied_texts(["a", ("b", ["c", ("d",), []]), [[["e"]]], "f"])
    assert texts == ["a", "b", "c", "d", "e", "f"]


async def test_sync_generator_is_flattened_in_order() -> None:
    async with MiniAgents():
        texts = await replied_texts(["a", sync_gen("b", sync_gen("c", ["d"])), (x for x in ("e", "f"))])
    assert texts == ["a", "b", "c", "d", "e", "f"]


async def test_async_generator_is_flattened_in_order() -> None:
    async with MiniAgents():
        texts = await replied_texts(["a", async_gen("b", ["c", async_gen("d")], "e"), "f"])
    assert texts == ["a", "b", "c", "d", "e", "f"]


async def test_async_generator_at_top_level_is_flattened_in_order() -> None:
    async with MiniAgents():
        texts = await replied_texts(async_gen("a", async_gen("b"), ("c",)))
    assert texts == ["a", "b", "c"]


async def test_other_agents_replies_are_flattened_in_order() -> None:
    @miniagent
    async def two_replies(ctx: InteractionContext, name: str) -> None:
        await asyncio.sleep(0)
        ctx.reply([f"{name}-1", f"{name}-2"])

    async with MiniAgents():
        texts = await replied_texts([two_replies.inquire(name="x"), "middle", two_replies.inquire(name="y")])
    assert texts == ["x-1", "x-2", "middle", "y-1", "y-2"]


async def test_mixture_nested_several_levels_is_flattened_in_order() -> None:
    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "prom"
        yield "ise"

    async with MiniAgents():
        echo_replies = replier.inquire(["echo-1", async_gen({"text": "echo-2"})])
        item = [
            "s1",
            ({"text": "d1"}, [Message("m1"), sync_gen(Note(text="n1", author="A"), async_gen("a1", ["a2"]))]),
            Message.promise(message_token_streamer=streamer),
            [[echo_replies, (replier.inquire(async_gen("deep")),)]],
            "s2",
        ]
        texts = await replied_texts(item)
    assert texts == ["s1", "d1", "m1", "n1", "a1", "a2", "promise", "echo-1", "echo-2", "deep", "s2"]


async def test_input_messages_are_flattened_like_replies() -> None:
    async with MiniAgents():
        replies = replier.inquire(["a", ("b", sync_gen("c")), async_gen("d", ["e"]), {"text": "f"}])
        texts = [m.text for m in await within(replies.aresolve_messages())]
    assert texts == ["a", "b", "c", "d", "e", "f"]


async def test_message_sequence_flattens_mixture_in_order() -> None:
    async with MiniAgents():
        messages = await within(MessageSequence.aresolve_messages(["a", sync_gen(("b",)), async_gen("c")]))
    assert [m.text for m in messages] == ["a", "b", "c"]


async def test_exception_inside_async_generator_items_is_raised_at_its_position() -> None:
    failure = FlatteningFailure("inside")
    async with MiniAgents():
        messages, error = await consume(reply_with(["a", async_gen("b", failure, "c")]))
    assert [m.text for m in messages] == ["a", "b"]
    assert error is failure


async def test_failing_sync_generator_error_arrives_at_its_position() -> None:
    def broken() -> Iterator[str]:
        yield "b"
        raise FlatteningFailure("generator broke")

    async with MiniAgents():
        messages, error = await consume(reply_with(["a", broken(), "c"]))
    assert [m.text for m in messages] == ["a", "b"]
    assert isinstance(error, FlatteningFailure)


async def test_failing_async_generator_error_arrives_at_its_position() -> None:
    async def broken() -> AsyncIterator[str]:
        yield "b"
        await asyncio.sleep(0)
        raise FlatteningFailure("async generator broke")

    async with MiniAgents():
        messages, error = await consume(reply_with(["a", broken(), "c"]))
    assert [m.text for m in messages] == ["a", "b"]
    assert isinstance(error, FlatteningFailure)


# ================================================================== unsupported types


async def test_unsupported_top_level_reply_raises_type_error_naming_type() -> None:
    errors: list[BaseException] = []

    @miniagent
    async def bad_replier(ctx: InteractionContext) -> None:
        try:
            ctx.reply(12345)
        except Exception as exc:
            errors.append(exc)
        ctx.reply("still replying")

    async with MiniAgents():
        assert [m.text for m in await within(bad_replier.inquire().aresolve_messages())] == ["still replying"]
    assert len(errors) == 1
    assert isinstance(errors[0], TypeError)
    assert "int" in str(errors[0])


async def test_unsupported_top_level_input_raises_type_error_at_inquire() -> None:
    async with MiniAgents():
        with pytest.raises(TypeError, match="float"):
            replier.inquire(1.5)


async def test_unsupported_input_sent_later_raises_type_error_at_send_message() -> None:
    async with MiniAgents():
        call = replier.initiate_inquiry()
        with pytest.raises(TypeError, match="object"):
            call.send_message(object())
        call.reply_sequence()


async def test_unsupported_nested_item_arrives_as_type_error_at_its_position() -> None:
    async with MiniAgents():
        messages, error = await consume(reply_with(["a", ["b", 42, "c"]]))
    assert [m.text for m in messages] == ["a", "b"]
    assert isinstance(error, TypeError)
    assert "int" in str(error)


async def test_unsupported_item_in_async_generator_arrives_as_type_error_at_its_position() -> None:
    async with MiniAgents():
        messages, error = await consume(reply_with(["a", async_gen("b", 3.5)]))
    assert [m.text for m in messages] == ["a", "b"]
    assert isinstance(error, TypeError)
    assert "float" in str(error)


async def test_unsupported_item_in_input_reaches_agent_as_type_error_at_its_position() -> None:
    async with MiniAgents():
        messages, error = await consume(replier.inquire(["a", sync_gen("b", None)]))
    assert [m.text for m in messages] == ["a", "b"]
    assert isinstance(error, TypeError)
    assert "NoneType" in str(error)


# ================================================================ unfreezable values


def test_message_with_set_field_is_rejected_naming_field_and_type() -> None:
    with pytest.raises(Exception, match="tags") as caught:
        Message("x", tags={"a", "b"})
    assert "set" in str(caught.value)


def test_message_with_object_in_nested_field_is_rejected_naming_field() -> None:
    class Client:
        pass

    with pytest.raises(Exception, match="connection") as caught:
        Message("x", meta={"connection": Client()})
    assert "Client" in str(caught.value)


async def test_replied_dict_with_unfreezable_value_fails_naming_field() -> None:
    errors: list[BaseException] = []

    @miniagent
    async def replying(ctx: InteractionContext) -> None:
        try:
            ctx.reply(["fine", {"text": "bad", "handle": {1, 2}}])
        except Exception as exc:  # rejected at the call is fine too
            errors.append(exc)

    async with MiniAgents():
        messages, error = await consume(replying.inquire())
    if error is not None:
        errors.append(error)
    assert len(errors) == 1
    assert "handle" in str(errors[0])
    assert [m.text for m in messages] in ([], ["fine"])


async def test_non_freezable_function_kwarg_raises_naming_agent_and_kwarg() -> None:
    @miniagent
    async def configured(ctx: InteractionContext, client: Any = None) -> None:
        pass

    async with MiniAgents():
        with pytest.raises(Exception, match="client") as caught:
            configured.inquire(client=object())
    assert "CONFIGURED" in str(caught.value)


async def test_non_freezable_function_kwarg_in_initiate_inquiry_raises_naming_agent_and_kwarg() -> None:
    @miniagent
    async def configured(ctx: InteractionContext, options: Any = None) -> None:
        pass

    async with MiniAgents():
        with pytest.raises(Exception, match="options") as caught:
            configured.initiate_inquiry(options={"ids": {1, 2}})
    assert "CONFIGURED" in str(caught.value)


async def test_freezable_function_kwargs_are_accepted() -> None:
    received: list[Any] = []

    @miniagent
    async def configured(ctx: InteractionContext, **kwargs: Any) -> None:
        received.append(kwargs)

    async with MiniAgents():
        await within(
            configured.inquire(
                n=1,
                ratio=0.5,
                name="x",
                flag=True,
                nothing=None,
                items=[1, "a"],
                nested={"k": [1]},
                message=Message("m"),
            )
        )
    assert received[0]["n"] == 1
    assert received[0]["name"] == "x"


# ================================================================ no active context


def test_replies_of_inquire_without_context_raise_runtime_error_naming_async_with_when_used() -> None:
    replies = replier.inquire("x")  # deferred: the call is made when the replies are used inside a context
    with pytest.raises(RuntimeError, match=NO_CONTEXT_HINT.replace("(", r"\(").replace(")", r"\)")):
        replies.__aiter__()
    MiniAgents().run(replies.aresolve_messages())


def test_initiate_inquiry_without_context_raises_runtime_error_naming_async_with() -> None:
    with pytest.raises(RuntimeError) as caught:
        replier.initiate_inquiry()
    assert NO_CONTEXT_HINT in str(caught.value)


def test_message_promise_without_context_raises_runtime_error_naming_async_with() -> None:
    with pytest.raises(RuntimeError) as caught:
        Message("x").as_promise  # noqa: B018
    assert NO_CONTEXT_HINT in str(caught.value)


def test_streamed_message_promise_without_context_raises_runtime_error_naming_async_with() -> None:
    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "x"

    with pytest.raises(RuntimeError) as caught:
        Message.promise(message_token_streamer=streamer)
    assert NO_CONTEXT_HINT in str(caught.value)


def test_message_sequence_without_context_raises_runtime_error_naming_async_with() -> None:
    with pytest.raises(RuntimeError) as caught:
        MessageSequence()
    assert NO_CONTEXT_HINT in str(caught.value)


async def test_inquire_in_event_loop_without_context_raises_runtime_error_naming_async_with_when_awaited() -> None:
    replies = replier.inquire("x")
    with pytest.raises(RuntimeError) as caught:
        await replies.aresolve_messages()
    assert NO_CONTEXT_HINT in str(caught.value)


async def test_promise_in_event_loop_without_context_raises_runtime_error_naming_async_with() -> None:
    with pytest.raises(RuntimeError) as caught:
        Promise(prefill_result=1)
    assert NO_CONTEXT_HINT in str(caught.value)


# ======================================================================= sync functions


def test_sync_function_given_to_bare_miniagent_raises_type_error() -> None:
    def not_async(ctx: InteractionContext) -> None:
        pass

    with pytest.raises(TypeError):
        miniagent(not_async)


def test_sync_function_given_to_miniagent_decorator_with_arguments_raises_type_error() -> None:
    with pytest.raises(TypeError):

        @miniagent(alias="SYNC")
        def not_async(ctx: InteractionContext) -> None:
            pass


# ============================================================================ property


def _trees() -> st.SearchStrategy[Any]:
    """Random nested structures: strings are leaves, (kind, children) are containers."""
    leaves = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=3)
    kinds = st.sampled_from(["list", "tuple", "gen", "agen"])
    return st.recursive(
        leaves,
        lambda children: st.tuples(kinds, st.lists(children, max_size=4)),
        max_leaves=25,
    )


def _agent_trees() -> st.SearchStrategy[Any]:
    """Like _trees, plus `agent` containers: the children are replied by another agent."""
    leaves = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=3)
    kinds = st.sampled_from(["list", "tuple", "gen", "agen", "agent"])
    return st.recursive(
        leaves,
        lambda children: st.tuples(kinds, st.lists(children, max_size=4)),
        max_leaves=25,
    )


def reference_flatten(tree: Any) -> list[str]:
    if isinstance(tree, str):
        return [tree]
    _, children = tree
    return [text for child in children for text in reference_flatten(child)]


def build(tree: Any) -> Any:
    """Turn a tree into real (single-use) objects: lists, tuples, generators, agent calls."""
    if isinstance(tree, str):
        return tree
    kind, children = tree
    items = [build(child) for child in children]
    if kind == "list":
        return items
    if kind == "tuple":
        return tuple(items)
    if kind == "gen":
        return sync_gen(*items)
    if kind == "agen":
        return async_gen(*items)
    return replier.inquire(items)


@settings(max_examples=60, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_trees())
def test_random_nested_structures_flatten_like_reference(tree: Any) -> None:
    async def flatten() -> list[str]:
        async with MiniAgents():
            messages = await within(MessageSequence.aresolve_messages(build(tree)))
        return [m.text for m in messages]

    assert asyncio.run(within(flatten())) == reference_flatten(tree)


@settings(max_examples=40, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_agent_trees())
def test_random_nested_replies_with_agent_calls_flatten_like_reference(tree: Any) -> None:
    async def flatten() -> list[str]:
        async with MiniAgents():
            texts = await replied_texts(build(tree))
        return texts

    assert asyncio.run(within(flatten())) == reference_flatten(tree)


@settings(max_examples=30, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow])
@given(tree=_agent_trees())
def test_random_nested_replies_flatten_like_reference_without_start_asap(tree: Any) -> None:
    async def flatten() -> list[str]:
        async with MiniAgents(start_everything_asap_by_default=False):
            texts = await replied_texts(build(tree))
        return texts

    assert asyncio.run(within(flatten())) == reference_flatten(tree)


async def test_message_promises_in_sequence_are_message_promise_instances() -> None:
    async with MiniAgents():
        promises = await within(reply_with(["a", {"text": "b"}, Note(text="c", author="x")]))
    assert all(isinstance(p, MessagePromise) for p in promises)
