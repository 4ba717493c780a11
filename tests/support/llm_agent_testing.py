"""Helpers for the LLM agent tests: real SDK clients pointed at LLMWireServer, and reading reply sequences."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable
from typing import Any, TypeVar

import anthropic
import openai

from miniagents import Message, MessageSequencePromise

from .llm_wire_server import LLMWireServer

T = TypeVar("T")
API_KEY = "sk-test-9f3c1e7a-not-a-real-key"


async def within(awaitable: Awaitable[T], seconds: float = 10.0) -> T:
    """Fail instead of hanging."""
    return await asyncio.wait_for(awaitable, seconds)


async def assert_no_task_left() -> None:
    """
    No task is left but the current one.

    Async generators that the SDKs drop unclosed (openai's `AsyncStream._iter_events` after `[DONE]`) are
    closed by asyncio itself, in `aclose()` tasks started whenever the garbage collector reaches them.
    Those are not ours: collect them now and let them finish; any other task fails the check.
    """
    gc.collect()
    await asyncio.sleep(0)
    left = asyncio.all_tasks() - {asyncio.current_task()}
    finalizers = {task for task in left if type(task.get_coro()).__name__ == "async_generator_athrow"}
    assert left == finalizers, left - finalizers
    if finalizers:
        await within(asyncio.gather(*finalizers, return_exceptions=True))


class SDKClients:
    """Makes async SDK clients pointed at the server; `await aclose()` them inside the test's loop."""

    def __init__(self, server: LLMWireServer) -> None:
        self.server = server
        self.made: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []

    def openai(self, **kwargs: Any) -> openai.AsyncOpenAI:
        options = {"api_key": API_KEY, "base_url": self.server.openai_base_url, "timeout": 5.0, **kwargs}
        client = openai.AsyncOpenAI(**options)
        self.made.append(client)
        return client

    def anthropic(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        options = {"api_key": API_KEY, "base_url": self.server.anthropic_base_url, "timeout": 5.0, **kwargs}
        client = anthropic.AsyncAnthropic(**options)
        self.made.append(client)
        return client

    async def aclose(self) -> None:
        for client in self.made:
            await client.close()


async def aread_replies(replies: MessageSequencePromise) -> tuple[list[list[str]], BaseException | None]:
    """The token chunks of each reply message, and the error that ended the reading (None if none)."""
    chunks: list[list[str]] = []
    try:
        async for message_promise in replies:
            chunks.append([])
            async for token in message_promise:
                chunks[-1].append(token)
    except Exception as exc:
        return chunks, exc
    return chunks, None


async def asingle_reply(replies: MessageSequencePromise) -> tuple[list[str], Message]:
    """The token chunks and the resolved message of a reply sequence that holds exactly one message."""
    promises = await within(replies)
    assert len(promises) == 1
    tokens = [token async for token in promises[0]]
    return tokens, await promises[0]
