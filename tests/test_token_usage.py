"""The run's token usage (SPEC 4.4): the providers' `usage` of every LLM reply, added up by model in the context."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniagents import MiniAgents
from miniagents.ext.llm.anthropic import create_anthropic_agent
from miniagents.ext.llm.offline import OfflineModel, OfflineReply, create_offline_agent
from miniagents.ext.llm.openai import create_openai_agent
from miniagents.usage import ModelUsage, TokenUsage, usage_of
from tests.support.llm_agent_testing import SDKClients
from tests.support.llm_wire_server import LLMWireServer, Reply, Usage


def test_usage_of_reads_every_provider_shape() -> None:
    assert usage_of({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}) == ModelUsage(7, 3, 1)
    assert usage_of({"input_tokens": 5, "output_tokens": 2}) == ModelUsage(5, 2, 1)
    anthropic_cached = {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 2}
    assert usage_of(anthropic_cached) == ModelUsage(105, 2, 1)
    assert usage_of(None) is None and usage_of({}) is None and usage_of({"prompt_tokens": "7"}) is None


@given(st.one_of(st.none(), st.text(), st.integers(), st.lists(st.integers()), st.dictionaries(st.text(), st.text())))
def test_usage_without_token_counts_adds_nothing(usage: object) -> None:
    totals = TokenUsage()
    assert totals.add("model", usage) is None
    assert not totals and totals.input_tokens == 0


async def test_offline_replies_add_their_usage_to_the_context_by_model() -> None:
    model = OfflineModel([OfflineReply("one two", usage={"input_tokens": 10, "output_tokens": 2})] * 2)
    agent = create_offline_agent(model)
    async with MiniAgents() as context:
        await agent.inquire("hi").aresolve_messages()
        await agent.inquire("hi", model="other-model").aresolve_messages()
        usage = context.token_usage  # type: ignore[attr-defined]
        assert usage.by_model() == {"offline-stand-in": ModelUsage(10, 2, 1), "other-model": ModelUsage(10, 2, 1)}
        assert (usage.input_tokens, usage.output_tokens, usage.replies) == (20, 4, 2)
        assert usage.as_dict()["other-model"] == {"input_tokens": 10, "output_tokens": 2, "replies": 1}


async def test_a_failed_reply_adds_no_usage() -> None:
    model = OfflineModel([OfflineReply("a b c", fail_after_tokens=1)])
    async with MiniAgents() as context:
        with pytest.raises(ConnectionError):
            await create_offline_agent(model).inquire("hi").aresolve_messages()
        assert not context.token_usage  # type: ignore[attr-defined]


@pytest.mark.parametrize("stream", [True, False])
async def test_real_sdk_replies_add_the_provider_usage(
    server: LLMWireServer, clients: SDKClients, stream: bool
) -> None:
    server.enqueue(Reply(tokens=["Hel", "lo"], usage=Usage(7, 3)), Reply(tokens=["Hi"], usage=Usage(11, 1)))
    openai_agent = create_openai_agent(clients.openai())
    anthropic_agent = create_anthropic_agent(clients.anthropic())
    async with MiniAgents() as context:
        await openai_agent.inquire("hello", stream=stream).aresolve_messages()
        await anthropic_agent.inquire("hello", stream=stream, model="claude-test").aresolve_messages()
        by_model = context.token_usage.by_model()  # type: ignore[attr-defined]
    assert by_model["gpt-4o-mini"] == ModelUsage(7, 3, 1)
    assert by_model["claude-test"] == ModelUsage(11, 1, 1)
