"""create_anthropic_agent with the real `anthropic` SDK against the loopback wire-protocol server (SPEC §4)."""

from __future__ import annotations

import sys

import anthropic
import pytest

from miniagents import Message, MiniAgents
from miniagents.ext.llm import AssistantMessage, SystemMessage, UserMessage
from miniagents.ext.llm.anthropic import (
    DEFAULT_ANTHROPIC_MODEL,
    FIRST_USER_MESSAGE_PLACEHOLDER,
    AnthropicMessage,
    create_anthropic_agent,
)
from miniagents.ext.llm.llm_common import plain_data
from tests.support.llm_agent_testing import (
    API_KEY,
    SDKClients,
    aread_replies,
    asingle_reply,
    assert_no_task_left,
    within,
)
from tests.support.llm_wire_server import Fault, LLMWireServer, Reply, ToolCall, Usage

try:  # newer SDKs are built on httpx2, older ones on httpx
    import httpx2 as httpx_module
except ImportError:  # pragma: no cover
    import httpx as httpx_module  # type: ignore[no-redef]

WEATHER = ToolCall("get_weather", {"city": "Paris"}, id="toolu_1", chunks=['{"city": ', '"Paris"}'])
WEATHER_TOOL = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.mark.parametrize("stream", [True, False])
async def test_reply_streams_tokens_and_resolves_provider_fields(
    server: LLMWireServer, clients: SDKClients, stream: bool
) -> None:
    server.enqueue(Reply(tokens=["Hel", "lo", "!"], usage=Usage(5, 3)))
    agent = create_anthropic_agent(clients.anthropic())
    async with MiniAgents():
        replies = agent.inquire("say hello", stream=stream)
        promises = await within(replies)
        metadata = promises[0].preliminary_metadata
        expected = ("assistant", DEFAULT_ANTHROPIC_MODEL, "ANTHROPIC_AGENT")
        assert (metadata.role, metadata.model, metadata.agent_alias) == expected
        tokens, message = await asingle_reply(replies)
    assert tokens == (["Hel", "lo", "!"] if stream else ["Hello!"])
    assert isinstance(message, AnthropicMessage) and message.text == "Hello!"
    assert (message.role, message.model, message.agent_alias) == expected
    assert message.stop_reason == "end_turn" and message.type == "message"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 3)
    assert message.content[0].type == "text" and message.content[0].text == "Hello!"
    assert message.id == "msg_wire000001"
    body = server.requests[0].body
    assert body["model"] == DEFAULT_ANTHROPIC_MODEL and body["max_tokens"] == 4096
    assert body["messages"] == [{"role": "user", "content": "say hello"}] and "system" not in body
    assert bool(body.get("stream")) is stream


@pytest.mark.parametrize("system", [None, "Be brief."])
@pytest.mark.parametrize("stream", [True, False])
async def test_system_argument_and_system_messages_go_to_the_system_parameter(
    server: LLMWireServer, clients: SDKClients, stream: bool, system: str | None
) -> None:
    agent = create_anthropic_agent(clients.anthropic())
    async with MiniAgents():
        replies = agent.inquire([SystemMessage("Rules."), UserMessage("echo me")], system=system, stream=stream)
        tokens, message = await asingle_reply(replies)
    assert "".join(tokens) == message.text == "echo me"
    body = server.requests[0].body
    assert body["system"] == ("Be brief.\n\nRules." if system else "Rules.")
    assert body["messages"] == [{"role": "user", "content": "echo me"}]


async def test_conversation_follows_the_api_role_rules(server: LLMWireServer, clients: SDKClients) -> None:
    agent = create_anthropic_agent(clients.anthropic())
    messages = [
        AssistantMessage("I start."),
        AssistantMessage("And go on."),
        SystemMessage("Late rule."),
        UserMessage("u1"),
        Message("no role means user"),
        Message("", role="user"),  # empty text is rejected by the API: skipped
        AssistantMessage("a1"),
    ]
    async with MiniAgents():
        await asingle_reply(agent.inquire(messages, stream=False))
    body = server.requests[0].body
    assert body["system"] == "Late rule."
    assert body["messages"] == [
        {"role": "user", "content": FIRST_USER_MESSAGE_PLACEHOLDER},
        {"role": "assistant", "content": "I start.\n\nAnd go on."},
        {"role": "user", "content": "u1\n\nno role means user"},
        {"role": "assistant", "content": "a1"},
    ]


async def test_system_blocks_are_kept_and_system_messages_appended(server: LLMWireServer, clients: SDKClients) -> None:
    cached_prompt = {"type": "text", "text": "Long rules.", "cache_control": {"type": "ephemeral"}}
    async with MiniAgents():
        await asingle_reply(
            create_anthropic_agent(clients.anthropic()).inquire(
                [SystemMessage("Short rule."), "hi"], system=[cached_prompt]
            )
        )
    assert server.requests[0].body["system"] == [cached_prompt, {"type": "text", "text": "Short rule."}]


async def test_empty_input_gets_a_placeholder_user_message(server: LLMWireServer, clients: SDKClients) -> None:
    async with MiniAgents():
        await asingle_reply(create_anthropic_agent(clients.anthropic()).inquire())
    assert server.requests[0].body["messages"] == [{"role": "user", "content": FIRST_USER_MESSAGE_PLACEHOLDER}]


async def test_provider_parameters_pass_through(server: LLMWireServer, clients: SDKClients) -> None:
    agent = create_anthropic_agent(clients.anthropic(), model="claude-test", temperature=0.2)
    async with MiniAgents():
        _, message = await asingle_reply(agent.inquire("hi", max_tokens=50, top_k=3))
    body = server.requests[0].body
    assert (body["model"], body["temperature"], body["max_tokens"], body["top_k"]) == ("claude-test", 0.2, 50, 3)
    assert message.model == "claude-test"


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_use_is_visible_and_round_trips(server: LLMWireServer, clients: SDKClients, stream: bool) -> None:
    server.enqueue(Reply(tokens=["Let me check."], tool_calls=[WEATHER]), Reply(tokens=["Sunny."]))
    agent = create_anthropic_agent(clients.anthropic())
    async with MiniAgents():
        _, message = await asingle_reply(agent.inquire("weather?", tools=[WEATHER_TOOL], stream=stream))
        assert message.stop_reason == "tool_use" and message.text == "Let me check."
        tool_use = message.content[1]
        assert (tool_use.type, tool_use.id, tool_use.name, tool_use.input.city) == (
            "tool_use",
            "toolu_1",
            "get_weather",
            "Paris",
        )
        result = Message(role="user", content=[{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"}])
        await asingle_reply(agent.inquire(["weather?", message, result], tools=[WEATHER_TOOL], stream=stream))
    assert server.requests[0].body["tools"] == [WEATHER_TOOL]
    sent = server.requests[1].body["messages"]
    assert sent[1]["role"] == "assistant"
    assert sent[1]["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert sent[2] == {"role": "user", "content": plain_data(result.content)}


# --- faults: every one reaches the consumer, tokens before it stay readable, nothing is left running ------

TRANSPORT_ERRORS = (anthropic.APIConnectionError, httpx_module.TransportError)
TIMEOUT_ERRORS = (anthropic.APITimeoutError, httpx_module.TimeoutException)


@pytest.mark.parametrize(
    ("fault", "stream", "expected_tokens", "error_types"),
    [
        (Fault.http_status(429, retry_after=0.01), True, [], (anthropic.RateLimitError,)),
        (Fault.http_status(500), False, [], (anthropic.InternalServerError,)),
        (Fault.drop_after(["partial ", "text"]), True, ["partial ", "text"], TRANSPORT_ERRORS),
        (Fault.drop_after(), False, [], TRANSPORT_ERRORS),
        (Fault.malformed_event(["ok"]), True, ["ok"], (ValueError,)),
        (Fault.stall(["wait"]), True, ["wait"], TIMEOUT_ERRORS),
        (Fault.stall(), False, [], TIMEOUT_ERRORS),
    ],
    ids=["429", "500", "drop-stream", "drop-json", "malformed", "stall-stream", "stall-json"],
)
async def test_fault_reaches_the_consumer_after_the_tokens_before_it(
    server: LLMWireServer,
    clients: SDKClients,
    fault: Fault,
    stream: bool,
    expected_tokens: list[str],
    error_types: tuple[type[BaseException], ...],
) -> None:
    server.enqueue(fault)
    agent = create_anthropic_agent(clients.anthropic(max_retries=0, timeout=0.5))
    async with MiniAgents():
        replies = agent.inquire("hi", stream=stream)
        chunks, error = await within(aread_replies(replies))
        assert isinstance(error, error_types), repr(error)
        assert chunks == [expected_tokens]
        replayed: list[str] = []
        with pytest.raises(error_types):  # a second reader sees the same tokens, then the same error
            async for token in (await replies)[0]:
                replayed.append(token)
        assert replayed == expected_tokens
    await assert_no_task_left()


async def test_429_is_retried_visibly_then_succeeds(server: LLMWireServer, clients: SDKClients) -> None:
    server.enqueue(Fault.http_status(429, retry_after=0.01), Reply(tokens=["ok"]))
    agent = create_anthropic_agent(clients.anthropic(max_retries=2))
    async with MiniAgents():
        tokens, message = await asingle_reply(agent.inquire("hi"))
    assert tokens == ["ok"] and message.stop_reason == "end_turn"
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == ["0", "1"]
    await assert_no_task_left()


# --- the SDK's own settings, missing key / SDK ---------------------------------------------------------------


async def test_client_is_created_lazily_from_the_sdk_environment(
    server: LLMWireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    agent = create_anthropic_agent()
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
    async with MiniAgents():
        tokens, _ = await asingle_reply(agent.inquire("from the environment"))
    assert tokens == ["from", " the", " environment"]
    assert server.requests[0].api_key == API_KEY
    await assert_no_task_left()


async def test_missing_key_reaches_the_consumer(server: LLMWireServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)  # never the real API, even by mistake
    agent = create_anthropic_agent()
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire("hi")))
    assert chunks == [[]] and error is not None and "api_key" in str(error)
    assert server.requests == []


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(ImportError, match=r"pip install 'miniagents\[anthropic\]'"):
        create_anthropic_agent()
