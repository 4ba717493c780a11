"""
What an LLM agent sends, read off the wire (issue 12, SPEC §4.4): client options configure the SDK client and never
reach the request body, content parts are sent as parts (or refused with a clear error, never as JSON text), an
assistant message with tool calls has `content: ""`, and an agent without a client makes one and reuses it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniagents import Message, MiniAgent, MiniAgents
from miniagents.ext.llm import LLMLogFolder, UserMessage
from miniagents.ext.llm.anthropic import ANTHROPIC_CLIENT_OPTIONS, anthropic_conversation, create_anthropic_agent
from miniagents.ext.llm.openai import (
    OPENAI_CLIENT_OPTIONS,
    OPENAI_CONTENT_PART_TYPES,
    create_openai_agent,
    openai_chat_message,
)
from tests.support.llm_agent_testing import API_KEY, SDKClients, aread_replies, asingle_reply, within
from tests.support.llm_wire_server import Fault, LLMWireServer, Reply, ToolCall

PROVIDERS = ["openai", "anthropic"]
IMAGE_DATA = "iVBORw0KGgo="
IMAGE_PARTS = [
    {"type": "text", "text": "What is in this image?"},
    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{IMAGE_DATA}"}},
]
ANTHROPIC_IMAGE_BLOCKS = [
    {"type": "text", "text": "What is in this image?"},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE_DATA}},
]


def make_agent(provider: str, client: Any, **kwargs: Any) -> MiniAgent:
    maker = create_openai_agent if provider == "openai" else create_anthropic_agent
    return maker(client, **kwargs)


def logged_texts(folder: Path) -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.md"))]


def client_for(provider: str, clients: SDKClients, **kwargs: Any) -> Any:
    return clients.openai(**kwargs) if provider == "openai" else clients.anthropic(**kwargs)


# --- client options -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_max_retries_given_at_creation_configures_the_client_not_the_request(
    server: LLMWireServer, clients: SDKClients, provider: str
) -> None:
    server.enqueue(Fault.http_status(500), Reply(tokens=["ok"]))
    agent = make_agent(provider, client_for(provider, clients, max_retries=0), max_retries=1)
    async with MiniAgents():
        tokens, _ = await asingle_reply(agent.inquire("hi"))
    assert tokens == ["ok"]  # the 500 was retried, as max_retries=1 asks
    assert [request.headers.get("x-stainless-retry-count") for request in server.requests] == ["0", "1"]
    assert all("max_retries" not in json.dumps(request.body) for request in server.requests)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_client_options_given_at_call_time_reach_the_client_not_the_request(
    server: LLMWireServer, clients: SDKClients, provider: str
) -> None:
    other_key = "sk-call-time-key-0123456789"
    agent = make_agent(provider, client_for(provider, clients))
    async with MiniAgents():
        await asingle_reply(
            agent.inquire("hi", api_key=other_key, timeout=3.0, max_retries=0, default_headers={"X-Team": "red"})
        )
    (request,) = server.requests
    assert request.api_key == other_key and request.headers["x-team"] == "red"
    body = json.dumps(request.body)
    assert all(name not in body for name in ("api_key", "timeout", "max_retries", "default_headers", other_key))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_client_options_are_not_part_of_the_logged_request_nor_leak_the_key(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path, provider: str
) -> None:
    other_key = "sk-call-time-key-0123456789"
    agent = make_agent(provider, client_for(provider, clients), llm_logger=LLMLogFolder(tmp_path))
    async with MiniAgents():
        await asingle_reply(agent.inquire("hi", api_key=other_key, max_retries=1))
    (log,) = logged_texts(tmp_path)
    assert other_key not in log and "max_retries" not in log


@pytest.mark.parametrize(
    ("provider", "options"), [("openai", OPENAI_CLIENT_OPTIONS), ("anthropic", ANTHROPIC_CLIENT_OPTIONS)]
)
def test_every_client_option_is_one_the_sdk_client_takes(provider: str, options: frozenset[str]) -> None:
    import inspect

    import anthropic
    import openai

    sdk_client = openai.AsyncOpenAI if provider == "openai" else anthropic.AsyncAnthropic
    assert options <= set(inspect.signature(sdk_client.with_options).parameters)


# --- content parts ------------------------------------------------------------------------------------------


async def test_openai_image_content_parts_are_sent_as_parts(server: LLMWireServer, clients: SDKClients) -> None:
    agent = create_openai_agent(clients.openai())
    async with MiniAgents():
        await asingle_reply(agent.inquire(UserMessage(content=IMAGE_PARTS)))
    assert server.requests[0].body["messages"] == [{"role": "user", "content": IMAGE_PARTS}]


async def test_openai_image_parts_become_anthropic_image_blocks(server: LLMWireServer, clients: SDKClients) -> None:
    agent = create_anthropic_agent(clients.anthropic())
    async with MiniAgents():
        await asingle_reply(agent.inquire(UserMessage(content=IMAGE_PARTS)))
    assert server.requests[0].body["messages"] == [{"role": "user", "content": ANTHROPIC_IMAGE_BLOCKS}]


async def test_anthropic_image_blocks_become_openai_image_parts(server: LLMWireServer, clients: SDKClients) -> None:
    agent = create_openai_agent(clients.openai())
    async with MiniAgents():
        await asingle_reply(agent.inquire(UserMessage(content=ANTHROPIC_IMAGE_BLOCKS)))
    assert server.requests[0].body["messages"] == [{"role": "user", "content": IMAGE_PARTS}]


@pytest.mark.parametrize(
    ("provider", "part"),
    [
        ("openai", {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}),
        ("openai", {"type": "image", "source": {"type": "file", "file_id": "f_1"}}),
        ("anthropic", {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
        ("anthropic", {"type": "image_url", "image_url": {"url": "data:image/png,not-base64"}}),
    ],
    ids=["openai-tool_use", "openai-image-file", "anthropic-input_audio", "anthropic-data-url-not-base64"],
)
async def test_content_the_provider_cannot_take_fails_the_call_with_a_clear_error(
    server: LLMWireServer, clients: SDKClients, provider: str, part: dict[str, Any]
) -> None:
    agent = make_agent(provider, client_for(provider, clients))
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire(UserMessage(content=[part]))))
    assert chunks == [[]] and isinstance(error, ValueError)
    assert "cannot take" in str(error) and repr(part["type"]) in str(error)
    assert server.requests == []  # nothing was sent


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_message_without_text_is_refused_not_sent_as_json(
    server: LLMWireServer, clients: SDKClients, provider: str
) -> None:
    agent = make_agent(provider, client_for(provider, clients))
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire(Message(invoice_id=42, role="user"))))
    assert chunks == [[]] and isinstance(error, ValueError)
    assert "without text" in str(error) and "'user'" in str(error)
    assert server.requests == []


def json_scalars() -> st.SearchStrategy[Any]:
    return (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )


FIELD_NAMES = st.text(min_size=1, max_size=12).filter(
    lambda name: (
        name.isidentifier()
        and not name.startswith("_")
        and name not in Message.model_fields
        and name not in ("role", "content", "tool_calls", "tool_call_id", "choices")
    )
)


@given(fields=st.dictionaries(FIELD_NAMES, json_scalars(), min_size=1, max_size=4))
def test_any_message_without_text_or_content_is_refused_by_both_providers(fields: dict[str, Any]) -> None:
    message = Message(**fields)
    with pytest.raises(ValueError, match="without text"):
        openai_chat_message(message)
    with pytest.raises(ValueError, match="without text"):
        anthropic_conversation((message,))


@given(kind=st.text(min_size=1, max_size=20).filter(lambda kind: kind not in OPENAI_CONTENT_PART_TYPES))
def test_any_part_type_openai_does_not_take_is_refused(kind: str) -> None:
    message = UserMessage(content=[{"type": kind, "payload": "x"}])
    with pytest.raises(ValueError, match="OpenAI cannot take"):
        openai_chat_message(message)


@given(content=st.one_of(st.integers(), st.lists(st.integers() | st.text(), min_size=1, max_size=3)))
def test_content_that_is_not_text_or_typed_parts_is_refused(content: Any) -> None:
    message = UserMessage(content=content)
    with pytest.raises(ValueError, match="must be a string or a list of parts"):
        openai_chat_message(message)
    with pytest.raises(ValueError, match="must be a string or a list of parts"):
        anthropic_conversation((message,))


# --- tool calls ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_assistant_tool_call_message_is_sent_with_empty_content_not_null(
    clients: SDKClients, stream: bool
) -> None:
    call = ToolCall("get_weather", {"city": "Paris"}, id="call_1")
    with LLMWireServer(reject_null_content=True) as strict:  # answers `content: null` with HTTP 500, like llama.cpp
        strict.enqueue(Reply(tool_calls=[call]), Reply(tokens=["Sunny."]))
        agent = create_openai_agent(SDKClients(strict).openai(max_retries=0))
        async with MiniAgents():
            _, call_message = await asingle_reply(agent.inquire("weather?", stream=stream))
            result = Message("18 C", role="tool", tool_call_id="call_1")
            tokens, _ = await asingle_reply(agent.inquire(["weather?", call_message, result], stream=stream))
    assert "".join(tokens) == "Sunny."
    sent = strict.requests[1].body["messages"][1]
    assert sent["content"] == "" and sent["tool_calls"][0]["id"] == "call_1"


def test_a_text_less_assistant_message_with_tool_calls_has_empty_content() -> None:
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    chat = openai_chat_message(Message(role="assistant", tool_calls=calls))
    assert chat == {"role": "assistant", "content": "", "tool_calls": calls}


# --- one SDK client per agent -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_agent_without_a_client_makes_one_and_reuses_it(
    server: LLMWireServer, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    prefix = "OPENAI" if provider == "openai" else "ANTHROPIC"
    monkeypatch.setenv(f"{prefix}_API_KEY", API_KEY)
    monkeypatch.setenv(
        f"{prefix}_BASE_URL", server.openai_base_url if provider == "openai" else server.anthropic_base_url
    )
    agent = make_agent(provider, None)
    async with MiniAgents():
        for turn in range(3):
            await asingle_reply(agent.inquire(f"turn {turn}"))
    ports = {request.client_port for request in server.requests}
    assert len(server.requests) == 3 and len(ports) == 1  # one client: its one kept-alive connection


def test_an_agent_without_a_client_works_in_successive_event_loops(
    server: LLMWireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    agent = create_openai_agent()  # e.g. at module level, used by two MiniAgents().run() calls

    async def aask(text: str) -> str:
        (reply,) = await agent.inquire(text).aresolve_messages()
        return str(reply)

    assert [MiniAgents().run(aask("first")), MiniAgents().run(aask("second"))] == ["first", "second"]
