"""
The offline stand-in LLM: deterministic, no key, no network. NOT a real model.

It exists so demos, notebooks and tests run anywhere. Its replies are computed from the input by a
plain function (by default a labelled echo), split into word tokens and streamed at a chosen pace.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable
from typing import Any

from miniagents.ext.llm.llm_cache import LLMResponseCache
from miniagents.ext.llm.llm_common import AssistantMessage, LLMAgent, LLMRequest, create_llm_agent, message_role
from miniagents.ext.llm.llm_log import LLMLogFolder
from miniagents.messages import Message
from miniagents.miniagents import InteractionContext, MiniAgent

OFFLINE_MODEL = "offline-stand-in"
ReplyFunction = Callable[[tuple[Message, ...]], str]


class OfflineMessage(AssistantMessage):
    """A reply of the offline stand-in LLM (not a real model)."""


def default_reply(messages: tuple[Message, ...]) -> str:
    """A deterministic, clearly labelled reply that echoes the last message."""
    if not messages:
        return "[offline stand-in LLM, not a real model] I received no messages."
    last = str(messages[-1])
    return f"[offline stand-in LLM, not a real model] I received {len(messages)} message(s). The last one says: {last}"


def tokenize(text: str) -> list[str]:
    """Split text into word-like tokens that join back to exactly `text`."""
    return re.findall(r"\s*\S+|\s+", text)


def create_offline_agent(
    reply_function: ReplyFunction = default_reply,
    token_delay: float = 0.0,
    alias: str = "OFFLINE_LLM",
    model: str = OFFLINE_MODEL,
    reply_metadata: dict[str, Any] | None = None,
    response_cache: LLMResponseCache | None = None,
    llm_logger: LLMLogFolder | None = None,
    **miniagent_kwargs: Any,
) -> MiniAgent:
    """
    An agent that answers like an LLM without being one: `reply_function(messages) -> str`, streamed
    as word tokens, `token_delay` seconds apart (0 = as fast as possible, still yielding control).

    Call-time kwargs `model`, `stream`, `reply_metadata`, `token_delay` and `system` are honoured (the
    system prompt is passed to `reply_function` as a first system message); `response_cache` and
    `llm_logger` work as for the real providers (the environment variables do not apply here).
    """
    return create_llm_agent(
        OfflineLLMAgent,
        alias=alias,
        description="The offline stand-in LLM: deterministic replies, NOT a real model.",
        reply_metadata=reply_metadata,
        agent_objects={"reply_function": reply_function, "response_cache": response_cache, "llm_logger": llm_logger},
        defaults={"model": model, "token_delay": token_delay, **miniagent_kwargs},
    )


class OfflineLLMAgent(LLMAgent):
    """One call of the offline stand-in LLM."""

    provider = "offline"
    response_message_class = OfflineMessage
    cache_from_env = False  # deterministic already: a cache would only get in the way

    def __init__(
        self, ctx: InteractionContext, reply_function: ReplyFunction, token_delay: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(ctx, **kwargs)
        self.reply_function = reply_function
        self.token_delay = token_delay

    def _build_payload(self, messages: tuple[Message, ...]) -> dict[str, Any]:
        conversation = [{"role": message_role(message), "content": str(message)} for message in messages]
        system = {} if self.system is None else {"system": self.system}
        return {"model": self.model, **system, **self.provider_kwargs, "messages": conversation}

    async def _aproduce_tokens(self, request: LLMRequest, response: dict[str, Any]) -> AsyncGenerator[str, None]:
        messages = request.messages
        if self.system is not None:
            messages = (Message(text=self.system, role="system"), *messages)
        text = self.reply_function(messages)
        tokens = tokenize(text)
        response["usage"] = {
            "input_tokens": sum(len(tokenize(str(m))) for m in messages),
            "output_tokens": len(tokens),
        }
        response["stop_reason"] = "end_turn"
        if not request.stream:
            yield text
            return
        for token in tokens:
            await asyncio.sleep(self.token_delay)
            yield token

    def _finish_reason(self, response: dict[str, Any]) -> Any:
        return response.get("stop_reason")
