"""
Nothing silently lost in an LLM reply (issue 12, SPEC §4/§4.4): a reply the provider ends without a finish reason is
an error (never an empty success, never logged ok, never recorded), empty fields never erase known metadata,
provider errors carry the agent trace, and every resolved reply keeps the provider's usage.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from miniagents import InteractionContext, MiniAgent, MiniAgents, miniagent
from miniagents.ext.llm import LLMIncompleteReplyError, LLMLogFolder, LLMResponseCache
from miniagents.ext.llm.anthropic import create_anthropic_agent
from miniagents.ext.llm.openai import create_openai_agent
from tests.support.llm_agent_testing import SDKClients, aread_replies, asingle_reply, within
from tests.support.llm_wire_server import Fault, LLMWireServer, Reply, Usage

PROVIDERS = ["openai", "anthropic"]


def make_agent(provider: str, clients: SDKClients, **kwargs: Any) -> MiniAgent:
    if provider == "openai":
        return create_openai_agent(clients.openai(max_retries=0), **kwargs)
    return create_anthropic_agent(clients.anthropic(max_retries=0), **kwargs)


def logged_texts(folder: Path) -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.md"))]


def entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def default_model(provider: str) -> str:
    return "gpt-4o-mini" if provider == "openai" else "claude-haiku-4-5"


# --- a reply without a finish reason ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reply_without_finish_reason_is_an_error_naming_agent_and_model(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    server.enqueue(Fault.unfinished(["par", "tial"]))
    agent = make_agent(provider, clients, alias="WRITER")
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire("hi", stream=stream)))
    assert chunks == [["par", "tial"] if stream else ["partial"]]  # what arrived stays readable
    assert isinstance(error, LLMIncompleteReplyError)
    assert "WRITER" in str(error) and repr(default_model(provider)) in str(error)
    assert "without a finish reason" in str(error)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_empty_reply_stream_is_an_error_naming_agent_and_model(
    server: LLMWireServer, clients: SDKClients, provider: str
) -> None:
    server.enqueue(Fault.empty_stream())  # HTTP 200 and not a single event, as llama.cpp over its context window
    agent = make_agent(provider, clients, alias="WRITER")
    async with MiniAgents():
        chunks, error = await within(aread_replies(agent.inquire("hi", stream=True)))
    assert chunks == [[]] and isinstance(error, LLMIncompleteReplyError)
    assert "WRITER" in str(error) and repr(default_model(provider)) in str(error)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reply_without_finish_reason_is_logged_as_failed(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path, provider: str
) -> None:
    server.enqueue(Fault.unfinished(["half"]))
    agent = make_agent(provider, clients, llm_logger=LLMLogFolder(tmp_path))
    async with MiniAgents():
        await within(aread_replies(agent.inquire("hi")))
    (log,) = logged_texts(tmp_path)
    assert "- status: failed: LLMIncompleteReplyError" in log and "- status: ok" not in log


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_reply_without_finish_reason_is_never_recorded(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path, provider: str
) -> None:
    server.enqueue(Fault.unfinished(["half"]), Fault.unfinished(["half"]))
    agent = make_agent(provider, clients, response_cache=LLMResponseCache(tmp_path, mode="auto"))
    async with MiniAgents():
        _, first = await within(aread_replies(agent.inquire("hi")))
        _, second = await within(aread_replies(agent.inquire("hi")))  # asked again: not answered from a recording
    assert isinstance(first, LLMIncompleteReplyError) and isinstance(second, LLMIncompleteReplyError)
    assert entries(tmp_path) == [] and len(server.requests) == 2


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_empty_model_from_the_server_keeps_the_preliminary_model(
    server: LLMWireServer, clients: SDKClients, provider: str, stream: bool
) -> None:
    server.enqueue(Reply(tokens=["ok"], model=""))
    agent = make_agent(provider, clients)
    async with MiniAgents():
        _, message = await asingle_reply(agent.inquire("hi", model="local-model", stream=stream))
    assert message.model == "local-model" and message.text == "ok"


# --- the agent trace ----------------------------------------------------------------------------------------


def outer_agent(inner: MiniAgent) -> MiniAgent:
    @miniagent(alias="OUTER")
    async def outer(ctx: InteractionContext) -> None:
        ctx.reply(inner.inquire(ctx.messages))

    return outer


FAILURES: dict[str, Callable[[], Fault]] = {
    "http-500": lambda: Fault.http_status(500),
    "dropped": lambda: Fault.drop_after(["partial"]),
    "unfinished": lambda: Fault.unfinished(["partial"]),
}


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_provider_error_while_the_reply_streams_carries_the_agent_trace(
    server: LLMWireServer, clients: SDKClients, provider: str, failure: str
) -> None:
    server.enqueue(FAILURES[failure]())
    llm = make_agent(provider, clients, alias="LLM")
    async with MiniAgents():
        _, error = await within(aread_replies(outer_agent(llm).inquire("hi")))
    assert error is not None and error.agent_trace == ("OUTER", "LLM")  # type: ignore[attr-defined]
    if sys.version_info >= (3, 11):  # exception notes exist from 3.11 on; the attribute is there on every version
        assert "agent trace: OUTER <- LLM" in getattr(error, "__notes__", [])


async def test_bad_input_error_carries_the_agent_trace(server: LLMWireServer, clients: SDKClients) -> None:
    llm = make_agent("openai", clients, alias="LLM")
    async with MiniAgents():
        _, error = await within(aread_replies(outer_agent(llm).inquire({"no_text": 1})))
    assert isinstance(error, ValueError) and error.agent_trace == ("OUTER", "LLM")  # type: ignore[attr-defined]
    assert server.requests == []


# --- usage --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_openai_reply_keeps_the_usage(server: LLMWireServer, clients: SDKClients, stream: bool) -> None:
    server.enqueue(Reply(tokens=["ok"], usage=Usage(11, 1)))
    agent = make_agent("openai", clients)
    async with MiniAgents():
        _, message = await asingle_reply(agent.inquire("hi", stream=stream))
    assert (message.usage.prompt_tokens, message.usage.completion_tokens, message.usage.total_tokens) == (11, 1, 12)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_anthropic_reply_keeps_the_usage(server: LLMWireServer, clients: SDKClients, stream: bool) -> None:
    server.enqueue(Reply(tokens=["ok"], usage=Usage(11, 1)))
    agent = make_agent("anthropic", clients)
    async with MiniAgents():
        _, message = await asingle_reply(agent.inquire("hi", stream=stream))
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 1)


async def test_openai_usage_is_asked_for_even_when_other_stream_options_are_given(
    server: LLMWireServer, clients: SDKClients
) -> None:
    server.enqueue(Reply(tokens=["ok"], usage=Usage(3, 1)))
    agent = make_agent("openai", clients)
    async with MiniAgents():
        _, message = await asingle_reply(agent.inquire("hi", stream_options={"include_obfuscation": False}))
    assert server.requests[0].body["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert message.usage.prompt_tokens == 3


async def test_a_replayed_reply_keeps_the_usage(server: LLMWireServer, clients: SDKClients, tmp_path: Path) -> None:
    server.enqueue(Reply(tokens=["ok"], usage=Usage(5, 1)))
    recorder = make_agent("openai", clients, response_cache=LLMResponseCache(tmp_path, mode="record"))
    replayer = create_openai_agent(response_cache=LLMResponseCache(tmp_path, mode="replay"))
    async with MiniAgents():
        _, recorded = await asingle_reply(recorder.inquire("hi"))
        _, replayed = await asingle_reply(replayer.inquire("hi"))
    assert replayed.usage == recorded.usage and replayed.usage.prompt_tokens == 5
