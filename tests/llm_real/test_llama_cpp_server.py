"""
The OpenAI agent against a real OpenAI-compatible server: llama.cpp serving SmolLM2-135M-Instruct, fully offline.

Nothing here depends on what the model says: the assertions are about the protocol (finish reasons, usage, tool
calls, errors) and about what the framework does with the reply (tokens, metadata, recordings), never its wording.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import openai
import pytest

from miniagents import Message, MessageSequencePromise, MiniAgent, MiniAgents
from miniagents.ext.llm import LLMIncompleteReplyError, LLMResponseCache, SystemMessage
from miniagents.ext.llm.openai import OpenAIMessage, create_openai_agent
from tests.support.llama_server import CONTEXT_TOKENS, MODEL_ALIAS, LlamaClients, LlamaServer
from tests.support.llm_agent_testing import asingle_reply, within

FINISHED = ("stop", "length")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
SECONDS = 45.0  # a bound against hangs, far above what a reply takes


def smollm(client: openai.AsyncOpenAI | None, **kwargs: Any) -> MiniAgent:
    """The OpenAI agent set up for the tiny model: short replies, greedy decoding."""
    options = {"model": MODEL_ALIAS, "max_tokens": 8, "temperature": 0, "alias": "SMOLLM", **kwargs}
    return create_openai_agent(client, **options)


async def areply(replies: MessageSequencePromise) -> tuple[list[str], OpenAIMessage]:
    tokens, message = await within(asingle_reply(replies), SECONDS)
    assert isinstance(message, OpenAIMessage)
    return tokens, message


async def aoutcome(replies: MessageSequencePromise) -> OpenAIMessage | BaseException:
    """The resolved reply, or the error that ended it."""
    try:
        return (await areply(replies))[1]
    except Exception as exc:
        return exc


# --- streaming and not ---------------------------------------------------------------------------------------


async def test_streamed_reply_arrives_in_several_tokens_and_finishes(
    llama_server: LlamaServer, llama_client: LlamaClients
) -> None:
    agent = smollm(llama_client(llama_server))
    async with MiniAgents():
        tokens, message = await areply(agent.inquire("Say hello to the team.", stream=True))
    assert len(tokens) > 1 and "".join(tokens) == message.text
    assert message.choices[0].finish_reason in FINISHED
    assert (message.role, message.agent_alias, message.model) == ("assistant", "SMOLLM", MODEL_ALIAS)


async def test_non_streamed_reply_arrives_whole_with_its_usage(
    llama_server: LlamaServer, llama_client: LlamaClients
) -> None:
    agent = smollm(llama_client(llama_server))
    async with MiniAgents():
        tokens, message = await areply(agent.inquire("Say hello to the team.", stream=False))
    assert tokens == ([message.text] if message.text else [])
    assert message.choices[0].finish_reason in FINISHED
    assert message.usage.prompt_tokens > 0 and 0 < message.usage.completion_tokens <= 8


# --- the conversation reaches the model ----------------------------------------------------------------------


async def test_system_prompt_reaches_the_model_both_as_argument_and_as_message(
    llama_server: LlamaServer, llama_client: LlamaClients
) -> None:
    agent = smollm(llama_client(llama_server), stream=False)
    long_system = "Answer briefly and politely. " * 12
    async with MiniAgents():
        _, short = await areply(agent.inquire("Hi.", system="Be brief."))
        _, long = await areply(agent.inquire("Hi.", system=long_system))
        _, as_message = await areply(agent.inquire([SystemMessage(long_system), "Hi."]))
    assert long.usage.prompt_tokens > short.usage.prompt_tokens + 40  # the long prompt was read
    assert as_message.usage.prompt_tokens == long.usage.prompt_tokens  # the same conversation either way
    assert all(reply.choices[0].finish_reason in FINISHED for reply in (short, long, as_message))


async def test_multi_turn_history_reaches_the_model(llama_server: LlamaServer, llama_client: LlamaClients) -> None:
    agent = smollm(llama_client(llama_server), stream=False)
    async with MiniAgents():
        _, first = await areply(agent.inquire("Name a fruit."))
        _, second = await areply(agent.inquire(["Name a fruit.", first, "Name another one."]))
    assert second.usage.prompt_tokens > first.usage.prompt_tokens + first.usage.completion_tokens
    assert second.choices[0].finish_reason in FINISHED


async def test_unicode_prompt_and_reply_survive_the_round_trip(
    llama_server: LlamaServer, llama_client: LlamaClients
) -> None:
    agent = smollm(llama_client(llama_server), max_tokens=16)
    prompt = "Répète: «café» — 日本語 — 🎉 — Ελληνικά — naïve"
    async with MiniAgents():
        tokens, streamed = await areply(agent.inquire(prompt, stream=True))
        _, whole = await areply(agent.inquire(prompt, stream=False))
    assert "".join(tokens) == streamed.text and "\ufffd" not in streamed.text + whole.text
    assert streamed.choices[0].finish_reason in FINISHED and whole.choices[0].finish_reason in FINISHED
    assert whole.usage.prompt_tokens > len(prompt.split())


# --- parallel agents -----------------------------------------------------------------------------------------


async def aparallel_replies(server: LlamaServer, llama_client: LlamaClients) -> list[OpenAIMessage | BaseException]:
    client = llama_client(server)
    agents = [smollm(client, alias=f"AGENT_{i}", max_tokens=24) for i in range(3)]
    async with MiniAgents():
        replies = [
            agent.inquire(f"Count from one to twenty, agent {i}.", stream=True) for i, agent in enumerate(agents)
        ]
        return await asyncio.gather(*(aoutcome(reply) for reply in replies))


async def test_parallel_agents_with_request_interruption_finish_or_fail_clearly(
    llama_server: LlamaServer, llama_client: LlamaClients
) -> None:
    # a new request makes this server cut the streaming one short: [DONE] without a finish reason
    outcomes = await aparallel_replies(llama_server, llama_client)
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, LLMIncompleteReplyError) and f"AGENT_{i}" in str(outcome), outcome
            assert outcome.agent_trace == (f"AGENT_{i}",)  # type: ignore[attr-defined]
        else:
            assert outcome.choices[0].finish_reason in FINISHED and outcome.agent_alias == f"AGENT_{i}"
    assert any(not isinstance(outcome, BaseException) for outcome in outcomes)  # the last one is never cut


async def test_parallel_agents_without_request_interruption_all_finish(
    llama_server_serial: LlamaServer, llama_client: LlamaClients
) -> None:
    outcomes = await aparallel_replies(llama_server_serial, llama_client)
    assert [type(outcome) for outcome in outcomes] == [OpenAIMessage] * 3
    assert all(outcome.choices[0].finish_reason in FINISHED for outcome in outcomes)  # type: ignore[union-attr]
    assert [outcome.agent_alias for outcome in outcomes] == ["AGENT_0", "AGENT_1", "AGENT_2"]  # type: ignore[union-attr]


# --- a prompt over the context window ------------------------------------------------------------------------


async def test_prompt_over_the_context_window_streamed_is_an_incomplete_reply_error(
    llama_server: LlamaServer, llama_client: LlamaClients
) -> None:
    agent = smollm(llama_client(llama_server))
    async with MiniAgents():
        outcome = await aoutcome(agent.inquire("word " * (CONTEXT_TOKENS + 100), stream=True))
    # this server answers 200 and ends the stream without a single chunk
    assert isinstance(outcome, LLMIncompleteReplyError) and "SMOLLM" in str(outcome) and MODEL_ALIAS in str(outcome)
    assert outcome.agent_trace == ("SMOLLM",)  # type: ignore[attr-defined]


async def test_prompt_over_the_context_window_not_streamed_is_the_servers_error(
    llama_server: LlamaServer, llama_client: LlamaClients
) -> None:
    agent = smollm(llama_client(llama_server))
    async with MiniAgents():
        outcome = await aoutcome(agent.inquire("word " * (CONTEXT_TOKENS + 100), stream=False))
    assert isinstance(outcome, openai.BadRequestError) and "context" in str(outcome)
    assert outcome.agent_trace == ("SMOLLM",)  # type: ignore[attr-defined]


# --- record, then replay with the server stopped -------------------------------------------------------------


async def aconversation(agent: MiniAgent) -> tuple[list[Message], list[list[str]]]:
    history: list[Any] = []
    messages: list[Message] = []
    chunks: list[list[str]] = []
    for turn, stream in (("Name a colour.", True), ("And another one?", True), ("Thanks.", False)):
        history.append(turn)
        tokens, message = await areply(agent.inquire(list(history), stream=stream))
        history.append(message)
        messages.append(message)
        chunks.append(tokens)
    return messages, chunks


async def test_recorded_conversation_replays_identically_with_the_server_stopped(
    private_llama_server: LlamaServer, llama_client: LlamaClients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = smollm(llama_client(private_llama_server), response_cache=LLMResponseCache(tmp_path, mode="record"))
    async with MiniAgents():
        recorded, recorded_chunks = await aconversation(recorder)
    private_llama_server.stop()
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    replayer = smollm(None, response_cache=LLMResponseCache(tmp_path, mode="replay"))
    async with MiniAgents():
        replayed, replayed_chunks = await aconversation(replayer)
    assert replayed_chunks == recorded_chunks and len(recorded_chunks[0]) > 1
    assert replayed == recorded and [m.hash_key for m in replayed] == [m.hash_key for m in recorded]


# --- a tool call forced with tool_choice ---------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_tool_call_forced_with_tool_choice_arrives_and_its_result_is_accepted(
    llama_server: LlamaServer, llama_client: LlamaClients, stream: bool
) -> None:
    agent = smollm(llama_client(llama_server), max_tokens=48, stream=stream)
    question = "What is the weather in Paris?"
    async with MiniAgents():
        _, call_message = await areply(agent.inquire(question, tools=[WEATHER_TOOL], tool_choice=FORCE_WEATHER))
        choice = call_message.choices[0]
        (call,) = choice.message.tool_calls
        assert choice.finish_reason == "tool_calls" and call.function.name == "get_weather"
        assert isinstance(json.loads(call.function.arguments), dict)  # the server constrains it to JSON
        # the assistant message with tool calls goes back with `content: ""`: this server rejects null
        result = Message("18 C and sunny", role="tool", tool_call_id=call.id)
        _, answer = await areply(agent.inquire([question, call_message, result]))
    assert answer.choices[0].finish_reason in FINISHED
