"""
The tool loop and structured output against a real OpenAI-compatible server: llama.cpp serving SmolLM2-135M-Instruct.

As in the rest of this tier, nothing depends on what the model says: a tool call is forced with `tool_choice` (so
every turn asks for the tool, and `max_tool_rounds` ends the loop), and the structured answer is constrained by the
server's JSON grammar (llama.cpp takes `{"type": "json_object", "schema": ...}`, not OpenAI's `json_schema` form, so
the response format is given explicitly and `output_type` validates the answer).
"""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from miniagents import MessagePromise, MiniAgents
from miniagents.ext.llm import MaxToolRoundsError, ToolResultMessage
from miniagents.ext.llm.openai import OpenAIMessage, create_openai_agent
from tests.support.llama_server import MODEL_ALIAS, LlamaClients, LlamaServer
from tests.support.llm_agent_testing import aread_replies, within

FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}
SECONDS = 60.0


class City(BaseModel):
    name: str
    country: str


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_a_forced_tool_call_runs_and_the_server_takes_its_result(
    llama_server: LlamaServer, llama_client: LlamaClients, stream: bool
) -> None:
    cities: list[str] = []

    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        cities.append(city)
        return f"18 C and sunny in {city}"

    agent = create_openai_agent(
        llama_client(llama_server), model=MODEL_ALIAS, temperature=0, max_tokens=48, alias="SMOLLM"
    )
    async with MiniAgents():
        replies = agent.inquire(
            "What is the weather in Paris?",
            tools=[get_weather],
            tool_choice=FORCE_WEATHER,
            max_tool_rounds=1,
            stream=stream,
        )
        chunks, error = await within(aread_replies(replies), SECONDS)
        first, result, second = [
            await piece async for piece in replies.raw_pieces() if isinstance(piece, MessagePromise)
        ]
    assert isinstance(error, MaxToolRoundsError) and len(chunks) == 3
    assert isinstance(first, OpenAIMessage) and first.choices[0].finish_reason == "tool_calls"
    assert isinstance(result, ToolResultMessage) and result.tool_call_id == first.tool_calls[0].id
    assert len(cities) == 1 and result.text == f"18 C and sunny in {cities[0]}"
    # the second turn (the assistant's call and the tool's result sent back) was taken by the server
    assert isinstance(second, OpenAIMessage) and second.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_an_answer_constrained_by_the_servers_json_grammar_validates_as_the_output_type(
    llama_server: LlamaServer, llama_client: LlamaClients, stream: bool
) -> None:
    agent = create_openai_agent(llama_client(llama_server), model=MODEL_ALIAS, temperature=0, max_tokens=64)
    grammar = {"type": "json_object", "schema": City.model_json_schema()}
    async with MiniAgents():
        replies = agent.inquire("Name a city in France.", output_type=City, response_format=grammar, stream=stream)
        (promise,) = await within(replies, SECONDS)
        tokens = [token async for token in promise]
        message = await promise
    assert isinstance(message, OpenAIMessage) and isinstance(message.output, City)  # type: ignore[attr-defined]
    assert "".join(tokens) == message.text and json.loads(message.text or "") == message.output.model_dump()  # type: ignore[attr-defined]
