"""
Structured output (`output_type=`, SPEC §4.2) through the real `openai` and `anthropic` SDK clients against the
loopback wire server (which refuses what the providers refuse): the JSON streams as tokens, the resolved reply is
validated, an invalid answer is sent back with its errors, and running out of retries names the failing fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from miniagents import Message, MiniAgents
from miniagents.ext.llm import OutputValidationError, RetryPromptMessage, ToolResultMessage
from miniagents.ext.llm.openai import OpenAIMessage
from tests.support.llm_agent_testing import SDKClients, aread_replies, within
from tests.support.llm_tool_testing import PROVIDERS, REPLY_CLASSES, aresolve, make_agent, tool_results_sent
from tests.support.llm_wire_server import LLMWireServer, Reply, ToolCall

STREAM = [True, False]
PARIS = {"city": "Paris", "temperature": 18, "conditions": ["sunny", "windy"]}
PARIS_CHUNKS = ['{"city": "Paris", ', '"temperature": 18, ', '"conditions": ["sunny", "windy"]}']


class WeatherReport(Message):
    """A weather report for one city."""

    city: str
    temperature: int = Field(description="In degrees Celsius.")
    conditions: tuple[str, ...]


class Forecast(BaseModel):
    city: str
    days: list[int]


@pytest.fixture
def server() -> Iterator[LLMWireServer]:
    with LLMWireServer(validate_requests=True) as strict:
        yield strict


def structured_reply(output: dict[str, Any] | str, chunks: list[str] | None = None) -> Reply:
    """A reply to a structured-output request (OpenAI: as content; Anthropic: through the forced tool)."""
    return Reply(output=output, output_chunks=chunks)


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_message_subclass_output_type_resolves_to_a_validated_instance_while_its_json_streams(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    server.enqueue(structured_reply(PARIS, PARIS_CHUNKS))
    agent = make_agent(provider, clients, output_type=WeatherReport)
    async with MiniAgents():
        replies = agent.inquire("Weather in Paris?", stream=stream)
        (promise,) = await within(replies)
        tokens = [token async for token in promise]
        report = await promise
    assert isinstance(report, WeatherReport)
    assert (report.city, report.temperature, report.conditions) == ("Paris", 18, ("sunny", "windy"))
    assert "".join(tokens) == report.text and json.loads(report.text) == PARIS
    assert len(tokens) == (3 if stream else 1)
    assert (report.role, report.agent_alias) == ("assistant", agent.alias)  # the reply's metadata stays


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_pydantic_model_output_type_is_the_output_of_the_provider_message(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    server.enqueue(structured_reply({"city": "Oslo", "days": [1, 2, 3]}))
    agent = make_agent(provider, clients, output_type=Forecast)
    async with MiniAgents():
        (message,) = await aresolve(agent.inquire("Forecast for Oslo?", stream=stream))
    assert isinstance(message, REPLY_CLASSES[provider])
    assert message.output == Forecast(city="Oslo", days=[1, 2, 3])  # type: ignore[attr-defined]
    assert type(message).__name__ == f"{REPLY_CLASSES[provider].__name__}[Forecast]"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_output_schema_is_requested_in_the_providers_own_way(
    server: LLMWireServer, clients: SDKClients, provider: str
) -> None:
    server.enqueue(structured_reply(PARIS))
    async with MiniAgents():
        await aresolve(make_agent(provider, clients, output_type=WeatherReport).inquire("Weather?"))
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "temperature": {"type": "integer", "description": "In degrees Celsius."},
            "conditions": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city", "temperature", "conditions"],
        "additionalProperties": False,
    }
    body = server.requests[0].body
    if provider == "openai":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {
                "name": "WeatherReport",
                "schema": schema,
                "strict": True,
                "description": "A weather report for one city.",
            },
        }
    else:
        assert body["tools"] == [
            {"name": "WeatherReport", "description": "A weather report for one city.", "input_schema": schema}
        ]
        assert body["tool_choice"] == {"type": "tool", "name": "WeatherReport"}


async def test_a_schema_with_optional_fields_is_sent_not_strict(server: LLMWireServer, clients: SDKClients) -> None:
    class Note(BaseModel):
        title: str
        tags: list[str] = []

    server.enqueue(structured_reply({"title": "hi"}))
    async with MiniAgents():
        (message,) = await aresolve(make_agent("openai", clients, output_type=Note).inquire("A note?"))
    assert message.output == Note(title="hi")  # type: ignore[attr-defined]
    assert server.requests[0].body["response_format"]["json_schema"]["strict"] is False


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_invalid_first_answer_is_sent_back_with_its_errors_and_the_retry_succeeds(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    server.enqueue(
        structured_reply({"city": "Paris", "temperature": "warm", "conditions": ["sunny"]}),
        structured_reply(PARIS, PARIS_CHUNKS),
    )
    agent = make_agent(provider, clients, output_type=WeatherReport)
    async with MiniAgents():
        first, retry, report = await aresolve(agent.inquire("Weather in Paris?", stream=stream))
    assert type(first) is REPLY_CLASSES[provider] and json.loads(first.text or "")["temperature"] == "warm"
    assert "temperature: Input should be a valid integer" in str(retry)
    assert isinstance(report, WeatherReport) and report.temperature == 18
    second_request = server.requests[1].body
    if provider == "openai":  # the errors come back as a user message after the invalid answer
        assert isinstance(retry, RetryPromptMessage)
        assert second_request["messages"][-2:] == [
            {"role": "assistant", "content": first.text},
            {"role": "user", "content": str(retry)},
        ]
    else:  # ... and, for Anthropic, as the error result of the output tool's call
        assert isinstance(retry, ToolResultMessage) and retry.is_error
        call_id = first.content[0].id  # type: ignore[attr-defined]
        assert tool_results_sent(provider, second_request) == {call_id: (str(retry), True)}


@pytest.mark.parametrize("output_retries", [0, 2])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_running_out_of_retries_raises_an_error_naming_the_failing_fields(
    server: LLMWireServer, clients: SDKClients, provider: str, output_retries: int
) -> None:
    invalid = {"city": "Paris", "temperature": "warm"}  # a wrong type, and a missing field
    server.enqueue(*[structured_reply(invalid) for _ in range(output_retries + 1)])
    agent = make_agent(provider, clients, output_type=WeatherReport, output_retries=output_retries, alias="REPORTER")
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire("Weather?")))
    assert isinstance(error, OutputValidationError)
    assert error.fields == ("temperature", "conditions")
    assert str(error).startswith("REPORTER: the answer of model ")
    assert f"does not validate as WeatherReport after {output_retries + 1} attempt(s)" in str(error)
    assert "temperature: Input should be a valid integer" in str(error) and "conditions: Field required" in str(error)
    assert len(server.requests) == output_retries + 1 and len(chunks) == 2 * output_retries + 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_answer_in_prose_is_an_invalid_answer(
    server: LLMWireServer, clients: SDKClients, provider: str
) -> None:
    server.enqueue(Reply(tokens=["The weather", " is nice."]), structured_reply(PARIS))
    async with MiniAgents():
        messages = await aresolve(make_agent(provider, clients, output_type=WeatherReport).inquire("Weather?"))
    assert isinstance(messages[1], RetryPromptMessage) and "Invalid JSON" in str(messages[1])
    assert isinstance(messages[-1], WeatherReport)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tools_and_an_output_type_work_together(
    server: LLMWireServer, clients: SDKClients, provider: str
) -> None:
    async def get_temperature(city: str) -> int:
        """The temperature in a city, in degrees Celsius."""
        return 18

    final = structured_reply(PARIS) if provider == "openai" else Reply(tool_calls=[ToolCall("WeatherReport", PARIS)])
    server.enqueue(Reply(tool_calls=[ToolCall("get_temperature", {"city": "Paris"}, id="call_t")]), final)
    agent = make_agent(provider, clients, tools=[get_temperature], output_type=WeatherReport)
    async with MiniAgents():
        _, result, report = await aresolve(agent.inquire("Weather in Paris?"))
    assert result.text == "18" and isinstance(report, WeatherReport)
    body = server.requests[0].body
    if provider == "anthropic":  # the output tool next to the others, and some tool must be called
        assert [tool["name"] for tool in body["tools"]] == ["get_temperature", "WeatherReport"]
        assert body["tool_choice"] == {"type": "any"}
    else:
        assert body["response_format"]["json_schema"]["name"] == "WeatherReport" and len(body["tools"]) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_structured_answer_is_valid_history_for_the_next_turn(
    server: LLMWireServer, clients: SDKClients, provider: str
) -> None:
    server.enqueue(structured_reply(PARIS), Reply(tokens=["You're welcome."]))
    agent = make_agent(provider, clients, output_type=WeatherReport)
    async with MiniAgents():
        (report,) = await aresolve(agent.inquire("Weather?"))
        answer = await aresolve(make_agent(provider, clients).inquire(["Weather?", report, "Thanks!"]))
    assert answer[-1].text == "You're welcome."
    sent = server.requests[1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": report.text}  # the JSON, not an unanswered tool call


@pytest.mark.parametrize(
    ("output_type", "error_type", "expected"),
    [
        (dict, TypeError, "output_type must be a Message subclass or a pydantic model class, got <class 'dict'>"),
        (Message, ValueError, "output_type Message declares no fields of its own"),
    ],
)
@pytest.mark.parametrize("when", ["creation", "call"])
async def test_an_output_type_that_is_not_a_model_is_refused(
    server: LLMWireServer, clients: SDKClients, output_type: Any, error_type: type[Exception], expected: str, when: str
) -> None:
    if when == "creation":
        with pytest.raises(error_type, match=expected.replace("(", r"\(").replace(")", r"\)")):
            make_agent("openai", clients, output_type=output_type)
        return
    async with MiniAgents():
        _, error = await within(aread_replies(make_agent("openai", clients).inquire("hi", output_type=output_type)))
    assert isinstance(error, error_type) and expected in str(error)
    assert server.requests == []


async def test_a_message_subclass_of_an_llm_message_class_keeps_its_own_fields_only(
    server: LLMWireServer, clients: SDKClients
) -> None:
    class Verdict(OpenAIMessage):
        verdict: bool

    server.enqueue(structured_reply({"verdict": True}))
    async with MiniAgents():
        (message,) = await aresolve(make_agent("openai", clients, output_type=Verdict).inquire("Is it sunny?"))
    assert isinstance(message, Verdict) and message.verdict is True
    assert list(server.requests[0].body["response_format"]["json_schema"]["schema"]["properties"]) == ["verdict"]
