"""Drive the real `openai` and `anthropic` SDKs against LLMWireServer."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

import anthropic
import openai
import pytest
import pytest_asyncio

from .llm_wire_server import Fault, LLMWireServer, Reply, ToolCall, Usage

try:  # newer SDKs are built on httpx2, older ones on httpx
    import httpx2 as httpx_module
except ImportError:  # pragma: no cover
    import httpx as httpx_module  # type: ignore[no-redef]

T = TypeVar("T")
KEY = "test-key"
USER = [{"role": "user", "content": "say hello"}]
WEATHER = ToolCall(
    "get_weather", {"city": "Paris", "unit": "c"}, id="call_1", chunks=['{"city": ', '"Paris", "unit": "c"}']
)


async def within(awaitable: Awaitable[T], seconds: float = 10.0) -> T:
    """Fail instead of hanging."""
    return await asyncio.wait_for(awaitable, seconds)


@pytest.fixture
def server() -> Iterator[LLMWireServer]:
    with LLMWireServer() as srv:
        yield srv


class Clients:
    """Makes async SDK clients pointed at the server and closes them at the end of the test."""

    def __init__(self, server: LLMWireServer) -> None:
        self.server = server
        self.made: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = []

    def openai(self, **kwargs: Any) -> openai.AsyncOpenAI:
        kwargs = {"timeout": 5.0, **kwargs}
        self.made.append(openai.AsyncOpenAI(api_key=KEY, base_url=self.server.openai_base_url, **kwargs))
        return self.made[-1]  # type: ignore[return-value]

    def anthropic(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        kwargs = {"timeout": 5.0, **kwargs}
        self.made.append(anthropic.AsyncAnthropic(api_key=KEY, base_url=self.server.anthropic_base_url, **kwargs))
        return self.made[-1]  # type: ignore[return-value]


@pytest_asyncio.fixture
async def clients(server: LLMWireServer) -> AsyncIterator[Clients]:
    made = Clients(server)
    yield made
    for client in made.made:
        await client.close()


# --- OpenAI -----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_openai_stream_text_chunks_and_usage(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Reply(tokens=["Hel", "lo", "!"], model="gpt-4o-mini", usage=Usage(7, 3)))

    async def run() -> list[Any]:
        stream = await clients.openai().chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        return [chunk async for chunk in stream]

    chunks = await within(run())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["Hel", "lo", "!"]
    assert chunks[4].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 3)
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].object == "chat.completion.chunk"
    assert all(c.model == "gpt-4o-mini" for c in chunks)
    request = server.requests[0]
    assert request.path == "/v1/chat/completions" and request.body["stream"] is True
    assert request.api_key == KEY and KEY not in repr(request) and KEY not in str(request.redacted_headers())


def test_openai_sync_plain_json_and_path_without_v1(server: LLMWireServer) -> None:
    server.enqueue(Reply(tokens=["Hi", " there"], model="gpt-4o-mini"))
    client = openai.OpenAI(api_key=KEY, base_url=server.openai_base_url.removesuffix("/v1"), timeout=5.0)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.choices[0].message.content == "Hi there"
    assert completion.choices[0].finish_reason == "stop" and completion.object == "chat.completion"
    assert completion.usage is not None and completion.usage.completion_tokens == 2
    assert completion.usage.prompt_tokens == 2  # default usage: words in the prompt
    assert server.requests[0].path == "/chat/completions"
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.asyncio
async def test_openai_stream_tool_call_fragments(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Reply(tool_calls=[WEATHER]))

    async def run() -> list[Any]:
        stream = await clients.openai().chat.completions.create(model="gpt-4o", messages=USER, stream=True)
        return [chunk async for chunk in stream]

    chunks = await within(run())
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.tool_calls is not None
    call = first.tool_calls[0]
    assert (call.index, call.id, call.type, call.function.name) == (0, "call_1", "function", "get_weather")
    pieces = [c.choices[0].delta.tool_calls[0].function.arguments for c in chunks[1:-1]]
    assert pieces == WEATHER.fragments()
    assert json.loads("".join(pieces)) == {"city": "Paris", "unit": "c"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.asyncio
async def test_openai_plain_tool_call(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Reply(tool_calls=[WEATHER]))
    completion = await within(clients.openai().chat.completions.create(model="gpt-4o", messages=USER))
    message = completion.choices[0].message
    assert message.content is None and completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None and message.tool_calls[0].id == "call_1"
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris", "unit": "c"}


@pytest.mark.asyncio
async def test_default_reply_echoes_last_user_message_by_words(server: LLMWireServer, clients: Clients) -> None:
    messages = [{"role": "user", "content": "first"}, {"role": "user", "content": "echo these words"}]

    async def run() -> list[str]:
        stream = await clients.openai().chat.completions.create(model="m", messages=messages, stream=True)
        return [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]

    assert await within(run()) == ["echo", " these", " words"]


# --- Anthropic --------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_anthropic_stream_text_events(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Reply(tokens=["Hel", "lo", "!"], model="claude-test", usage=Usage(5, 3)))

    async def run() -> list[Any]:
        stream = await clients.anthropic().messages.create(
            model="claude-test", max_tokens=64, messages=USER, stream=True
        )
        return [event async for event in stream]

    events = await within(run())
    assert [e.type for e in events] == [  # the SDK swallows `ping`
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [e.delta.text for e in events if e.type == "content_block_delta"] == ["Hel", "lo", "!"]
    assert events[0].message.model == "claude-test" and events[0].message.usage.input_tokens == 5
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens == 3
    # anthropic 2.x sends the api_key as `Authorization: Bearer …` (older versions used `x-api-key`)
    assert server.requests[0].api_key == KEY


@pytest.mark.asyncio
async def test_anthropic_plain_text(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Reply(tokens=["Hi", " there"], finish_reason="stop"))
    message = await within(clients.anthropic().messages.create(model="claude-test", max_tokens=64, messages=USER))
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text == "Hi there"
    assert message.stop_reason == "end_turn" and message.model == "claude-test"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2, 2)


@pytest.mark.asyncio
async def test_anthropic_stream_helper_tool_use(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Reply(tokens=["Let me check."], tool_calls=[WEATHER]))

    async def run() -> tuple[list[str], Any]:
        async with clients.anthropic().messages.stream(model="claude-test", max_tokens=64, messages=USER) as stream:
            partial = [e.partial_json async for e in stream if e.type == "input_json"]
            return partial, await stream.get_final_message()

    partial, message = await within(run())
    assert partial == WEATHER.fragments()
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    tool = message.content[1]
    assert (tool.id, tool.name, tool.input) == ("call_1", "get_weather", {"city": "Paris", "unit": "c"})


# --- Faults -----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_openai_429_then_success_is_retried(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Fault.http_status(429, retry_after=0.01), Reply(tokens=["ok"]))
    completion = await within(clients.openai(max_retries=2).chat.completions.create(model="m", messages=USER))
    assert completion.choices[0].message.content == "ok"
    assert len(server.requests) == 2
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == ["0", "1"]


@pytest.mark.asyncio
async def test_anthropic_429_then_success_is_retried(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Fault.http_status(429, retry_after=0.01), Reply(tokens=["ok"]))

    async def run() -> list[str]:
        stream = await clients.anthropic(max_retries=2).messages.create(
            model="m", max_tokens=8, messages=USER, stream=True
        )
        return [e.delta.text async for e in stream if e.type == "content_block_delta"]

    assert await within(run()) == ["ok"]
    assert len(server.requests) == 2


@pytest.mark.asyncio
async def test_500_without_retries_raises_sdk_errors(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Fault.http_status(500), Fault.http_status(500))
    with pytest.raises(openai.InternalServerError) as oai_error:
        await within(clients.openai(max_retries=0).chat.completions.create(model="m", messages=USER))
    with pytest.raises(anthropic.InternalServerError) as ant_error:
        await within(clients.anthropic(max_retries=0).messages.create(model="m", max_tokens=8, messages=USER))
    assert oai_error.value.status_code == 500 and ant_error.value.status_code == 500
    assert ant_error.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert len(server.requests) == 2


@pytest.mark.asyncio
async def test_dropped_connection_mid_stream(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Fault.drop_after(["partial ", "text"]), Fault.drop_after(["partial ", "text"]))
    received: list[str] = []

    async def read_openai() -> None:
        stream = await clients.openai().chat.completions.create(model="m", messages=USER, stream=True)
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIConnectionError):
        await within(read_openai())
    assert received == ["", "partial ", "text"]

    received.clear()

    async def read_anthropic() -> None:
        stream = await clients.anthropic().messages.create(model="m", max_tokens=8, messages=USER, stream=True)
        async for event in stream:
            if event.type == "content_block_delta":
                received.append(event.delta.text)

    # anthropic's stream iterator does not wrap transport errors: the raw httpx(2) error surfaces
    with pytest.raises((anthropic.APIConnectionError, httpx_module.TransportError)):
        await within(read_anthropic())
    assert received == ["partial ", "text"]


@pytest.mark.asyncio
async def test_malformed_event_raises(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Fault.malformed_event(["ok"]), Fault.malformed_event(["ok"]))

    async def drain(stream: Any) -> None:
        async for _ in stream:
            pass

    with pytest.raises(ValueError):  # json.JSONDecodeError, in both SDKs
        await within(drain(await clients.openai().chat.completions.create(model="m", messages=USER, stream=True)))
    with pytest.raises(ValueError):
        stream = await clients.anthropic().messages.create(model="m", max_tokens=8, messages=USER, stream=True)
        await within(drain(stream))


@pytest.mark.asyncio
async def test_stall_times_out_on_client(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Fault.stall(["wait"]), Fault.stall(["wait"]))
    received: list[Any] = []

    async def drain(stream: Any) -> None:
        async for item in stream:
            received.append(item)

    with pytest.raises(openai.APITimeoutError):
        stream = await clients.openai(timeout=0.5).chat.completions.create(model="m", messages=USER, stream=True)
        await within(drain(stream))
    assert len(received) == 2  # role chunk + "wait"
    with pytest.raises((anthropic.APITimeoutError, httpx_module.TimeoutException)):
        stream = await clients.anthropic(timeout=0.5).messages.create(
            model="m", max_tokens=8, messages=USER, stream=True
        )
        await within(drain(stream))


def test_stop_ends_a_stall_promptly() -> None:
    server = LLMWireServer().start()
    server.enqueue(Fault.stall(["wait"]))
    client = openai.OpenAI(api_key=KEY, base_url=server.openai_base_url, timeout=30.0, max_retries=0)
    stream = client.chat.completions.create(model="m", messages=USER, stream=True)
    assert next(iter(stream)).choices[0].delta.role == "assistant"
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    stopping.join(timeout=10)
    assert not stopping.is_alive(), "stop() hung on a stalled stream"
    # stop() joined them; a joined thread can still be listed for a moment while it unwinds (seen on 3.13)
    leftovers = [t for t in threading.enumerate() if "process_request" in t.name or "llm-wire" in t.name]
    for thread in leftovers:
        thread.join(timeout=5)
    assert [t.name for t in leftovers if t.is_alive()] == []
    with pytest.raises(openai.APIConnectionError):  # the client sees the hang-up right away
        list(stream)


@pytest.mark.asyncio
async def test_non_streamed_faults(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Fault.drop_after(), Fault.malformed_event(), Fault.stall())
    client = clients.openai(max_retries=0, timeout=0.5)
    with pytest.raises(openai.APIConnectionError):
        await within(client.chat.completions.create(model="m", messages=USER))
    with pytest.raises(ValueError):
        await within(client.chat.completions.create(model="m", messages=USER))
    with pytest.raises(openai.APITimeoutError):
        await within(client.chat.completions.create(model="m", messages=USER))


@pytest.mark.asyncio
async def test_token_delay_and_keep_alive_reuse(server: LLMWireServer, clients: Clients) -> None:
    client = clients.openai()
    for _ in range(3):
        server.enqueue(Reply(tokens=["a", "b"], token_delay=0.01))
        stream = await within(client.chat.completions.create(model="m", messages=USER, stream=True))
        assert [c.choices[0].delta.content async for c in stream] == ["", "a", "b", None]
    assert len(server.requests) == 3 and server.pending == 0


@pytest.mark.asyncio
async def test_openai_unfinished_stream_has_no_finish_reason_and_no_usage(
    server: LLMWireServer, clients: Clients
) -> None:
    server.enqueue(Fault.unfinished(["par", "tial"]), Fault.unfinished(["whole"]))
    client = clients.openai()
    stream = await within(
        client.chat.completions.create(model="m", messages=USER, stream=True, stream_options={"include_usage": True})
    )
    chunks = [chunk async for chunk in stream]
    assert [c.choices[0].delta.content for c in chunks] == ["", "par", "tial"]
    assert all(c.choices[0].finish_reason is None for c in chunks) and all(c.usage is None for c in chunks)
    completion = await within(client.chat.completions.create(model="m", messages=USER))
    assert completion.choices[0].message.content == "whole" and completion.choices[0].finish_reason is None


@pytest.mark.asyncio
async def test_anthropic_unfinished_stream_has_no_message_stop(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Fault.unfinished(["par", "tial"]), Fault.unfinished(["whole"]))
    client = clients.anthropic()
    async with client.messages.stream(model="m", max_tokens=5, messages=USER) as stream:
        kinds = [event.type async for event in stream]
        message = await stream.get_final_message()
    assert "message_stop" not in kinds and "message_delta" not in kinds and kinds[-1] == "content_block_stop"
    assert message.stop_reason is None and message.content[0].text == "partial"  # type: ignore[union-attr]
    message = await within(client.messages.create(model="m", max_tokens=5, messages=USER))
    assert message.stop_reason is None


@pytest.mark.asyncio
async def test_reject_null_content_answers_500_like_llama_cpp(clients: Clients) -> None:
    null_content = [*USER, {"role": "assistant", "content": None}, {"role": "user", "content": "again"}]
    with LLMWireServer(reject_null_content=True) as strict:
        client = Clients(strict).openai(max_retries=0)
        with pytest.raises(openai.InternalServerError, match="content must be a string or an array"):
            await within(client.chat.completions.create(model="m", messages=null_content))  # type: ignore[arg-type]
        empty_content = [*USER, {"role": "assistant", "content": ""}, {"role": "user", "content": "again"}]
        completion = await within(client.chat.completions.create(model="m", messages=empty_content))  # type: ignore[arg-type]
        await client.close()
    assert completion.choices[0].message.content == "again"
    assert [r.body["messages"][1]["content"] for r in strict.requests] == [None, ""]  # both recorded as received


@pytest.mark.asyncio
async def test_empty_stream_ends_without_a_single_event(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Fault.empty_stream(), Fault.empty_stream())
    stream = await within(clients.openai().chat.completions.create(model="m", messages=USER, stream=True))
    assert [chunk async for chunk in stream] == []
    async with clients.anthropic().messages.stream(model="m", max_tokens=5, messages=USER) as anthropic_stream:
        assert [event async for event in anthropic_stream] == []


# --- structured output ------------------------------------------------------------------------------------------

FORECAST = {"city": "Paris", "days": [18, 19]}
FORECAST_CHUNKS = ['{"city": "Paris", ', '"days": [18, 19]}']
FORCED = {"type": "tool", "name": "Forecast"}
FORECAST_TOOL = {"name": "Forecast", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


@pytest.mark.asyncio
async def test_openai_output_streams_as_content_fragments(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Reply(output=FORECAST, output_chunks=FORECAST_CHUNKS), Reply(output=FORECAST))

    async def run() -> list[Any]:
        stream = await clients.openai().chat.completions.create(model="m", messages=USER, stream=True)
        return [chunk async for chunk in stream]

    chunks = await within(run())
    assert [c.choices[0].delta.content for c in chunks[1:3]] == FORECAST_CHUNKS
    completion = await within(clients.openai().chat.completions.create(model="m", messages=USER))
    assert json.loads(completion.choices[0].message.content or "") == FORECAST


@pytest.mark.asyncio
async def test_anthropic_output_is_the_input_of_the_forced_tool(server: LLMWireServer, clients: Clients) -> None:
    server.enqueue(Reply(output=FORECAST, output_chunks=FORECAST_CHUNKS), Reply(output=FORECAST))
    request: dict[str, Any] = {"model": "m", "max_tokens": 64, "messages": USER}
    request |= {"tools": [FORECAST_TOOL], "tool_choice": FORCED}

    async def run() -> tuple[list[str], Any]:
        async with clients.anthropic().messages.stream(**request) as stream:
            partial = [e.partial_json async for e in stream if e.type == "input_json"]
            return partial, await stream.get_final_message()

    partial, message = await within(run())
    assert partial == FORECAST_CHUNKS and message.stop_reason == "tool_use"
    assert [(b.type, b.name, b.input) for b in message.content] == [("tool_use", "Forecast", FORECAST)]  # type: ignore[union-attr]
    whole = await within(clients.anthropic().messages.create(**request))
    assert whole.content[0].input == FORECAST  # type: ignore[union-attr]


def test_output_chunks_must_join_to_the_output() -> None:
    with pytest.raises(ValueError, match="output_chunks must join to the output JSON"):
        Reply(output=FORECAST, output_chunks=['{"city": "Paris"}'])


# --- request validation (on by default; LLMWireServer(validate_requests=False) turns it off) -----------------

CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
OPENAI_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.fixture
def strict() -> Iterator[LLMWireServer]:
    with LLMWireServer(validate_requests=True) as srv:
        yield srv


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        (
            {"messages": [*USER, {"role": "assistant", "content": "", "tool_calls": [CALL]}, *USER]},
            "The following tool_call_ids did not have response messages: call_1",
        ),
        (
            {"messages": [*USER, {"role": "tool", "content": "18 C", "tool_call_id": "call_9"}]},
            "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'",
        ),
        (
            {"messages": USER, "tools": [{**OPENAI_TOOL, "function": {**OPENAI_TOOL["function"], "strict": True}}]},
            "'additionalProperties' is required to be supplied and to be false",
        ),
        (
            {"messages": USER, "tools": [OPENAI_TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool 'x' is not in 'tools'",
        ),
        (
            {
                "messages": USER,
                "response_format": {"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}},
            },
            "Invalid 'response_format.json_schema.name'",
        ),
    ],
    ids=["unanswered-call", "orphan-result", "strict-schema", "unknown-tool-choice", "bad-format-name"],
)
async def test_openai_requests_the_api_refuses_get_its_400(
    strict: LLMWireServer, request_fields: dict[str, Any], message: str
) -> None:
    client = Clients(strict).openai(max_retries=0)
    with pytest.raises(openai.BadRequestError, match=re.escape(message)):
        await within(client.chat.completions.create(model="m", **request_fields))
    await client.close()
    assert strict.pending == 0 and len(strict.requests) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        (
            {"messages": [*USER, {"role": "assistant", "content": [TOOL_USE]}, *USER]},
            "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9"}]}]},
            "unexpected `tool_use_id` found in `tool_result` blocks: toolu_9",
        ),
        (
            {
                "messages": [
                    *USER,
                    {"role": "assistant", "content": [TOOL_USE]},
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "x"}, {"type": "tool_result", "tool_use_id": "toolu_1"}],
                    },
                ]
            },
            "`tool_result` blocks must come before any other content",
        ),
        (
            {"messages": USER, "tools": [FORECAST_TOOL], "tool_choice": {"type": "tool", "name": "x"}},
            "Tool 'x' not found",
        ),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, 'first message must use the "user" role'),
        ({"messages": [{"role": "user", "content": ""}]}, "text content blocks must be non-empty"),
    ],
    ids=[
        "unanswered-tool-use",
        "orphan-result",
        "result-after-text",
        "unknown-forced-tool",
        "assistant-first",
        "empty",
    ],
)
async def test_anthropic_requests_the_api_refuses_get_its_400(
    strict: LLMWireServer, request_fields: dict[str, Any], message: str
) -> None:
    client = Clients(strict).anthropic(max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match=re.escape(message)):
        await within(client.messages.create(model="m", max_tokens=8, **request_fields))
    await client.close()
    assert len(strict.requests) == 1


@pytest.mark.asyncio
async def test_answered_tool_calls_are_accepted_by_the_strict_server(strict: LLMWireServer) -> None:
    made = Clients(strict)
    result = {"role": "tool", "content": "18 C", "tool_call_id": "call_1"}
    openai_messages = [*USER, {"role": "assistant", "content": "", "tool_calls": [CALL]}, result, *USER]
    tool_result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C", "is_error": True}
    anthropic_messages = [
        *USER,
        {"role": "assistant", "content": [TOOL_USE]},
        {"role": "user", "content": [tool_result]},
    ]
    completion = await within(made.openai().chat.completions.create(model="m", messages=openai_messages))  # type: ignore[arg-type]
    message = await within(made.anthropic().messages.create(model="m", max_tokens=8, messages=anthropic_messages))  # type: ignore[arg-type]
    for client in made.made:
        await client.close()
    assert completion.choices[0].message.content == "say hello" and message.stop_reason == "end_turn"


@pytest.mark.asyncio
async def test_requests_are_validated_by_default(server: LLMWireServer, clients: Clients) -> None:
    unanswered = [*USER, {"role": "assistant", "content": "", "tool_calls": [CALL]}, *USER]
    with pytest.raises(openai.BadRequestError, match="did not have response messages: call_1"):
        await within(clients.openai(max_retries=0).chat.completions.create(model="m", messages=unanswered))  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_requests_are_served_unvalidated_when_asked() -> None:
    unanswered = [*USER, {"role": "assistant", "content": "", "tool_calls": [CALL]}, *USER]
    # the purpose here is a request the provider would refuse: validation off on purpose
    with LLMWireServer(validate_requests=False) as lenient:
        made = Clients(lenient)
        completion = await within(made.openai().chat.completions.create(model="m", messages=unanswered))  # type: ignore[arg-type]
        for client in made.made:
            await client.close()
    assert completion.choices[0].message.content == "say hello"
