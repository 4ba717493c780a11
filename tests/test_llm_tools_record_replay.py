"""
A whole tool loop recorded with the real SDKs against the wire server, then replayed with the server stopped and no
key (LLMResponseCache), and the call log of a tool loop (LLMLogFolder), readable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from miniagents import Message, MiniAgent, MiniAgents
from miniagents.ext.llm import LLMCacheMissError, LLMLogFolder, LLMResponseCache
from miniagents.ext.llm.anthropic import create_anthropic_agent
from miniagents.ext.llm.openai import create_openai_agent
from tests.support.llm_agent_testing import SDKClients, aread_replies, within
from tests.support.llm_tool_testing import PROVIDERS, make_agent
from tests.support.llm_wire_server import LLMWireServer, Reply, ToolCall

SCRIPT = [
    Reply(tokens=["Let me", " look."], tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_1")]),
    Reply(
        tool_calls=[
            ToolCall("get_weather", {"city": "Rome"}, id="call_2"),
            ToolCall("get_weather", {"city": "Oslo"}, id="call_3"),
        ]
    ),
    Reply(tokens=["Warmest", " in Rome."]),
]
TEMPERATURES = {"Paris": 18, "Rome": 24, "Oslo": 3}


@pytest.fixture
def server() -> Iterator[LLMWireServer]:
    with LLMWireServer(validate_requests=True) as strict:
        yield strict


class WeatherStation:
    """A tool whose calls are counted (and whose readings can change)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.offset = 0

    async def get_weather(self, city: str) -> str:
        """The temperature in a city."""
        self.calls.append(city)
        await asyncio.sleep(0)
        return f"{TEMPERATURES[city] + self.offset} C in {city}"


def recordings(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def log_texts(folder: Path) -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.md"))]


async def aturn(agent: MiniAgent, stream: bool) -> tuple[list[Message], list[list[str]]]:
    """The messages of one tool-loop turn, and the token chunks of each."""
    replies = agent.inquire("Where is it warmest?", stream=stream)
    chunks, error = await within(aread_replies(replies))
    assert error is None
    return list(await within(replies.aresolve_messages())), chunks


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_multi_round_tool_loop_replays_identically_with_the_server_stopped(
    server: LLMWireServer,
    clients: SDKClients,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    provider: str,
    stream: bool,
) -> None:
    server.enqueue(*SCRIPT)
    station = WeatherStation()
    recorder = make_agent(
        provider, clients, tools=[station.get_weather], response_cache=LLMResponseCache(tmp_path, mode="record")
    )
    async with MiniAgents():
        recorded, recorded_chunks = await aturn(recorder, stream)
    assert len(recordings(tmp_path)) == 3 and station.calls == ["Paris", "Rome", "Oslo"]
    server.stop()
    for name in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    maker = create_openai_agent if provider == "openai" else create_anthropic_agent
    replayer = maker(tools=[station.get_weather], response_cache=LLMResponseCache(tmp_path, mode="replay"))
    async with MiniAgents():  # no client, no key, no server: only the recordings (and the tools, run again)
        replayed, replayed_chunks = await aturn(replayer, stream)
    assert replayed_chunks == recorded_chunks and len(replayed_chunks) == 6
    assert replayed == recorded and [m.hash_key for m in replayed] == [m.hash_key for m in recorded]
    assert [str(message) for message in replayed] == [
        "Let me look.",
        "18 C in Paris",
        "",
        "24 C in Rome",
        "3 C in Oslo",
        "Warmest in Rome.",
    ]
    assert station.calls == ["Paris", "Rome", "Oslo"] * 2  # the tools ran again: their results are in the keys


async def test_a_tool_result_that_differs_on_replay_is_a_cache_miss_not_a_wrong_replay(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path
) -> None:
    server.enqueue(*SCRIPT)
    station = WeatherStation()
    recorder = make_agent(
        "openai", clients, tools=[station.get_weather], response_cache=LLMResponseCache(tmp_path, mode="record")
    )
    replayer = create_openai_agent(
        tools=[station.get_weather], response_cache=LLMResponseCache(tmp_path, mode="replay")
    )
    async with MiniAgents():
        await within(recorder.inquire("Where is it warmest?").aresolve_messages())
        station.offset = 1  # Paris now reads 19 C: the next model turn is another request
        chunks, error = await within(aread_replies(replayer.inquire("Where is it warmest?")))
    assert isinstance(error, LLMCacheMissError)
    assert chunks == [["Let me", " look."], ["19 C in Paris"], []]  # the first turn replayed; the second: no recording


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_call_log_shows_tool_calls_and_results_readably(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path, provider: str
) -> None:
    async def get_weather(city: str) -> str:
        """The temperature in a city."""
        if city == "Atlantis":
            raise LookupError("no such city")
        return f"{TEMPERATURES[city]} C in {city}"

    server.enqueue(
        Reply(
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}, id="call_p"),
                ToolCall("get_weather", {"city": "Atlantis"}, id="call_a"),
            ]
        ),
        Reply(tokens=["Paris: 18 C."]),
    )
    agent = make_agent(provider, clients, tools=[get_weather], llm_logger=LLMLogFolder(tmp_path))
    async with MiniAgents():
        await within(agent.inquire("Weather?").aresolve_messages())
    first, second = log_texts(tmp_path)
    assert "## Tools\n\n`get_weather`\n" in first
    assert '## Tool calls asked for\n\n- → tool call `get_weather` (call_p): `{"city": "Paris"}`\n' in first
    assert '- → tool call `get_weather` (call_a): `{"city": "Atlantis"}`' in first
    assert '- → tool call `get_weather` (call_p): `{"city": "Paris"}`' in second  # in the prompt, now
    if provider == "openai":
        assert "### tool result of (call_p)\n\n```text\n18 C in Paris\n```" in second
        assert "### tool result of (call_a)\n\n```text\nError: get_weather failed: LookupError: no such city" in second
    else:
        assert "← tool result (call_p):\n\n```text\n18 C in Paris\n```" in second
        assert "← tool result (call_a), error:\n\n```text\nError: get_weather failed: LookupError" in second
