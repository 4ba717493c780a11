"""MessagePromise's `message_class` hook (SPEC 3.8): any callable building the resolved message from its tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from miniagents import Message, MessagePromise, MiniAgents

TIMEOUT = 5.0


class Checked(Message):
    checked: bool = True


async def three_tokens(_: dict[str, Any]) -> AsyncIterator[str]:
    for token in ("a", "b", "c"):
        await asyncio.sleep(0)
        yield token


async def test_message_class_callable_builds_resolved_message_from_metadata_and_joined_tokens() -> None:
    seen: list[dict[str, Any]] = []

    def build(**fields: Any) -> Message:
        seen.append(fields)
        return Checked(**fields) if fields["text"] == "abc" else Message(**fields)

    async with MiniAgents():
        promise = MessagePromise(message_token_streamer=three_tokens, message_class=build, role="assistant")
        tokens = await asyncio.wait_for(_tokens(promise), TIMEOUT)
        message = await asyncio.wait_for(promise, TIMEOUT)
    assert tokens == ["a", "b", "c"]
    assert seen == [{"role": "assistant", "text": "abc"}]
    assert type(message) is Checked
    assert (message.text, message.role) == ("abc", "assistant")


async def test_message_class_callable_that_raises_fails_the_promise_with_its_error() -> None:
    def refuse(**fields: Any) -> Message:
        raise ValueError(f"refused {fields['text']!r}")

    async with MiniAgents():
        promise = MessagePromise(message_token_streamer=three_tokens, message_class=refuse)
        with pytest.raises(ValueError, match="refused 'abc'"):
            await asyncio.wait_for(promise, TIMEOUT)


async def _tokens(promise: MessagePromise) -> list[str]:
    return [token async for token in promise]
