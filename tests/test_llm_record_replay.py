"""Record / replay of LLM responses (LLMResponseCache): recorded once against a server, replayed without one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from miniagents import Frozen, Message, MiniAgent, MiniAgents
from miniagents.ext.llm import LLMCacheMissError, LLMRequest, LLMResponseCache, ToolResultMessage
from miniagents.ext.llm.anthropic import create_anthropic_agent
from miniagents.ext.llm.llm_messages import message_tool_calls
from miniagents.ext.llm.offline import create_offline_agent
from miniagents.ext.llm.openai import create_openai_agent
from tests.support.llm_agent_testing import API_KEY, SDKClients, aread_replies, asingle_reply, within
from tests.support.llm_wire_server import Fault, LLMWireServer, Reply, ToolCall

TURNS = ("What is a promise?", "And a streamed one?", "Thanks!")
SCRIPT = [
    Reply(tokens=["A prom", "ise is", " a value", " to come."]),
    Reply(tokens=["One", " you can", " read", " piece", " by piece."], tool_calls=[ToolCall("lookup", {"q": "x"})]),
    Reply(tokens=["You", "'re welcome", "!"]),
]


async def aconverse(agent: MiniAgent, turns: tuple[str, ...] = TURNS) -> tuple[list[Message], list[list[str]]]:
    """
    A multi-turn conversation: each turn sends the whole history so far; returns replies and token chunks. A
    reply's tool calls are answered (one result each, right after it) before the next turn, as a provider requires.
    """
    history: list[Any] = []
    replies: list[Message] = []
    chunks: list[list[str]] = []
    for turn in turns:
        history.append(turn)
        tokens, message = await asingle_reply(agent.inquire(list(history)))
        history.append(message)
        history.extend(
            ToolResultMessage(text=f"{call.name} found nothing", tool_call_id=call.id, tool_name=call.name)
            for call in message_tool_calls(message)
        )
        replies.append(message)
        chunks.append(tokens)
    return replies, chunks


def json_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def folder_entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


MAKERS: dict[str, Callable[..., MiniAgent]] = {"openai": create_openai_agent, "anthropic": create_anthropic_agent}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_replay_gives_identical_messages_and_chunks_with_the_server_stopped(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    server.enqueue(*SCRIPT)
    client = clients.openai() if provider == "openai" else clients.anthropic()
    recording_agent = MAKERS[provider](client, response_cache=LLMResponseCache(tmp_path, mode="record"))
    async with MiniAgents():
        recorded, recorded_chunks = await aconverse(recording_agent)
    assert recorded_chunks == [list(reply.tokens) for reply in SCRIPT]
    assert len(json_files(tmp_path)) == 3
    server.stop()
    # no client, no key, no server: only the recordings
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    replaying_agent = MAKERS[provider](response_cache=LLMResponseCache(tmp_path, mode="replay"))
    async with MiniAgents():
        replayed, replayed_chunks = await aconverse(replaying_agent)
    assert replayed_chunks == recorded_chunks
    assert replayed == recorded
    assert [m.hash_key for m in replayed] == [m.hash_key for m in recorded]
    assert [type(m) for m in replayed] == [type(m) for m in recorded]


async def test_recording_is_readable_json_keyed_by_the_request_hash(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path
) -> None:
    server.enqueue(SCRIPT[0])
    agent = create_openai_agent(clients.openai(), response_cache=LLMResponseCache(tmp_path, mode="record"))
    async with MiniAgents():
        _, message = await asingle_reply(agent.inquire(TURNS[0], temperature=0))
    (path,) = json_files(tmp_path)
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": TURNS[0]}], "temperature": 0}
    assert path.stem == data["request_hash"] == Frozen(provider="openai", request=payload).hash_key
    assert data["request"] == payload and data["provider"] == "openai"
    assert data["tokens"] == list(SCRIPT[0].tokens)
    assert data["response"]["choices"][0]["finish_reason"] == message.choices[0].finish_reason == "stop"
    assert API_KEY not in text


async def test_strict_replay_miss_names_the_request_and_never_calls_the_model(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path
) -> None:
    agent = create_openai_agent(clients.openai(), response_cache=LLMResponseCache(tmp_path, mode="replay"))
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire("Never recorded question")))
    assert chunks == [[]] and isinstance(error, LLMCacheMissError)
    assert "Never recorded question" in str(error) and "gpt-4o-mini" in str(error)
    assert len(str(error).split("request ")[1].split()[0]) == 40  # the request's hash_key
    assert server.requests == []


async def test_a_different_parameter_is_a_different_request(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path
) -> None:
    agent = create_openai_agent(clients.openai(), response_cache=LLMResponseCache(tmp_path, mode="record"))
    replay = create_openai_agent(response_cache=LLMResponseCache(tmp_path, mode="replay"))
    async with MiniAgents():
        await asingle_reply(agent.inquire("hi", temperature=0))
        await asingle_reply(replay.inquire("hi", temperature=0))
        _, error = await within(aread_replies(replay.inquire("hi", temperature=1)))
    assert isinstance(error, LLMCacheMissError)


async def test_auto_mode_records_misses_and_replays_hits(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path
) -> None:
    server.enqueue(SCRIPT[0])
    agent = create_anthropic_agent(clients.anthropic(), response_cache=LLMResponseCache(tmp_path, mode="auto"))
    async with MiniAgents():
        first = await asingle_reply(agent.inquire("hi"))
        second = await asingle_reply(agent.inquire("hi"))
    assert first == second and len(server.requests) == 1


async def test_off_mode_neither_reads_nor_writes(server: LLMWireServer, clients: SDKClients, tmp_path: Path) -> None:
    agent = create_openai_agent(clients.openai(), response_cache=LLMResponseCache(tmp_path, mode="off"))
    async with MiniAgents():
        await asingle_reply(agent.inquire("hi"))
        await asingle_reply(agent.inquire("hi"))
    assert len(server.requests) == 2 and folder_entries(tmp_path) == []


async def test_a_streamed_recording_replays_as_one_piece_when_not_streaming(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path
) -> None:
    server.enqueue(SCRIPT[0])
    recorder = create_openai_agent(clients.openai(), response_cache=LLMResponseCache(tmp_path, mode="record"))
    replayer = create_openai_agent(response_cache=LLMResponseCache(tmp_path, mode="replay"))
    async with MiniAgents():
        _, recorded = await asingle_reply(recorder.inquire("hi", stream=True))
        tokens, replayed = await asingle_reply(replayer.inquire("hi", stream=False))
    assert tokens == ["A promise is a value to come."] and replayed == recorded


async def test_recording_a_request_not_streamed_keeps_its_streamed_recording(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path
) -> None:
    server.enqueue(SCRIPT[1], Reply(tokens=["Whole answer."]))
    recorder = create_openai_agent(clients.openai(), response_cache=LLMResponseCache(tmp_path, mode="record"))
    replayer = create_openai_agent(response_cache=LLMResponseCache(tmp_path, mode="replay"))
    async with MiniAgents():
        streamed_tokens, streamed = await asingle_reply(recorder.inquire("hi", stream=True))
        await asingle_reply(recorder.inquire("hi", stream=False))
        replayed_tokens, replayed = await asingle_reply(replayer.inquire("hi", stream=True))
        whole_tokens, _ = await asingle_reply(replayer.inquire("hi", stream=False))
    assert len(json_files(tmp_path)) == 2
    assert replayed_tokens == streamed_tokens == list(SCRIPT[1].tokens) and replayed == streamed
    assert whole_tokens == ["Whole answer."]  # the non-streamed request has a recording of its own


def test_the_key_of_a_request_not_streamed_adds_stream_false(tmp_path: Path) -> None:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    streamed = LLMRequest(provider="openai", agent_alias="A", stream=True, payload=payload, messages=())
    not_streamed = LLMRequest(provider="openai", agent_alias="A", stream=False, payload=payload, messages=())
    assert streamed.hash_key == Frozen(provider="openai", request=payload).hash_key  # as recorded before
    assert not_streamed.hash_key == Frozen(provider="openai", request=payload, stream=False).hash_key


async def test_a_failed_call_is_not_recorded(server: LLMWireServer, clients: SDKClients, tmp_path: Path) -> None:
    server.enqueue(Fault.drop_after(["partial"]))
    client = clients.openai(max_retries=0)
    agent = create_openai_agent(client, response_cache=LLMResponseCache(tmp_path, mode="record"))
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire("hi")))
    assert chunks == [["partial"]] and error is not None
    assert json_files(tmp_path) == []


async def test_cache_from_the_environment(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINIAGENTS_LLM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MINIAGENTS_LLM_CACHE_MODE", "record")
    agent = create_openai_agent(clients.openai())
    async with MiniAgents():
        await asingle_reply(agent.inquire("hi"))
        monkeypatch.setenv("MINIAGENTS_LLM_CACHE_MODE", "replay")
        _, error = await within(aread_replies(agent.inquire("not recorded")))
    assert len(json_files(tmp_path)) == 1 and isinstance(error, LLMCacheMissError)


async def test_offline_agent_records_and_replays_too(tmp_path: Path) -> None:
    calls: list[int] = []

    def reply(messages: tuple[Message, ...]) -> str:
        calls.append(len(messages))
        return f"reply number {len(calls)}"

    recorder = create_offline_agent(reply, response_cache=LLMResponseCache(tmp_path, mode="record"))
    replayer = create_offline_agent(reply, response_cache=LLMResponseCache(tmp_path, mode="replay"))
    async with MiniAgents():
        recorded = await aconverse(recorder, TURNS[:2])
        replayed = await aconverse(replayer, TURNS[:2])
    assert replayed == recorded and calls == [1, 3]


def test_unknown_mode_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown LLM cache mode 'replya'"):
        LLMResponseCache(tmp_path, mode="replya")  # type: ignore[arg-type]
