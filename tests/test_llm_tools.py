"""
The tool loop of the LLM agents (SPEC §4.1), through the real `openai` and `anthropic` SDK clients against the loopback
wire server, which checks every request the way the providers do (tool calls answered right after they are made,
tool results only for the calls just made...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from miniagents import (
    AgentCall,
    AgentCallNode,
    InteractionContext,
    Message,
    MiniAgents,
    PromiseCancelledError,
    miniagent,
)
from miniagents.ext.llm import MaxToolRoundsError, Tool, ToolCallError, ToolResultMessage
from tests.support.llm_agent_testing import SDKClients, aread_replies, within
from tests.support.llm_tool_testing import (
    PROVIDERS,
    REPLY_CLASSES,
    aresolve,
    make_agent,
    tool_calls_sent,
    tool_results_sent,
)
from tests.support.llm_wire_server import LLMWireServer, Reply, ToolCall

STREAM = [True, False]
WEATHER_CALL = ToolCall("get_weather", {"city": "Paris"}, id="call_w", chunks=['{"city"', ': "Paris"}'])
RESEARCH_CALL = ToolCall("RESEARCHER", {"input": "Paris in spring"}, id="call_r")
RAW_WEATHER_TOOL = {
    "openai": {
        "type": "function",
        "function": {
            "name": "raw_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    "anthropic": {
        "name": "raw_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def server() -> Iterator[LLMWireServer]:
    """A wire server that refuses, with the provider's HTTP 400, every request the provider would refuse."""
    with LLMWireServer(validate_requests=True) as strict:
        yield strict


async def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"18 C and sunny in {city}"


@miniagent
async def researcher(ctx: InteractionContext) -> None:
    """Finds facts about a topic."""
    question = (await ctx.messages.aresolve_messages())[-1]
    ctx.reply(f"facts about {question}")


# --- the loop -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tools_of_one_turn_run_concurrently_and_their_results_reach_the_model(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    function_started, agent_started = asyncio.Event(), asyncio.Event()

    async def weather_waiting_for_the_researcher(city: str) -> str:
        """The current weather in a city."""
        function_started.set()
        await agent_started.wait()  # returns only if the researcher runs at the same time
        return f"18 C in {city}"

    @miniagent(alias="RESEARCHER")
    async def researcher_waiting_for_the_weather(ctx: InteractionContext) -> None:
        """Finds facts about a topic."""
        agent_started.set()
        await function_started.wait()  # returns only if the weather function runs at the same time
        ctx.reply(f"facts about {(await ctx.messages.aresolve_messages())[-1]}")

    server.enqueue(
        Reply(tool_calls=[ToolCall("weather", {"city": "Paris"}, id="call_w"), RESEARCH_CALL]),
        Reply(tokens=["Sunny", ", and", " lovely."]),
    )
    weather_tool = Tool(weather_waiting_for_the_researcher, name="weather")
    agent = make_agent(provider, clients, tools=[weather_tool, researcher_waiting_for_the_weather])
    async with MiniAgents():
        messages = await aresolve(agent.inquire("Paris in spring?", stream=stream))
    reply_class = REPLY_CLASSES[provider]
    assert [type(message) for message in messages] == [reply_class, ToolResultMessage, ToolResultMessage, reply_class]
    assert [(call.id, call.function.name) for call in messages[0].tool_calls] == [
        ("call_w", "weather"),
        ("call_r", "RESEARCHER"),
    ]
    assert [(m.tool_call_id, m.tool_name, m.text, m.is_error) for m in messages[1:3]] == [
        ("call_w", "weather", "18 C in Paris", False),
        ("call_r", "RESEARCHER", "facts about Paris in spring", False),
    ]
    assert messages[3].text == "Sunny, and lovely." and not getattr(messages[3], "tool_calls", None)
    assert tool_results_sent(provider, server.requests[1].body) == {
        "call_w": ("18 C in Paris", False),
        "call_r": ("facts about Paris in spring", False),
    }


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_schema_of_each_tool_is_sent_in_the_providers_shape(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    agent = make_agent(provider, clients, tools=[get_weather, researcher])
    async with MiniAgents():
        await aresolve(agent.inquire("hi", stream=stream))
    weather_schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    research_schema = {
        "type": "object",
        "properties": {"input": {"type": "string", "description": "What to ask RESEARCHER, in plain words."}},
        "required": ["input"],
        "additionalProperties": False,
    }
    tools = server.requests[0].body["tools"]
    if provider == "openai":
        assert tools == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "The current weather in a city.",
                    "parameters": weather_schema,
                    "strict": True,
                },
            },
            {
                "type": "function",
                "function": {
                    "name": "RESEARCHER",
                    "description": "Finds facts about a topic.",
                    "parameters": research_schema,
                    "strict": True,
                },
            },
        ]
    else:
        assert tools == [
            {"name": "get_weather", "description": "The current weather in a city.", "input_schema": weather_schema},
            {"name": "RESEARCHER", "description": "Finds facts about a topic.", "input_schema": research_schema},
        ]


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_multi_round_loop_sends_every_earlier_call_and_result_back(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    server.enqueue(
        Reply(tokens=["Let me check."], tool_calls=[WEATHER_CALL]),
        Reply(tool_calls=[RESEARCH_CALL]),
        Reply(tokens=["Done."]),
    )
    agent = make_agent(provider, clients, tools=[get_weather, researcher])
    async with MiniAgents():
        messages = await aresolve(agent.inquire("Plan a day in Paris.", stream=stream))
    assert [message.text for message in messages] == [
        "Let me check.",
        "18 C and sunny in Paris",
        "",
        "facts about Paris in spring",
        "Done.",
    ]
    last = server.requests[2].body
    assert tool_calls_sent(provider, last) == [("call_w", "get_weather"), ("call_r", "RESEARCHER")]
    assert set(tool_results_sent(provider, last)) == {"call_w", "call_r"}


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_reply_sequence_is_valid_history_for_the_next_turn(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    server.enqueue(Reply(tool_calls=[WEATHER_CALL, RESEARCH_CALL]), Reply(tokens=["Sunny."]), Reply(tokens=["Bye."]))
    agent = make_agent(provider, clients, tools=[get_weather, researcher])
    async with MiniAgents():
        first_turn = await aresolve(agent.inquire("Weather in Paris?", stream=stream))
        second_turn = await aresolve(agent.inquire(["Weather in Paris?", *first_turn, "Thanks!"], stream=stream))
    assert [message.text for message in second_turn] == ["Bye."]  # the strict server took the history
    body = server.requests[2].body
    assert tool_calls_sent(provider, body) == [("call_w", "get_weather"), ("call_r", "RESEARCHER")]
    assert tool_results_sent(provider, body) == {
        "call_w": ("18 C and sunny in Paris", False),
        "call_r": ("facts about Paris in spring", False),
    }


@pytest.mark.parametrize(("producer", "consumer"), [("openai", "anthropic"), ("anthropic", "openai")])
async def test_the_reply_sequence_of_one_provider_is_valid_history_for_the_other(
    server: LLMWireServer, clients: SDKClients, producer: str, consumer: str
) -> None:
    server.enqueue(Reply(tokens=["Checking."], tool_calls=[WEATHER_CALL]), Reply(tokens=["Sunny."]))
    async with MiniAgents():
        turn = await aresolve(make_agent(producer, clients, tools=[get_weather]).inquire("Weather in Paris?"))
        answer = await aresolve(make_agent(consumer, clients).inquire(["Weather in Paris?", *turn, "And tomorrow?"]))
    assert [message.text for message in answer] == ["And tomorrow?"]  # the echo of the last user message
    body = server.requests[2].body
    assert tool_calls_sent(consumer, body) == [("call_w", "get_weather")]
    assert tool_results_sent(consumer, body) == {"call_w": ("18 C and sunny in Paris", False)}


# --- tool calls are agent calls --------------------------------------------------------------------------------


async def test_tool_calls_are_calls_made_by_the_llm_call_and_recorded_in_the_graph(
    server: LLMWireServer, clients: SDKClients
) -> None:
    server.enqueue(Reply(tool_calls=[WEATHER_CALL, RESEARCH_CALL]), Reply(tokens=["Sunny."]))
    calls: list[AgentCall] = []
    nodes: list[AgentCallNode] = []

    async def keep_call_nodes(_: Any, message: Message) -> None:
        if isinstance(message, AgentCallNode):
            nodes.append(message)

    agent = make_agent("openai", clients, tools=[get_weather, researcher], alias="WEATHER_BOT")
    async with MiniAgents(on_agent_call=calls.append, on_persist_message=keep_call_nodes):
        await aresolve(agent.inquire("Weather in Paris?"))
    llm_call, *tool_calls = calls
    assert llm_call.agent.alias == "WEATHER_BOT"
    assert [(call.agent.alias, call.parent) for call in tool_calls] == [
        ("get_weather", llm_call),
        ("RESEARCHER", llm_call),
    ]
    by_alias = {node.agent_alias: node for node in nodes}
    assert by_alias["get_weather"].parent_call_id == by_alias["RESEARCHER"].parent_call_id == llm_call.call_id
    assert by_alias["get_weather"].city == "Paris"  # the arguments are the call's kwargs
    assert [str(message) for message in by_alias["RESEARCHER"].messages] == ["Paris in spring"]


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_cancelling_the_llm_call_cancels_its_running_tools(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    started, cleaned_up = asyncio.Event(), asyncio.Event()

    async def slow_lookup(query: str) -> str:
        """Looks something up, slowly."""
        started.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            cleaned_up.set()
        return query

    server.enqueue(Reply(tool_calls=[ToolCall("slow_lookup", {"query": "x"}, id="call_s")]))
    agent = make_agent(provider, clients, tools=[slow_lookup])
    async with MiniAgents():
        call = agent.initiate_inquiry(stream=stream).send_message("Look it up.")
        replies = call.reply_sequence()
        await within(started.wait())
        assert call.cancel()
        await within(cleaned_up.wait())
        _, error = await within(aread_replies(replies))
    assert isinstance(error, PromiseCancelledError)


# --- errors go back to the model ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_tool_that_raises_reaches_the_model_as_an_error_result_and_the_loop_recovers(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    async def get_forecast(city: str) -> str:
        """Tomorrow's forecast for a city."""
        raise LookupError(f"no forecast for {city}")

    server.enqueue(
        Reply(tool_calls=[ToolCall("get_forecast", {"city": "Atlantis"}, id="call_f"), WEATHER_CALL]),
        Reply(tokens=["No forecast, but sunny now."]),
    )
    agent = make_agent(provider, clients, tools=[get_forecast, get_weather])
    async with MiniAgents():
        messages = await aresolve(agent.inquire("Weather?", stream=stream))
    failed, succeeded = messages[1], messages[2]
    assert failed.is_error and failed.text == "Error: get_forecast failed: LookupError: no forecast for Atlantis"
    assert not succeeded.is_error and succeeded.text == "18 C and sunny in Paris"
    assert messages[-1].text == "No forecast, but sunny now."
    sent = tool_results_sent(provider, server.requests[1].body)
    assert sent["call_f"] == (failed.text, provider == "anthropic")  # Anthropic: `is_error: true`
    assert sent["call_w"] == (succeeded.text, False)


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_bad_arguments_reach_the_model_as_an_error_result_without_calling_the_tool(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    called: list[str] = []

    async def get_temperature(city: str, days: int = 1) -> str:
        """The temperature in a city over the next days."""
        called.append(city)
        return f"18 C in {city} for {days} day(s)"

    server.enqueue(
        Reply(tool_calls=[ToolCall("get_temperature", {"town": "Paris", "days": "many"}, id="call_bad")]),
        Reply(tool_calls=[ToolCall("get_temperature", {"city": "Paris", "days": 2}, id="call_good")]),
        Reply(tokens=["18 C."]),
    )
    agent = make_agent(provider, clients, tools=[get_temperature])
    async with MiniAgents():
        messages = await aresolve(agent.inquire("Temperature?", stream=stream))
    error = messages[1]
    assert error.is_error and error.tool_call_id == "call_bad"
    assert "city: Field required" in error.text and "days: Input should be a valid integer" in error.text
    assert "town: Extra inputs are not permitted" in error.text
    assert messages[3].text == "18 C in Paris for 2 day(s)" and messages[-1].text == "18 C."
    assert called == ["Paris"]  # only the valid call ran
    assert tool_results_sent(provider, server.requests[1].body)["call_bad"] == (error.text, provider == "anthropic")


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unknown_tool_reaches_the_model_as_an_error_result_naming_the_tools(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    server.enqueue(
        Reply(tool_calls=[ToolCall("launch_rockets", {"count": 3}, id="call_x")]),
        Reply(tokens=["I cannot do that."]),
    )
    agent = make_agent(provider, clients, tools=[get_weather, researcher])
    async with MiniAgents():
        messages = await aresolve(agent.inquire("Launch!", stream=stream))
    error = messages[1]
    assert (error.tool_name, error.is_error) == ("launch_rockets", True)
    assert error.text == "Error: there is no tool named 'launch_rockets'; the tools are: get_weather, RESEARCHER."
    assert messages[-1].text == "I cannot do that."


@pytest.mark.parametrize("stream", STREAM, ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_more_rounds_than_max_tool_rounds_is_an_error_naming_the_agent(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    server.enqueue(*[Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id=f"call_{n}")]) for n in range(3)])
    agent = make_agent(provider, clients, tools=[get_weather], alias="LOOPY", max_tool_rounds=2)
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire("Weather?", stream=stream)))
    assert isinstance(error, MaxToolRoundsError)
    assert str(error).startswith("LOOPY: the model asked for tools again after 2 round(s) of tool calls")
    assert "max_tool_rounds=2" in str(error) and "get_weather" in str(error)
    assert len(chunks) == 5 and len(server.requests) == 3  # turn, result, turn, result, turn: no third round


async def test_failed_tool_calls_count_as_rounds(server: LLMWireServer, clients: SDKClients) -> None:
    server.enqueue(*[Reply(tool_calls=[ToolCall("nope", {}, id=f"call_{n}")]) for n in range(2)])
    agent = make_agent("anthropic", clients, tools=[get_weather], max_tool_rounds=1)
    async with MiniAgents():
        _, error = await within(aread_replies(agent.inquire("Weather?")))
    assert isinstance(error, MaxToolRoundsError) and len(server.requests) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_raise_tool_errors_raises_the_tools_own_error_into_the_reply_sequence(
    server: LLMWireServer, clients: SDKClients, provider: str
) -> None:
    async def get_forecast(city: str) -> str:
        """Tomorrow's forecast for a city."""
        raise LookupError(f"no forecast for {city}")

    server.enqueue(Reply(tool_calls=[ToolCall("get_forecast", {"city": "Atlantis"}, id="call_f")]))
    agent = make_agent(provider, clients, tools=[get_forecast], raise_tool_errors=True)
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire("Forecast?")))
    assert isinstance(error, LookupError) and str(error) == "no forecast for Atlantis"
    assert len(server.requests) == 1 and len(chunks) == 2  # the model turn, then the failed result


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (ToolCall("launch_rockets", {}, id="call_x"), "there is no tool named 'launch_rockets'"),
        (
            ToolCall("get_weather", {"town": "Paris"}, id="call_x"),
            "invalid arguments for get_weather: city: Field required",
        ),
    ],
    ids=["unknown-tool", "bad-arguments"],
)
async def test_raise_tool_errors_raises_tool_call_error_for_a_call_that_cannot_be_made(
    server: LLMWireServer, clients: SDKClients, call: ToolCall, expected: str
) -> None:
    server.enqueue(Reply(tool_calls=[call]))
    agent = make_agent("openai", clients, tools=[get_weather], raise_tool_errors=True, alias="STRICT")
    async with MiniAgents():
        _, error = await within(aread_replies(agent.inquire("Weather?")))
    assert isinstance(error, ToolCallError)
    assert str(error).startswith(f"STRICT: the model's call of tool {call.name!r} failed: ") and expected in str(error)


# --- pass-through tools ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_calls_of_a_raw_tool_dict_are_returned_to_the_caller_after_the_tools_run(
    server: LLMWireServer, clients: SDKClients, provider: str
) -> None:
    raw_call = ToolCall("raw_weather", {"city": "Rome"}, id="call_raw")
    server.enqueue(Reply(tool_calls=[WEATHER_CALL, raw_call]), Reply(tokens=["Both sunny."]))
    agent = make_agent(provider, clients, tools=[get_weather, RAW_WEATHER_TOOL[provider]])
    async with MiniAgents():
        turn = await aresolve(agent.inquire("Paris and Rome?"))
        assert [type(message) for message in turn] == [REPLY_CLASSES[provider], ToolResultMessage]
        assert turn[1].tool_call_id == "call_w"  # ours ran; the raw one is the caller's to answer
        own_result = ToolResultMessage("20 C in Rome", tool_call_id="call_raw", tool_name="raw_weather")
        answer = await aresolve(agent.inquire(["Paris and Rome?", *turn, own_result]))
    assert answer[-1].text == "Both sunny."
    assert set(tool_results_sent(provider, server.requests[1].body)) == {"call_w", "call_raw"}
    assert server.requests[0].body["tools"][1] == RAW_WEATHER_TOOL[provider]
