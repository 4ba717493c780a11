"""
Anthropic Messages as a MiniAgent.

The `anthropic` SDK is imported only when a call is made. Without an `async_client`, the agent makes one
on its first call from the SDK's own settings (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`...) and reuses
it. The conversation is adapted to the API's rules: system messages go to the
`system` parameter, consecutive messages of the same role are merged, and the conversation starts
with a user message (a placeholder one is inserted when it does not). Tool calls become `tool_use` blocks
and tool results `tool_result` blocks of the next user turn (with `is_error` for a failed call).
"""

from __future__ import annotations

import json
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
from miniagents.ext.llm.llm_messages import ToolCallRequest, message_tool_calls
from miniagents.ext.llm.llm_request import content_parts, message_text
from miniagents.ext.llm.structured import OutputSpec
from miniagents.ext.llm.tools import Tool
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
    "anthropic_output_tool",
    "anthropic_tool",
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
    Messages parameter (`max_tokens`, default 4096; `temperature`...), passed through.

    `tools=[...]`: MiniAgents, functions with type hints and `Tool`s are run by the agent (a tool loop, see
    `miniagents.ext.llm.tools`; `max_tool_rounds`, default 10, and `raise_tool_errors`); raw tool dicts are
    passed through and the model's calls to them returned. `output_type=` (a Message subclass or a pydantic
    model) adds an output tool named after the type, forced with `tool_choice` (or `{"type": "any"}` next to
    other tools); its input JSON streams as the reply's tokens and is validated, the errors sent back (as an
    `is_error` tool result) up to `output_retries` (default 1) times. The
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
    output_via_tool = True

    def __init__(self, ctx: InteractionContext, client: AgentSDKClient, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.client = client

    def _build_payload(self, messages: tuple[Message, ...]) -> dict[str, Any]:
        system, conversation = anthropic_conversation(messages, self.system)
        payload: dict[str, Any] = {"model": self.model, "max_tokens": DEFAULT_ANTHROPIC_MAX_TOKENS}
        if system is not None:
            payload["system"] = system
        payload = {**payload, **self.provider_kwargs}
        tools = self.toolbox.specs(anthropic_tool)
        if self.output is not None:
            tools.append(anthropic_output_tool(self.output))
            if "tool_choice" not in payload:  # the answer must come through the output tool
                only_output = len(tools) == 1
                payload["tool_choice"] = {"type": "tool", "name": self.output.name} if only_output else {"type": "any"}
        if tools:
            payload["tools"] = tools
        return {**payload, "messages": conversation}

    async def _aproduce_tokens(self, request: LLMRequest, response: dict[str, Any]) -> AsyncGenerator[str, None]:
        client = self.client.for_call(self.call_options)
        output_tool = self.output.name if self.output is not None else None
        if request.stream:
            stream_manager = client.messages.stream(**sdk_call_kwargs(client.messages.stream, request.payload))
            started = False
            output_blocks: set[int] = set()  # the indexes of the output tool's blocks: their JSON is the answer
            async with stream_manager as stream:
                async for event in stream:
                    started = started or event.type == "message_start"
                    if event.type == "text" and event.text:
                        yield event.text
                    elif event.type == "content_block_start" and output_tool is not None:
                        block = event.content_block
                        if block.type == "tool_use" and block.name == output_tool:
                            output_blocks.add(event.index)
                    elif (
                        event.type == "content_block_delta"
                        and event.index in output_blocks
                        and event.delta.type == "input_json_delta"
                        and event.delta.partial_json
                    ):
                        yield event.delta.partial_json
                if not started:  # an empty stream: no message at all (the SDK has none to give)
                    return
                message = await stream.get_final_message()
            response.update(message.model_dump(mode="json"))
        else:
            message = await client.messages.create(**sdk_call_kwargs(client.messages.create, request.payload))
            response.update(message.model_dump(mode="json"))
            text = "".join(block.text for block in message.content if block.type == "text")
            text += "".join(
                json.dumps(block.input, ensure_ascii=False)
                for block in message.content
                if block.type == "tool_use" and block.name == output_tool
            )
            if text:
                yield text

    def _finish_reason(self, response: dict[str, Any]) -> Any:
        return response.get("stop_reason")

    def _tool_calls(self, response: dict[str, Any]) -> tuple[ToolCallRequest, ...]:
        return tuple(
            ToolCallRequest(
                id=str(block.get("id") or ""),
                name=str(block.get("name")),
                arguments=json.dumps(block.get("input") or {}, ensure_ascii=False),
            )
            for block in response.get("content") or ()
            if isinstance(block, dict) and block.get("type") == "tool_use"
        )

    def _secrets(self) -> tuple[str, ...]:
        return (
            *self.client.credentials(self.call_options),
            os.environ.get("ANTHROPIC_API_KEY", ""),
            os.environ.get("ANTHROPIC_AUTH_TOKEN", ""),
        )


def anthropic_tool(tool: Tool) -> dict[str, Any]:
    """A tool as a Messages API tool."""
    spec: dict[str, Any] = {"name": tool.name}
    if tool.description:
        spec["description"] = tool.description
    spec["input_schema"] = tool.parameters
    return spec


def anthropic_output_tool(output: OutputSpec) -> dict[str, Any]:
    """The tool through which the model gives a structured answer (its input is the answer)."""
    return {"name": output.name, "description": output.tool_description, "input_schema": output.schema}


def anthropic_conversation(messages: tuple[Message, ...], system: Any = None) -> tuple[Any, list[dict[str, Any]]]:
    """
    Messages as the Messages API wants them: `(system, conversation)`.

    System messages join `system` (after the given one); other roles than `assistant` are `user`;
    consecutive messages of a role are merged; messages without text are skipped; a placeholder user
    message is put first when the conversation does not start with one. A message whose `content`
    holds non-text blocks (`tool_use`, `tool_result`...) is sent as those blocks; an assistant message's
    neutral `tool_calls` become `tool_use` blocks (when its content does not hold them already), a tool result
    (role `tool`, with a `tool_call_id`) a `tool_result` block, and a structured answer given through an
    output tool its JSON text.
    """
    system_texts: list[str] = []
    conversation: list[dict[str, Any]] = []
    for message in messages:
        role = message_role(message)
        if role == "system":
            system_texts.append(str(message))
            continue
        if role == "tool" and getattr(message, "tool_call_id", None) is not None:
            role, content = "user", [_tool_result_block(message)]
        elif role == "assistant":
            content = _assistant_content(message)
        else:
            role, content = "user", _content(message)
        if not content:
            continue  # the API rejects empty text
        if conversation and conversation[-1]["role"] == role:
            conversation[-1]["content"] = _merge(conversation[-1]["content"], content)
        else:
            conversation.append({"role": role, "content": content})
    if not conversation or conversation[0]["role"] != "user":
        conversation.insert(0, {"role": "user", "content": FIRST_USER_MESSAGE_PLACEHOLDER})
    return _join_system(system, system_texts), conversation


def _tool_result_block(message: Message) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": getattr(message, "tool_call_id", None)}
    parts = content_parts(message)
    content = message_text(message, "Anthropic") if message.text is not None or parts is None else parts
    if content:  # the API takes a result without content, not one with empty text
        block["content"] = content
    if getattr(message, "is_error", False) is True:
        block["is_error"] = True
    return block


def _assistant_content(message: Message) -> str | list[dict[str, Any]]:
    """An assistant message's text or blocks, with its neutral `tool_calls` as `tool_use` blocks."""
    if getattr(message, "output_tool", None) is not None:
        return message_text(message, "Anthropic")  # a structured answer: its JSON (no tool result follows it)
    calls = message_tool_calls(message)
    blocks = content_parts(message)
    if not calls or (blocks is not None and any(block["type"] == "tool_use" for block in blocks)):
        return _content(message)  # its own tool_use blocks (an Anthropic reply) are sent as they are
    text = message.text if message.text is not None or message.text_template is not None else None
    content = [] if not text else [{"type": "text", "text": str(message)}]
    return [
        *content,
        *({"type": "tool_use", "id": c.id, "name": c.name, "input": _tool_input(c, message)} for c in calls),
    ]


def _tool_input(call: ToolCallRequest, message: Message) -> Any:
    try:
        arguments = call.parsed_arguments()
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise ValueError(
            f"a {type(message).__name__} (role {message_role(message)!r}) has a tool call whose arguments are not a "
            f"JSON object, which Anthropic cannot take as a tool_use input: {call.name}({call.arguments!r:.120})"
        )
    return arguments


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
