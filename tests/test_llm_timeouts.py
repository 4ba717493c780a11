"""Timeouts on LLM calls (issue 6): a stalled provider stream ends in an exception, never a hang."""

from __future__ import annotations

import openai
import pytest

from miniagents import MiniAgents
from miniagents.ext.llm.openai import create_openai_agent
from tests.support.llm_agent_testing import SDKClients, assert_no_task_left, within
from tests.support.llm_wire_server import Fault, LLMWireServer


async def test_stalled_stream_fails_with_timeout_when_agent_has_a_per_call_timeout(
    server: LLMWireServer, clients: SDKClients
) -> None:
    server.enqueue(Fault.stall(after_tokens=["partial "]))
    # the SDK's per-request `timeout` passes through create_openai_agent like any provider parameter
    gpt = create_openai_agent(async_client=clients.openai(max_retries=0, timeout=30.0), timeout=0.5)
    async with MiniAgents():
        (message_promise,) = await within(gpt.inquire("hello"))
        tokens = []
        with pytest.raises(openai.APITimeoutError):
            async for token in message_promise:
                tokens.append(token)
        assert tokens == ["partial "]  # what streamed before the stall stays readable
        with pytest.raises(openai.APITimeoutError):
            await within(message_promise)
    await assert_no_task_left()
