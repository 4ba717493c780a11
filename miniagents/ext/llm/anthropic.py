"""
Anthropic Messages as a MiniAgent.

The `anthropic` SDK is imported only when a call is made. Without an `async_client`, the agent makes one
on its first call from the SDK's own settings (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`...) and reuses
it. The conversation is adapted to the API's rules: system messages go to the
`system` parameter, consecutive messages of the same role are merged, and the conversation starts
with a user message (a placeholder one is inserted when it does not).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncGenerator
from typing import Any

from miniagents.ext.llm.llm_cache import LLMResponseCache
from miniagents.ext.llm.llm_common import (
    AgentSDKClient,
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
from miniagents.ext.llm.llm_request import content_parts, message_text
from miniagents.messages import Message
from miniagents.miniagents import InteractionContext, MiniAgent

__all__ = [
    "ANTHROPIC_CLIENT_OPTIONS",
    "DEFAULT_ANTHROPIC_MAX_TOKENS",
    "DEFAULT_ANTHROPIC_MODEL",
    "FIRST_USER_MESSAGE_PLACEHOLDER",
    "AnthropicAgent",
    "AnthropicMessage",
    "anthropic_conversation",
    "create_anthropic_agent",
]

DEFAULT_ANTHROPIC_MODEL = "claude-haiku-4-5"
DEFAULT_ANTHROPIC_MAX_TOKENS = 4096  # the API requires max_tokens
FIRST_USER_MESSAGE_PLACEHOLDER = "..."
# kwargs that configure the SDK client (`AsyncAnthropic.with_options`); they are never sent in the request
ANTHROPIC_CLIENT_OPTIONS = frozenset(
    {"api_key", "auth_token", "base_url", "timeout", "max_retries", "default_headers", "default_query"}
)
_CONSTRUCTION_OPTIONS = frozenset({"api_key", "auth_token", "base_url"})
# OpenAI content parts that have no Anthropic block (`image_url` parts are converted to `image` blocks)
_OPENAI_ONLY_PART_TYPES = frozenset({"image_url", "input_audio", "file", "refusal"})


class AnthropicMessage(AssistantMessage):
    """
    A reply of an Anthropic model. Resolved, it also carries the API message's own fields:
    `stop_reason`, `usage`, `content` (the blocks, including `tool_use`), `id`, `model`...
    """


def create_anthropic_agent(
    async_client: Any | None = None,
    reply_metadata: dict[str, Any] | None = None,
    alias: str = "ANTHROPIC_AGENT",
    response_cache: LLMResponseCache | None = None,
    llm_logger: LLMLogFolder | None = None,
    **miniagent_kwargs: Any,
) -> MiniAgent:
    """
    An agent that answers with one streamed `AnthropicMessage` from the Messages API.

    Call-time kwargs (defaults may be given here too): `model` (default `claude-haiku-4-5`), `stream`
    (default: the context's `stream_llm_tokens_by_default`), `system`, `reply_metadata`, and any
    Messages parameter (`max_tokens`, default 4096; `temperature`, `tools`...), passed through. The client
    options (`ANTHROPIC_CLIENT_OPTIONS`: `max_retries`, `timeout`, `api_key`, `base_url`...) configure the SDK
    client of the call and are never sent in the request. `response_cache` records / replays responses
    (default: `MINIAGENTS_LLM_CACHE_DIR`), `llm_logger` writes each call as markdown (default:
    `MINIAGENTS_LLM_LOG_DIR`).

    A message's `content` blocks are sent as blocks (OpenAI `image_url` parts are converted to `image` blocks);
    other OpenAI-only parts, and a message without text or blocks, fail the call with ValueError. A reply that
    ends without a `stop_reason` fails with LLMIncompleteReplyError.

    Raises ImportError (naming the extra to install) when no client is given and `anthropic` is missing.
    """
    if async_client is None:
        require_sdk("anthropic", "anthropic")
    client = AgentSDKClient(async_client, _make_client, _CONSTRUCTION_OPTIONS)
    return create_llm_agent(
        AnthropicAgent,
        alias=alias,
        description="An Anthropic Claude model.",
        reply_metadata=reply_metadata,
        agent_objects={"client": client, "response_cache": response_cache, "llm_logger": llm_logger},
        defaults={"model": DEFAULT_ANTHROPIC_MODEL, **miniagent_kwargs},
    )


def _make_client(**options: Any) -> Any:
    anthropic = import_sdk("anthropic", "anthropic")
    # a plain httpx client: the SDK's default one schedules its own closing in whatever loop collects it
    return anthropic.AsyncAnthropic(http_client=anthropic.DefaultAsyncHttpxClient(), **options)


class AnthropicAgent(LLMAgent):
    """One call of an Anthropic agent."""

    provider = "anthropic"
    response_message_class = AnthropicMessage
    client_options = ANTHROPIC_CLIENT_OPTIONS

    def __init__(self, ctx: InteractionContext, client: AgentSDKClient, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.client = client

    def _build_payload(self, messages: tuple[Message, ...]) -> dict[str, Any]:
        system, conversation = anthropic_conversation(messages, self.system)
        payload: dict[str, Any] = {"model": self.model, "max_tokens": DEFAULT_ANTHROPIC_MAX_TOKENS}
        if system is not None:
            payload["system"] = system
        return {**payload, **self.provider_kwargs, "messages": conversation}

    async def _aproduce_tokens(self, request: LLMRequest, response: dict[str, Any]) -> AsyncGenerator[str, None]:
        client = self.client.for_call(self.call_options)
        if request.stream:
            stream_manager = client.messages.stream(**sdk_call_kwargs(client.messages.stream, request.payload))
            started = False
            async with stream_manager as stream:
                async for event in stream:
                    started = started or event.type == "message_start"
                    if event.type == "text" and event.text:
                        yield event.text
                if not started:  # an empty stream: no message at all (the SDK has none to give)
                    return
                message = await stream.get_final_message()
            response.update(message.model_dump(mode="json"))
        else:
            message = await client.messages.create(**sdk_call_kwargs(client.messages.create, request.payload))
            response.update(message.model_dump(mode="json"))
            text = "".join(block.text for block in message.content if block.type == "text")
            if text:
                yield text

    def _finish_reason(self, response: dict[str, Any]) -> Any:
        return response.get("stop_reason")

    def _secrets(self) -> tuple[str, ...]:
        return (
            *self.client.credentials(self.call_options),
            os.environ.get("ANTHROPIC_API_KEY", ""),
            os.environ.get("ANTHROPIC_AUTH_TOKEN", ""),
        )


def anthropic_conversation(messages: tuple[Message, ...], system: Any = None) -> tuple[Any, list[dict[str, Any]]]:
    """
    Messages as the Messages API wants them: `(system, conversation)`.

    System messages join `system` (after the given one); other roles than `assistant` are `user`;
    consecutive messages of a role are merged; messages without text are skipped; a placeholder user
    message is put first when the conversation does not start with one. A message whose `content`
    holds non-text blocks (`tool_use`, `tool_result`...) is sent as those blocks.
    """
    system_texts: list[str] = []
    conversation: list[dict[str, Any]] = []
    for message in messages:
        role = message_role(message)
        if role == "system":
            system_texts.append(str(message))
            continue
        role = "assistant" if role == "assistant" else "user"
        content = _content(message)
        if not content:
            continue  # the API rejects empty text
        if conversation and conversation[-1]["role"] == role:
            conversation[-1]["content"] = _merge(conversation[-1]["content"], content)
        else:
            conversation.append({"role": role, "content": content})
    if not conversation or conversation[0]["role"] != "user":
        conversation.insert(0, {"role": "user", "content": FIRST_USER_MESSAGE_PLACEHOLDER})
    return _join_system(system, system_texts), conversation


def _content(message: Message) -> str | list[dict[str, Any]]:
    """The message's text, or its `content` blocks when it has blocks other than text."""
    blocks = content_parts(message)
    if blocks is None or (message.text is not None and all(block["type"] == "text" for block in blocks)):
        return message_text(message, "Anthropic")
    return [_anthropic_block(block, message) for block in blocks]


def _anthropic_block(block: dict[str, Any], message: Message) -> dict[str, Any]:
    kind = block["type"]
    if kind not in _OPENAI_ONLY_PART_TYPES:
        return block  # Anthropic's own vocabulary: the API validates it
    if kind == "image_url":  # an OpenAI image part
        image = block.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if isinstance(url, str):
            data_url = re.fullmatch(r"data:([\w.+-]+/[\w.+-]+);base64,(.+)", url, flags=re.DOTALL)
            if data_url:
                source = {"type": "base64", "media_type": data_url.group(1), "data": data_url.group(2)}
                return {"type": "image", "source": source}
            if not url.startswith("data:"):
                return {"type": "image", "source": {"type": "url", "url": url}}
    raise ValueError(
        f"a {type(message).__name__} (role {message_role(message)!r}) has a content part Anthropic cannot take: "
        f"{block!r:.160}; OpenAI-only parts ({', '.join(sorted(_OPENAI_ONLY_PART_TYPES))}) have no Anthropic block, "
        f"except `image_url` with an http(s) URL or a base64 data URL, which becomes an `image` block"
    )


def _merge(first: str | list[dict[str, Any]], second: str | list[dict[str, Any]]) -> Any:
    if isinstance(first, str) and isinstance(second, str):
        return f"{first}\n\n{second}"
    return [*_as_blocks(first), *_as_blocks(second)]


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _join_system(system: Any, system_texts: list[str]) -> Any:
    """The `system` parameter: the given one (text or blocks) followed by the system messages."""
    if system is not None and not isinstance(system, str):
        system = plain_data(system)
    if not system_texts:
        return system
    if system is None or isinstance(system, str):
        return "\n\n".join([system, *system_texts] if system else system_texts)
    return [*system, *({"type": "text", "text": text} for text in system_texts)]
