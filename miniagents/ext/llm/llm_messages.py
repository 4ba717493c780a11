"""
The messages of a conversation with an LLM: role-typed messages, tool calls and tool results.

A tool call travels in one provider-neutral shape, whatever model asked for it: an assistant message's
`tool_calls` field holds `{"id", "type": "function", "function": {"name", "arguments"}}` entries (the Chat
Completions shape; `arguments` is JSON text). Each provider module turns these, and `ToolResultMessage`s, into
its own wire form, so a reply sequence of one provider is valid history for the other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from miniagents.ext.llm.llm_request import plain_data
from miniagents.messages import Message

__all__ = [
    "AssistantMessage",
    "RetryPromptMessage",
    "SystemMessage",
    "ToolCallRequest",
    "ToolResultMessage",
    "UserMessage",
    "message_tool_calls",
]


class UserMessage(Message):
    """A message written by the user."""

    role: str = "user"


class SystemMessage(Message):
    """A system prompt."""

    role: str = "system"


class AssistantMessage(Message):
    """A message produced by a model."""

    role: str = "assistant"
    model: str | None = None
    agent_alias: str | None = None


class ToolResultMessage(Message):
    """
    The result of one tool call, as the model receives it: the tool's output as `text`, the `tool_call_id` it
    answers and the `tool_name`. `is_error` is true when the call failed (the tool raised, its arguments were
    invalid, or the tool is unknown): the text then says what went wrong, so that the model can recover.
    """

    role: str = "tool"
    tool_call_id: str
    tool_name: str
    is_error: bool = False


class RetryPromptMessage(UserMessage):
    """What an LLM agent sends back to the model when its structured answer did not validate: the errors."""


@dataclass(frozen=True)
class ToolCallRequest:
    """One tool call a model asked for: its id, the tool's name and the arguments as JSON text."""

    id: str
    name: str
    arguments: str

    def as_dict(self) -> dict[str, Any]:
        """The call in the neutral (Chat Completions) shape of an assistant message's `tool_calls`."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    def parsed_arguments(self) -> Any:
        """The arguments parsed from JSON (raises ValueError when they are not JSON)."""
        return json.loads(self.arguments) if self.arguments.strip() else {}


def message_tool_calls(message: Message) -> tuple[ToolCallRequest, ...]:
    """
    The tool calls an assistant message carries in its `tool_calls` field (the neutral shape), in order; an
    empty tuple when it has none. Entries that are not tool calls are skipped.
    """
    return tool_calls_from(plain_data(getattr(message, "tool_calls", None)) or ())


def tool_calls_from(entries: Iterable[Any]) -> tuple[ToolCallRequest, ...]:
    """Tool calls from plain `{"id", "function": {"name", "arguments"}}` dicts (arguments as text or an object)."""
    calls = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        function = entry.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
        calls.append(ToolCallRequest(id=str(entry.get("id") or ""), name=function["name"], arguments=arguments))
    return tuple(calls)
