"""Acceptance tests for miniagents.utils (SPEC 3.11): chain and dialog loops, join and split."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from miniagents import AWAIT, CLEAR, InteractionContext, Message, MessagePromise, MiniAgent, MiniAgents, miniagent
from miniagents.utils import achain_loop, adialog_loop, join_messages, split_messages

TIMEOUT = 5.0
# Hypothesis without shrinking: if the implementation hangs, every shrink step would wait for a timeout.
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


async def within(awaitable: Any, seconds: float = TIMEOUT) -> Any:
    """Fail instead of hanging."""
    return await asyncio.wait_for(awaitable, seconds)


async def within_same_task(awaitable: Any, seconds: float = TIMEOUT) -> Any:
    """Fail instead of hanging, without moving the await into another task (KeyboardInterrupt would escape)."""
    if not hasattr(asyncio, "timeout"):  # Python 3.10: no same-task timeout; pytest-timeout bounds the test
        return await awaitable
    async with asyncio.timeout(seconds):
        return await awaitable


class LoopEnded(Exception):
    pass


def counting_agent(name: str, calls: list[tuple[str, list[str]]], fail_on_call: int) -> MiniAgent:
    """An agent that records (name, input texts) per call, replies `<name> <n>`, and raises on call N."""

    async def count(ctx: InteractionContext) -> None:
        texts = [m.text for m in await ctx.messages.aresolve_messages()]
        calls.append((name, texts))
        own_calls = sum(1 for called, _ in calls if called == name)
        if own_calls == fail_on_call:
            raise LoopEnded(f"{name} stops on call {own_calls}")
        ctx.reply(f"{name} {own_calls}")

    return miniagent(count, alias=name)


def streamed(tokens: Sequence[str], **metadata: Any) -> MessagePromise:
    """A message promise that streams `tokens`, switching tasks between them."""

    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        for token in tokens:
            await asyncio.sleep(0)
            yield token

    return Message.promise(message_token_streamer=streamer, **metadata)


async def split_texts(messages: Any, **kwargs: Any) -> list[str]:
    return [m.text for m in await within(split_messages(messages, **kwargs).aresolve_messages())]


# ========================================================================= achain_loop


async def test_achain_loop_without_await_raises_value_error_up_front() -> None:
    calls: list[tuple[str, list[str]]] = []
    agent = counting_agent("A", calls, fail_on_call=3)
    async with MiniAgents():
        with pytest.raises(ValueError):
            await within(achain_loop([agent, CLEAR, agent], initial_input="x"))
        await asyncio.sleep(0)
    assert calls == []


async def test_achain_loop_without_await_raises_value_error_before_first_await() -> None:
    calls: list[tuple[str, list[str]]] = []
    agent = counting_agent("A", calls, fail_on_call=3)
    async with MiniAgents():
        coroutine = achain_loop([agent])
        with pytest.raises(ValueError):
            coroutine.send(None)
        coroutine.close()
    assert calls == []


async def test_achain_loop_passes_replies_from_agent_to_agent_until_one_raises() -> None:
    calls: list[tuple[str, list[str]]] = []
    first = counting_agent("FIRST", calls, fail_on_call=3)
    second = counting_agent("SECOND", calls, fail_on_call=99)
    async with MiniAgents():
        with pytest.raises(LoopEnded, match="FIRST stops on call 3"):
            await within(achain_loop([first, AWAIT, second, AWAIT], initial_input="start"))
    assert calls == [
        ("FIRST", ["start"]),
        ("SECOND", ["FIRST 1"]),
        ("FIRST", ["SECOND 1"]),
        ("SECOND", ["FIRST 2"]),
        ("FIRST", ["SECOND 2"]),
    ]


async def test_achain_loop_passes_awaited_replies_to_plain_callables() -> None:
    calls: list[tuple[str, list[str]]] = []
    seen: list[Any] = []
    counter = counting_agent("COUNTER", calls, fail_on_call=3)

    def shout(replies: Any) -> list[str]:
        seen.append(replies)
        return [message.text.upper() for message in replies]

    async with MiniAgents():
        with pytest.raises(LoopEnded):
            await within(achain_loop([counter, AWAIT, shout], initial_input="go"))
    assert calls == [("COUNTER", ["go"]), ("COUNTER", ["COUNTER 1"]), ("COUNTER", ["COUNTER 2"])]
    assert all(isinstance(message, Message) for replies in seen for message in replies)


async def test_achain_loop_await_resolves_replies_before_next_step() -> None:
    calls: list[tuple[str, list[str]]] = []
    finished: list[str] = []
    checks: list[bool] = []
    counter = counting_agent("COUNTER", calls, fail_on_call=2)

    @miniagent
    async def slow(ctx: InteractionContext) -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        ctx.reply("slow done")
        finished.append("slow")

    def check(replies: Any) -> Any:
        checks.append(bool(finished))
        return replies

    async with MiniAgents():
        with pytest.raises(LoopEnded):
            await within(achain_loop([slow, AWAIT, check, counter, AWAIT]))
    assert checks and all(checks)
    assert calls[0] == ("COUNTER", ["slow done"])


async def test_achain_loop_clear_drops_previous_replies() -> None:
    calls: list[tuple[str, list[str]]] = []
    counter = counting_agent("COUNTER", calls, fail_on_call=3)
    fresh = counting_agent("FRESH", calls, fail_on_call=99)
    async with MiniAgents():
        with pytest.raises(LoopEnded):
            await within(achain_loop([counter, AWAIT, CLEAR, fresh, AWAIT], initial_input="go"))
    assert calls == [
        ("COUNTER", ["go"]),
        ("FRESH", []),
        ("COUNTER", ["FRESH 1"]),
        ("FRESH", []),
        ("COUNTER", ["FRESH 2"]),
    ]


async def test_achain_loop_ends_when_plain_callable_raises() -> None:
    calls: list[tuple[str, list[str]]] = []
    counter = counting_agent("COUNTER", calls, fail_on_call=99)

    def stop_on_second(replies: Any) -> Any:
        if len(calls) == 2:
            raise LoopEnded("callable stops")
        return replies

    async with MiniAgents():
        with pytest.raises(LoopEnded, match="callable stops"):
            await within(achain_loop([counter, AWAIT, stop_on_second], initial_input="go"))
    assert len(calls) == 2


# ======================================================================== adialog_loop


async def test_adialog_loop_alternates_user_and_assistant_until_one_raises() -> None:
    calls: list[tuple[str, list[str]]] = []
    user = counting_agent("USER", calls, fail_on_call=3)
    assistant = counting_agent("ASSISTANT", calls, fail_on_call=99)
    async with MiniAgents():
        with pytest.raises(LoopEnded, match="USER stops on call 3"):
            await within(adialog_loop(user, assistant))
    assert calls == [
        ("USER", []),
        ("ASSISTANT", ["USER 1"]),
        ("USER", ["ASSISTANT 1"]),
        ("ASSISTANT", ["USER 2"]),
        ("USER", ["ASSISTANT 2"]),
    ]


async def test_adialog_loop_ends_when_assistant_raises() -> None:
    calls: list[tuple[str, list[str]]] = []
    user = counting_agent("USER", calls, fail_on_call=99)
    assistant = counting_agent("ASSISTANT", calls, fail_on_call=2)
    async with MiniAgents():
        with pytest.raises(LoopEnded, match="ASSISTANT stops on call 2"):
            await within(adialog_loop(user, assistant))
    assert [name for name, _ in calls] == ["USER", "ASSISTANT", "USER", "ASSISTANT"]


async def test_adialog_loop_streams_assistant_reply_into_user_agent() -> None:
    tokens_seen: list[list[str]] = []

    @miniagent
    async def user(ctx: InteractionContext) -> None:
        for message_promise in [mp async for mp in ctx.messages]:
            tokens_seen.append([token async for token in message_promise])
        if len(tokens_seen) == 1:
            raise LoopEnded("enough")
        ctx.reply("question")

    @miniagent
    async def assistant(ctx: InteractionContext) -> None:
        ctx.reply(streamed(["an", "s", "wer"]))

    async with MiniAgents():
        with pytest.raises(LoopEnded):
            await within(adialog_loop(user, assistant))
    assert tokens_seen == [["an", "s", "wer"]]


def test_adialog_loop_ends_cleanly_when_agent_raises_keyboard_interrupt_in_script() -> None:
    calls: list[tuple[str, list[str]]] = []
    assistant = counting_agent("ASSISTANT", calls, fail_on_call=99)

    @miniagent
    async def user(ctx: InteractionContext) -> None:
        if calls:
            raise KeyboardInterrupt
        calls.append(("USER", []))
        ctx.reply("hi")

    async def amain() -> str:
        try:
            await within_same_task(adialog_loop(user, assistant))
        except KeyboardInterrupt:
            return "ended cleanly"
        return "loop returned"

    try:
        result = MiniAgents().run(amain())
    except KeyboardInterrupt:  # caught here so that pytest itself is not interrupted
        pytest.fail("KeyboardInterrupt raised in an agent escaped MiniAgents().run() past adialog_loop's caller")
    assert result == "ended cleanly"
    assert [name for name, _ in calls] == ["USER", "ASSISTANT"]


def test_adialog_loop_ends_cleanly_when_agent_replies_keyboard_interrupt_in_script() -> None:
    calls: list[tuple[str, list[str]]] = []
    assistant = counting_agent("ASSISTANT", calls, fail_on_call=99)

    @miniagent
    async def user(ctx: InteractionContext) -> None:
        if calls:
            ctx.reply(KeyboardInterrupt("the user ended the chat"))
            return
        calls.append(("USER", []))
        ctx.reply("hi")

    async def amain() -> str:
        try:
            await within_same_task(adialog_loop(user, assistant))
        except KeyboardInterrupt:
            return "ended cleanly"
        return "loop returned"

    try:
        result = MiniAgents().run(amain())
    except KeyboardInterrupt:  # caught here so that pytest itself is not interrupted
        pytest.fail("KeyboardInterrupt escaped MiniAgents().run() past adialog_loop's caller")
    assert result == "ended cleanly"


# ======================================================================= join_messages


async def test_join_messages_uses_blank_line_delimiter_by_default() -> None:
    async with MiniAgents():
        joined = await within(join_messages(["a", "b", "c"]))
    assert joined.text == "a\n\nb\n\nc"


async def test_join_messages_uses_custom_delimiter() -> None:
    async with MiniAgents():
        joined = await within(join_messages(["a", "b", "c"], delimiter=" | "))
    assert joined.text == "a | b | c"


async def test_join_messages_strips_leading_newlines_when_asked() -> None:
    async with MiniAgents():
        joined = await within(join_messages(["\n\nfirst", "\nsecond"], delimiter="|", strip_leading_newlines=True))
    assert joined.text == "first|second"


async def test_join_messages_keeps_leading_newlines_by_default() -> None:
    async with MiniAgents():
        joined = await within(join_messages(["\nfirst", "second"], delimiter="|"))
    assert joined.text == "\nfirst|second"


async def test_join_messages_strips_leading_newlines_split_across_tokens() -> None:
    async with MiniAgents():
        joined = await within(
            join_messages([streamed(["\n", "\n", "te", "xt"]), "b"], delimiter="|", strip_leading_newlines=True)
        )
    assert joined.text == "text|b"


async def test_join_messages_references_original_messages() -> None:
    originals = (Message("a", role="user"), Message("b"))
    async with MiniAgents():
        joined = await within(join_messages(originals))
    assert tuple(joined.original_messages) == originals
    assert joined.original_messages[0] is originals[0]


async def test_join_messages_without_reference_has_no_original_messages() -> None:
    async with MiniAgents():
        joined = await within(join_messages(["a", "b"], reference_original_messages=False))
    assert "original_messages" not in dict(joined.frozen_fields_and_values())


async def test_join_messages_adds_message_metadata() -> None:
    async with MiniAgents():
        joined = await within(join_messages(["a", "b"], role="assistant", model="m"))
    assert (joined.role, joined.model) == ("assistant", "m")


async def test_join_messages_streams_tokens_of_streamed_messages() -> None:
    async with MiniAgents():
        promise = join_messages([streamed(["He", "llo"]), streamed(["wor", "ld"])], delimiter=" ")
        tokens = await within(_tokens(promise))
    assert "".join(tokens) == "Hello world"
    assert len(tokens) >= 4


async def test_join_messages_metadata_readable_before_tokens() -> None:
    gate = asyncio.Event()

    async def gated(_: dict[str, Any]) -> AsyncIterator[str]:
        await gate.wait()
        yield "late"

    async with MiniAgents():
        promise = join_messages([Message.promise(message_token_streamer=gated)], role="assistant")
        assert promise.preliminary_metadata.role == "assistant"
        gate.set()
        assert (await within(promise)).text == "late"


async def test_join_messages_of_agent_replies() -> None:
    @miniagent
    async def talker(ctx: InteractionContext) -> None:
        ctx.reply(["one", "two"])

    async with MiniAgents():
        joined = await within(join_messages(talker.inquire(), delimiter=", "))
    assert joined.text == "one, two"


async def test_join_messages_fails_when_one_message_fails() -> None:
    async def broken(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "part"
        raise LoopEnded("message broke")

    async with MiniAgents():
        joined = join_messages(["a", Message.promise(message_token_streamer=broken), "c"])
        with pytest.raises(LoopEnded, match="message broke"):
            await within(joined)


async def _tokens(promise: MessagePromise) -> list[str]:
    return [token async for token in promise]


# ====================================================================== split_messages


async def test_split_messages_gives_one_message_per_paragraph() -> None:
    async with MiniAgents():
        texts = await split_texts("first paragraph\nstill first\n\nsecond\n\nthird")
    assert texts == ["first paragraph\nstill first", "second", "third"]


async def test_split_messages_drops_extra_blank_lines_between_paragraphs() -> None:
    async with MiniAgents():
        texts = await split_texts("\n\none\n\n\n\ntwo\n\n")
    assert texts == ["one", "two"]


async def test_split_messages_keeps_fenced_code_block_whole() -> None:
    text = "Intro:\n\n```python\nx = 1\n\n\ny = 2\n```\n\nOutro."
    async with MiniAgents():
        texts = await split_texts(text)
    assert texts == ["Intro:", "```python\nx = 1\n\n\ny = 2\n```", "Outro."]


async def test_split_messages_uses_custom_delimiter() -> None:
    async with MiniAgents():
        texts = await split_texts("a---b---c", delimiter="---")
    assert texts == ["a", "b", "c"]


async def test_split_messages_adds_metadata_to_each_paragraph() -> None:
    async with MiniAgents():
        messages = await within(split_messages("a\n\nb", role="assistant").aresolve_messages())
    assert [(m.text, m.role) for m in messages] == [("a", "assistant"), ("b", "assistant")]


async def test_split_messages_streams_first_paragraph_before_text_ends() -> None:
    gate = asyncio.Event()

    async def gated(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "first para"
        yield "graph\n\nsec"
        await gate.wait()
        yield "ond"

    async with MiniAgents():
        paragraphs = split_messages(Message.promise(message_token_streamer=gated))
        first = await within(anext(aiter(paragraphs)))
        assert (await within(first)).text == "first paragraph"
        gate.set()
        assert [m.text for m in await within(paragraphs.aresolve_messages())] == ["first paragraph", "second"]


async def test_split_messages_reads_several_messages_as_joined_by_delimiter() -> None:
    @miniagent
    async def talker(ctx: InteractionContext) -> None:
        ctx.reply(["p1\n\np2", "p3"])

    async with MiniAgents():
        assert await split_texts(talker.inquire()) == ["p1", "p2", "p3"]


async def test_split_messages_source_error_reaches_sequence_consumer() -> None:
    async def broken(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "done paragraph\n\nunfinished"
        await asyncio.sleep(0)
        raise LoopEnded("source broke")

    async with MiniAgents():
        paragraphs = split_messages(Message.promise(message_token_streamer=broken))
        with pytest.raises(LoopEnded, match="source broke"):
            await within(paragraphs.aresolve_messages())
        first = await within(anext(aiter(paragraphs)))
        assert (await within(first)).text == "done paragraph"


async def test_split_messages_of_streamed_tokens_matches_whole_text_for_example() -> None:
    text = "alpha\n\n``" + "`code\n\n``" + "`\n\nomega"
    tokens = ["al", "pha\n", "\n`", "``co", "de\n", "\n`", "`", "`\n", "\no", "mega"]
    assert "".join(tokens) == text
    async with MiniAgents():
        assert await split_texts(streamed(tokens)) == await split_texts(text)


@st.composite
def texts_and_cuts(draw: st.DrawFn) -> tuple[str, list[str]]:
    parts = draw(st.lists(st.sampled_from(["word", "two words", " ", "x", "\n", "\n\n", "```", "`"]), max_size=25))
    text = "".join(parts)
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=max(len(text) - 1, 1)), max_size=12)))
    bounds = [0, *[c for c in cuts if c < len(text)], len(text)]
    tokens = [text[start:end] for start, end in itertools.pairwise(bounds) if end > start]
    return text, tokens


@settings(max_examples=150, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow])
@given(case=texts_and_cuts())
def test_split_messages_of_streamed_tokens_matches_split_of_whole_text(case: tuple[str, list[str]]) -> None:
    text, tokens = case
    assert "".join(tokens) == text

    async def both() -> tuple[list[str], list[str]]:
        async with MiniAgents():
            return await split_texts(streamed(tokens)), await split_texts(text)

    from_tokens, from_whole = asyncio.run(within(both()))
    assert from_tokens == from_whole


@settings(max_examples=60, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow])
@given(case=texts_and_cuts())
def test_split_messages_paragraph_tokens_join_to_paragraph_text(case: tuple[str, list[str]]) -> None:
    _, tokens = case

    async def paragraphs() -> list[tuple[str, str]]:
        async with MiniAgents():
            result = []
            async for paragraph in split_messages(streamed(tokens)):
                joined = "".join([token async for token in paragraph])
                result.append((joined, (await paragraph).text))
            return result

    for joined, text in asyncio.run(within(paragraphs())):
        assert joined == text
