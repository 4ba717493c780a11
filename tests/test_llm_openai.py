"""create_openai_agent with the real `openai` SDK against the loopback wire-protocol server (SPEC §4)."""

from __future__ import annotations

import json
import sys

import openai
import pytest

from miniagents import Message, MiniAgents
from miniagents.ext.llm import SystemMessage, UserMessage
from miniagents.ext.llm.openai import DEFAULT_OPENAI_MODEL, OpenAIMessage, create_openai_agent
from tests.support.llm_agent_testing import (
    API_KEY,
    SDKClients,
    aread_replies,
    asingle_reply,
    assert_no_task_left,
    within,
)
from tests.support.llm_wire_server import Fault, LLMWireServer, Reply, ToolCall, Usage

WEATHER = ToolCall("get_weather", {"city": "Paris"}, id="call_1", chunks=['{"city": ', '"Paris"}'])
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.mark.parametrize("stream", [True, False])
async def test_reply_streams_tokens_and_resolves_provider_fields(
    server: LLMWireServer, clients: SDKClients, stream: bool
) -> None:
    server.enqueue(Reply(tokens=["Hel", "lo", "!"], usage=Usage(7, 3)))
    agent = create_openai_agent(clients.openai())
    async with MiniAgents():
        replies = agent.inquire("say hello", stream=stream)
        promises = await within(replies)
        metadata = promises[0].preliminary_metadata
        assert (metadata.role, metadata.model, metadata.agent_alias) == ("assistant", "gpt-4o-mini", "OPENAI_AGENT")
        tokens, message = await asingle_reply(replies)
    assert tokens == (["Hel", "lo", "!"] if stream else ["Hello!"])
    assert isinstance(message, OpenAIMessage) and message.text == "Hello!"
    assert (message.role, message.model, message.agent_alias) == ("assistant", "gpt-4o-mini", "OPENAI_AGENT")
    assert message.choices[0].finish_reason == "stop"
    assert message.choices[0].message.content == "Hello!"
    assert (message.usage.prompt_tokens, message.usage.completion_tokens) == (7, 3)
    assert message.id == "chatcmpl-wire000001" and message.object == "chat.completion"
    body = server.requests[0].body
    assert body["model"] == "gpt-4o-mini" and body["messages"] == [{"role": "user", "content": "say hello"}]
    assert bool(body.get("stream")) is stream


@pytest.mark.parametrize("system", [None, "Be brief."])
@pytest.mark.parametrize("stream", [True, False])
async def test_system_argument_and_system_messages_are_sent_in_order(
    server: LLMWireServer, clients: SDKClients, stream: bool, system: str | None
) -> None:
    agent = create_openai_agent(clients.openai())
    async with MiniAgents():
        replies = agent.inquire([SystemMessage("Rules."), UserMessage("echo me")], system=system, stream=stream)
        tokens, message = await asingle_reply(replies)
    assert "".join(tokens) == message.text == "echo me"  # the server echoes the last user message
    assert server.requests[0].body["messages"] == [
        *([{"role": "system", "content": system}] if system else []),
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "echo me"},
    ]


async def test_stream_default_comes_from_the_context(server: LLMWireServer, clients: SDKClients) -> None:
    agent = create_openai_agent(clients.openai())
    async with MiniAgents(stream_llm_tokens_by_default=False):
        tokens, _ = await asingle_reply(agent.inquire("one two three"))
    assert tokens == ["one two three"] and "stream" not in server.requests[0].body


async def test_provider_parameters_pass_through_and_create_time_defaults_apply(
    server: LLMWireServer, clients: SDKClients
) -> None:
    agent = create_openai_agent(clients.openai(), model="gpt-4o", temperature=0.5)
    async with MiniAgents():
        await asingle_reply(agent.inquire("hi", max_tokens=12, seed=7, stream=False))
        await asingle_reply(agent.inquire("hi", temperature=0.0))  # call-time kwargs override defaults
    first, second = (request.body for request in server.requests)
    assert (first["model"], first["temperature"], first["max_tokens"], first["seed"]) == ("gpt-4o", 0.5, 12, 7)
    assert second["temperature"] == 0.0 and second["stream_options"] == {"include_usage": True}


async def test_stream_options_none_sends_no_stream_options(server: LLMWireServer, clients: SDKClients) -> None:
    async with MiniAgents():
        tokens, message = await asingle_reply(create_openai_agent(clients.openai()).inquire("hi", stream_options=None))
    assert tokens == ["hi"] and message.usage is None and "stream_options" not in server.requests[0].body


async def test_default_model_applies(server: LLMWireServer, clients: SDKClients) -> None:
    async with MiniAgents():
        _, message = await asingle_reply(create_openai_agent(clients.openai()).inquire("hi"))
    assert DEFAULT_OPENAI_MODEL == "gpt-4o-mini" == server.requests[0].body["model"] == message.model


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_calls_are_visible_in_the_resolved_message(
    server: LLMWireServer, clients: SDKClients, stream: bool
) -> None:
    server.enqueue(Reply(tokens=["Checking."], tool_calls=[WEATHER]))
    agent = create_openai_agent(clients.openai())
    async with MiniAgents():
        _, message = await asingle_reply(agent.inquire("weather?", tools=[WEATHER_TOOL], stream=stream))
    assert server.requests[0].body["tools"] == [WEATHER_TOOL]
    choice = message.choices[0]
    assert choice.finish_reason == "tool_calls" and message.text == "Checking."
    call = choice.message.tool_calls[0]
    assert (call.id, call.type, call.function.name) == ("call_1", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}


async def test_tool_call_round_trip_sends_tool_calls_and_tool_results_back(
    server: LLMWireServer, clients: SDKClients
) -> None:
    server.enqueue(Reply(tool_calls=[WEATHER]), Reply(tokens=["Sunny."]))
    agent = create_openai_agent(clients.openai())
    async with MiniAgents():
        _, call_message = await asingle_reply(agent.inquire("weather?", tools=[WEATHER_TOOL]))
        tool_result = Message("18 C, sunny", role="tool", tool_call_id="call_1")
        await asingle_reply(agent.inquire(["weather?", call_message, tool_result], tools=[WEATHER_TOOL]))
    sent = server.requests[1].body["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["content"] == ""
    assert sent[1]["tool_calls"][0]["id"] == "call_1"
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"}


async def test_reply_metadata_from_creation_and_call_are_merged(server: LLMWireServer, clients: SDKClients) -> None:
    agent = create_openai_agent(clients.openai(), reply_metadata={"team": "red", "turn": 0})
    async with MiniAgents():
        replies = agent.inquire("hi", reply_metadata={"turn": 1})
        promises = await within(replies)
        assert (promises[0].preliminary_metadata.team, promises[0].preliminary_metadata.turn) == ("red", 1)
        _, message = await asingle_reply(replies)
    assert (message.team, message.turn) == ("red", 1)


async def test_multi_turn_history_keeps_roles(server: LLMWireServer, clients: SDKClients) -> None:
    agent = create_openai_agent(clients.openai())
    async with MiniAgents():
        _, first = await asingle_reply(agent.inquire("first question"))
        await asingle_reply(agent.inquire(["first question", first, "second question"]))
    assert server.requests[1].body["messages"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first question"},
        {"role": "user", "content": "second question"},
    ]


# --- faults: every one reaches the consumer, tokens before it stay readable, nothing is left running ------


@pytest.mark.parametrize(
    ("fault", "stream", "expected_tokens", "error_type"),
    [
        (Fault.http_status(429, retry_after=0.01), True, [], openai.RateLimitError),
        (Fault.http_status(500), False, [], openai.InternalServerError),
        (Fault.drop_after(["partial ", "text"]), True, ["partial ", "text"], openai.APIConnectionError),
        (Fault.drop_after(), False, [], openai.APIConnectionError),
        (Fault.malformed_event(["ok"]), True, ["ok"], ValueError),
        (Fault.stall(["wait"]), True, ["wait"], openai.APITimeoutError),
        (Fault.stall(), False, [], openai.APITimeoutError),
    ],
    ids=["429", "500", "drop-stream", "drop-json", "malformed", "stall-stream", "stall-json"],
)
async def test_fault_reaches_the_consumer_after_the_tokens_before_it(
    server: LLMWireServer,
    clients: SDKClients,
    fault: Fault,
    stream: bool,
    expected_tokens: list[str],
    error_type: type[BaseException],
) -> None:
    server.enqueue(fault)
    agent = create_openai_agent(clients.openai(max_retries=0, timeout=0.5))
    async with MiniAgents():
        replies = agent.inquire("hi", stream=stream)
        chunks, error = await within(aread_replies(replies))
        assert isinstance(error, error_type)
        assert chunks == [expected_tokens]
        promise = (await replies)[0]
        replayed: list[str] = []
        with pytest.raises(error_type):  # a second reader sees the same tokens, then the same error
            async for token in promise:
                replayed.append(token)
        assert replayed == expected_tokens
        with pytest.raises(error_type):
            await replies.aresolve_messages()
    await assert_no_task_left()


async def test_429_is_retried_visibly_then_succeeds(server: LLMWireServer, clients: SDKClients) -> None:
    server.enqueue(Fault.http_status(429, retry_after=0.01), Reply(tokens=["ok"]))
    agent = create_openai_agent(clients.openai(max_retries=2))
    async with MiniAgents():
        tokens, message = await asingle_reply(agent.inquire("hi"))
    assert tokens == ["ok"] and message.choices[0].finish_reason == "stop"
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == ["0", "1"]
    await assert_no_task_left()


# --- the SDK's own settings, compatible servers, missing key / SDK ------------------------------------------


async def test_client_is_created_lazily_from_the_sdk_environment(
    server: LLMWireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agent = create_openai_agent()  # no key yet: defining the agent must work (e.g. at module level)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    async with MiniAgents():
        tokens, _ = await asingle_reply(agent.inquire("from the environment"))
    assert tokens == ["from", " the", " environment"]
    assert server.requests[0].api_key == API_KEY
    await assert_no_task_left()


async def test_missing_key_reaches_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    agent = create_openai_agent()
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire("hi")))
    assert chunks == [[]] and isinstance(error, openai.OpenAIError) and "OPENAI_API_KEY" in str(error)


async def test_openai_compatible_server_without_v1_prefix(server: LLMWireServer, clients: SDKClients) -> None:
    client = clients.openai(base_url=server.openai_base_url.removesuffix("/v1"))
    agent = create_openai_agent(client, model="llama3.2")
    async with MiniAgents():
        tokens, message = await asingle_reply(agent.inquire("local model", top_k=40, extra_body={"min_p": 0.1}))
    assert tokens == ["local", " model"] and message.model == "llama3.2"
    body = server.requests[0].body
    assert server.requests[0].path == "/chat/completions"
    assert (body["top_k"], body["min_p"]) == (40, 0.1)  # parameters unknown to the SDK still reach the server


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ImportError, match=r"pip install 'miniagents\[openai\]'"):
        create_openai_agent()
