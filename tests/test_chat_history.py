"""InMemoryChatHistory and the logging agent of a chat history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from miniagents import InteractionContext, Message, MiniAgents, miniagent
from miniagents.chat_history import ChatHistory, InMemoryChatHistory
from miniagents.ext.llm.llm_common import UserMessage
from miniagents.promising.promising import StreamAppender


def test_chat_history_is_abstract() -> None:
    with pytest.raises(TypeError):
        ChatHistory()  # type: ignore[abstract]


async def test_in_memory_history_starts_empty_or_with_given_messages() -> None:
    assert await InMemoryChatHistory().aload_chat_history() == ()
    first = Message("earlier", role="user")
    assert await InMemoryChatHistory([first]).aload_chat_history() == (first,)


async def test_in_memory_history_keeps_logged_messages_in_order() -> None:
    history = InMemoryChatHistory()
    messages = [UserMessage("one"), Message("two", role="assistant", model="m"), UserMessage("three")]
    for message in messages:
        await history.alog_message(message)
    assert await history.aload_chat_history() == tuple(messages)


async def test_alog_messages_resolves_any_message_type_in_order() -> None:
    history = InMemoryChatHistory()
    async with MiniAgents():
        logged = await history.alog_messages(["a", {"text": "b", "role": "user"}, [Message("c")]])
    assert [message.text for message in logged] == ["a", "b", "c"]
    assert await history.aload_chat_history() == logged


async def test_alog_messages_keeps_messages_before_an_error() -> None:
    history = InMemoryChatHistory()
    async with MiniAgents():
        with pytest.raises(ValueError, match="broken"):
            await history.alog_messages(["kept", ValueError("broken"), "never logged"])
    assert [message.text for message in await history.aload_chat_history()] == ["kept"]


async def test_logging_agent_replies_with_the_same_messages_and_records_them() -> None:
    history = InMemoryChatHistory()
    async with MiniAgents():
        sent = (UserMessage("hi"), Message("hello", role="assistant"))
        replies = await history.logging_agent.inquire(sent).aresolve_messages()
        assert replies == sent
    assert await history.aload_chat_history() == sent


async def test_logging_agent_sits_in_a_chain_between_agents() -> None:
    history = InMemoryChatHistory()

    @miniagent
    async def shout(ctx: InteractionContext) -> None:
        async for message_promise in ctx.messages:
            ctx.reply(str(await message_promise).upper())

    @miniagent
    async def count(ctx: InteractionContext) -> None:
        ctx.reply(f"{len(await ctx.messages.aresolve_messages())} messages")

    async with MiniAgents():
        result = await count.inquire(history.logging_agent.inquire(shout.inquire(["a", "b"]))).aresolve_messages()
    assert [message.text for message in result] == ["2 messages"]
    assert [message.text for message in await history.aload_chat_history()] == ["A", "B"]


async def test_logging_agent_passes_tokens_on_before_the_message_is_complete() -> None:
    history = InMemoryChatHistory()
    tokens = StreamAppender[str](capture_errors=True).open()

    async def token_streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        async for token in tokens:
            yield token

    async with MiniAgents():
        streaming = Message.promise(message_token_streamer=token_streamer, role="assistant")
        replies = history.logging_agent.inquire(streaming)
        tokens.append("first ")
        reply_iterator = aiter(await anext(aiter(replies)))
        assert await anext(reply_iterator) == "first "  # the second token is not even appended yet
        assert await history.aload_chat_history() == ()
        tokens.append("second")
        tokens.close()
        await replies.aresolve_messages()
    assert [message.text for message in await history.aload_chat_history()] == ["first second"]
