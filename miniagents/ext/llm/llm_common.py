"""What every LLM agent shares: role-typed messages and the agent skeleton."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from miniagents.messages import Message, MessagePromise
from miniagents.miniagents import InteractionContext, MiniAgents


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


class LLMAgent:
    """
    Skeleton of an LLM agent: reads the input messages, and replies with ONE streamed message whose
    preliminary metadata (role, model, agent alias) is known before the first token.

    Subclasses implement `_aproduce_tokens(messages, metadata_so_far)`.
    """

    response_message_class: type[Message] = AssistantMessage

    def __init__(
        self,
        ctx: InteractionContext,
        model: str,
        stream: bool | None = None,
        reply_metadata: dict[str, Any] | None = None,
        **provider_kwargs: Any,
    ) -> None:
        self.ctx = ctx
        self.model = model
        self.stream = MiniAgents.get_current().stream_llm_tokens_by_default if stream is None else stream
        self.reply_metadata = reply_metadata or {}
        self.provider_kwargs = provider_kwargs

    async def arun(self) -> None:
        """Reply with one streamed message promise."""
        self.ctx.reply(self._reply_promise())

    def _reply_promise(self) -> MessagePromise:
        async def token_streamer(metadata_so_far: dict[str, Any]) -> AsyncIterator[str]:
            messages = await self.ctx.messages.aresolve_messages()
            async for token in self._aproduce_tokens(messages, metadata_so_far):
                yield token

        return self.response_message_class.promise(
            message_token_streamer=token_streamer,
            role="assistant",
            model=self.model,
            agent_alias=self.ctx.this_agent.alias,
            **self.reply_metadata,
        )

    def _aproduce_tokens(self, messages: tuple[Message, ...], metadata_so_far: dict[str, Any]) -> AsyncIterator[str]:
        raise NotImplementedError


def message_role(message: Message, default: str = "user") -> str:
    """The role of a message (`role` field), or `default` when it has none."""
    role = getattr(message, "role", None)
    return role if isinstance(role, str) else default
