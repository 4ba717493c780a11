"""Helpers for the tool-loop and structured-output tests: agents of either provider, and what reached the server."""

from __future__ import annotations

from typing import Any

from miniagents import Message, MessageSequencePromise, MiniAgent
from miniagents.ext.llm.anthropic import AnthropicMessage, create_anthropic_agent
from miniagents.ext.llm.openai import OpenAIMessage, create_openai_agent

from .llm_agent_testing import SDKClients, within

PROVIDERS = ["openai", "anthropic"]
REPLY_CLASSES: dict[str, type[Message]] = {"openai": OpenAIMessage, "anthropic": AnthropicMessage}


def make_agent(provider: str, clients: SDKClients, **kwargs: Any) -> MiniAgent:
    """An agent of `provider` with a real SDK client pointed at the wire server (no SDK retries)."""
    if provider == "openai":
        return create_openai_agent(clients.openai(max_retries=0), **kwargs)
    return create_anthropic_agent(clients.anthropic(max_retries=0), **kwargs)


async def aresolve(replies: MessageSequencePromise) -> list[Message]:
    """Every message of a reply sequence, resolved (failing instead of hanging)."""
    return list(await within(replies.aresolve_messages()))


def tool_results_sent(provider: str, body: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """The tool results a request carried: tool call id -> (content, is_error)."""
    results: dict[str, tuple[str, bool]] = {}
    for message in body["messages"]:
        if provider == "openai" and message["role"] == "tool":
            results[message["tool_call_id"]] = (message["content"], False)
        elif provider == "anthropic" and message["role"] == "user" and isinstance(message["content"], list):
            for block in message["content"]:
                if block["type"] == "tool_result":
                    results[block["tool_use_id"]] = (block.get("content", ""), block.get("is_error", False))
    return results


def tool_calls_sent(provider: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The tool calls of the assistant messages a request carried: (id, tool name), in order."""
    calls: list[tuple[str, str]] = []
    for message in body["messages"]:
        if message["role"] != "assistant":
            continue
        if provider == "openai":
            calls += [(call["id"], call["function"]["name"]) for call in message.get("tool_calls") or ()]
        elif isinstance(message["content"], list):
            calls += [(block["id"], block["name"]) for block in message["content"] if block["type"] == "tool_use"]
    return calls
