"""
OpenAI Chat Completions as a MiniAgent; OpenAI-compatible servers (Ollama, vLLM, llama.cpp) work too.

The `openai` SDK is imported only when a call is made. Without an `async_client`, a client is created
for each call from the SDK's own settings (`OPENAI_API_KEY`, `OPENAI_BASE_URL`...) and closed when the
call ends, so an agent defined at module level works in any event loop; pass your own client to reuse
its connections.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from miniagents.ext.llm.llm_cache import LLMResponseCache
from miniagents.ext.llm.llm_common import (
    AssistantMessage,
    LLMAgent,
    LLMRequest,
    create_llm_agent,
    import_sdk,
    message_role,
    plain_data,
    require_sdk,
    sdk_call_kwargs,
)
from miniagents.ext.llm.llm_log import LLMLogFolder
from miniagents.messages import Message
from miniagents.miniagents import InteractionContext, MiniAgent

__all__ = ["DEFAULT_OPENAI_MODEL", "OpenAIAgent", "OpenAIMessage", "create_openai_agent"]

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


class OpenAIMessage(AssistantMessage):
    """
    A reply of an OpenAI model. Resolved, it also carries the chat completion's own fields: `choices`
    (with `finish_reason` and the `message`, including `tool_calls`), `usage`, `id`, `model`...
    """


def create_openai_agent(
    async_client: Any | None = None,
    reply_metadata: dict[str, Any] | None = None,
    alias: str = "OPENAI_AGENT",
    response_cache: LLMResponseCache | None = None,
    llm_logger: LLMLogFolder | None = None,
    **miniagent_kwargs: Any,
) -> MiniAgent:
    """
    An agent that answers with one streamed `OpenAIMessage` from the Chat Completions API.

    Call-time kwargs (defaults may be given here too): `model` (default `gpt-4o-mini`), `stream`
    (default: the context's `stream_llm_tokens_by_default`), `system` (a system prompt put first),
    `reply_metadata`, and any Chat Completions parameter (`temperature`, `max_tokens`, `tools`...),
    passed through; parameters the installed SDK does not know go in `extra_body`. Streamed calls ask
    for usage with `stream_options={"include_usage": True}` unless `stream_options` is given (None:
    none is sent). `response_cache` records / replays responses (default: `MINIAGENTS_LLM_CACHE_DIR`),
    `llm_logger` writes each call as markdown (default: `MINIAGENTS_LLM_LOG_DIR`).

    Raises ImportError (naming the extra to install) when no client is given and `openai` is missing.
    """
    if async_client is None:
        require_sdk("openai", "openai")
    return create_llm_agent(
        OpenAIAgent,
        alias=alias,
        description="An OpenAI chat model.",
        reply_metadata=reply_metadata,
        agent_objects={"async_client": async_client, "response_cache": response_cache, "llm_logger": llm_logger},
        defaults={"model": DEFAULT_OPENAI_MODEL, **miniagent_kwargs},
    )


class OpenAIAgent(LLMAgent):
    """One call of an OpenAI agent."""

    provider = "openai"
    response_message_class = OpenAIMessage

    def __init__(self, ctx: InteractionContext, async_client: Any | None = None, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.async_client = async_client

    def _build_payload(self, messages: tuple[Message, ...]) -> dict[str, Any]:
        chat = [] if self.system is None else [{"role": "system", "content": self.system}]
        chat += [openai_chat_message(message) for message in messages]
        return {"model": self.model, "messages": chat, **self.provider_kwargs}

    async def _aproduce_tokens(self, request: LLMRequest, response: dict[str, Any]) -> AsyncIterator[str]:
        openai = import_sdk("openai", "openai")
        client = self.async_client if self.async_client is not None else openai.AsyncOpenAI()
        try:
            if request.stream:
                async for token in _astream_completion(client, request.payload, response):
                    yield token
            else:
                create = client.chat.completions.create
                completion = await create(**sdk_call_kwargs(create, request.payload))
                response.update(completion.model_dump(mode="json"))
                text = completion.choices[0].message.content if completion.choices else None
                if text:
                    yield text
        finally:
            if client is not self.async_client:
                await client.close()

    def _secrets(self) -> tuple[str, ...]:
        return (getattr(self.async_client, "api_key", None) or "", os.environ.get("OPENAI_API_KEY", ""))


def openai_chat_message(message: Message) -> dict[str, Any]:
    """
    A Message as a Chat Completions message: its role (default `user`) and text; an assistant message
    keeps its `tool_calls` (its own field, or those of a resolved OpenAIMessage), a `tool` message its
    `tool_call_id`.
    """
    role = message_role(message)
    chat: dict[str, Any] = {"role": role, "content": str(message)}
    tool_calls = getattr(message, "tool_calls", None)
    if tool_calls is None and role == "assistant":
        choices = getattr(message, "choices", None)
        if choices:
            tool_calls = getattr(getattr(choices[0], "message", None), "tool_calls", None)
    if tool_calls:
        chat["tool_calls"] = [
            {"id": call.get("id"), "type": call.get("type") or "function", "function": call.get("function")}
            for call in plain_data(tool_calls)
        ]
        if not message.text:
            chat["content"] = None
    tool_call_id = getattr(message, "tool_call_id", None)
    if tool_call_id is not None:
        chat["tool_call_id"] = tool_call_id
    return chat


async def _astream_completion(client: Any, payload: dict[str, Any], response: dict[str, Any]) -> AsyncIterator[str]:
    """Stream a chat completion: yield the text of choice 0, then put the whole completion in `response`."""
    request = {**payload, "stream": True}
    if request.setdefault("stream_options", {"include_usage": True}) is None:
        del request["stream_options"]  # for servers that reject the option
    create = client.chat.completions.create
    stream = await create(**sdk_call_kwargs(create, request))
    completion = _CompletionAssembler()
    try:
        async for chunk in stream:
            token = completion.add(chunk.model_dump(mode="json"))
            if token:
                yield token
    finally:
        await stream.close()
    response.update(completion.result())


class _CompletionAssembler:
    """Rebuilds the `chat.completion` object that a stream of `chat.completion.chunk`s describes."""

    def __init__(self) -> None:
        self.envelope: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.tool_calls: dict[int, dict[int, dict[str, Any]]] = {}
        self.usage: Any = None

    def add(self, chunk: dict[str, Any]) -> str:
        """Take one chunk in; return the text it adds to choice 0."""
        for name in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(name) is not None:
                self.envelope[name] = chunk[name]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        token = ""
        for choice in chunk.get("choices") or ():
            index = choice.get("index") or 0
            state = self.choices.setdefault(
                index,
                {
                    "index": index,
                    "message": {"role": "assistant", "content": None},
                    "finish_reason": None,
                    "logprobs": None,
                },
            )
            delta = choice.get("delta") or {}
            message = state["message"]
            message["role"] = delta.get("role") or message["role"]
            for name in ("content", "refusal"):
                if delta.get(name):
                    message[name] = (message.get(name) or "") + delta[name]
            if index == 0 and delta.get("content"):
                token = delta["content"]
            for call in delta.get("tool_calls") or ():
                self._add_tool_call_delta(index, call)
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]
            if choice.get("logprobs"):
                logprobs = state["logprobs"] = state["logprobs"] or {}
                for name, items in choice["logprobs"].items():
                    if items:
                        logprobs[name] = [*(logprobs.get(name) or ()), *items]
        return token

    def _add_tool_call_delta(self, choice_index: int, delta: dict[str, Any]) -> None:
        calls = self.tool_calls.setdefault(choice_index, {})
        call = calls.setdefault(
            delta.get("index") or 0, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        call["id"] = delta.get("id") or call["id"]
        call["type"] = delta.get("type") or call["type"]
        function = delta.get("function") or {}
        call["function"]["name"] = function.get("name") or call["function"]["name"]
        call["function"]["arguments"] += function.get("arguments") or ""

    def result(self) -> dict[str, Any]:
        """The completion, shaped (and validated when possible) like a non-streamed one."""
        choices = []
        for index in sorted(self.choices):
            choice = self.choices[index]
            calls = self.tool_calls.get(index)
            if calls:
                choice["message"]["tool_calls"] = [calls[i] for i in sorted(calls)]
            choices.append(choice)
        completion = {
            "id": self.envelope.get("id", ""),
            "object": "chat.completion",
            "created": self.envelope.get("created", 0),
            "model": self.envelope.get("model", ""),
            "choices": choices,
            "usage": self.usage,
            **{k: v for k, v in self.envelope.items() if k in ("system_fingerprint", "service_tier")},
        }
        chat_completion = import_sdk("openai.types.chat", "openai").ChatCompletion
        try:
            return chat_completion.model_validate(completion).model_dump(mode="json")
        except ValueError:  # an OpenAI-compatible server with its own ideas: keep what it sent
            return completion
