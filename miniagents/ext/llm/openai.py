"""
OpenAI Chat Completions as a MiniAgent; OpenAI-compatible servers (Ollama, vLLM, llama.cpp) work too.

The `openai` SDK is imported only when a call is made. Without an `async_client`, the agent makes one on its
first call from the SDK's own settings (`OPENAI_API_KEY`, `OPENAI_BASE_URL`...) and reuses it, so an agent
defined at module level works in any event loop.
"""

from __future__ import annotations

import os
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
from miniagents.ext.llm.llm_messages import ToolCallRequest, message_tool_calls, tool_calls_from
from miniagents.ext.llm.llm_request import content_parts, message_text
from miniagents.ext.llm.tools import Tool
from miniagents.messages import Message
from miniagents.miniagents import InteractionContext, MiniAgent

__all__ = [
    "DEFAULT_OPENAI_MODEL",
    "OPENAI_CLIENT_OPTIONS",
    "OPENAI_CONTENT_PART_TYPES",
    "OpenAIAgent",
    "OpenAIMessage",
    "create_openai_agent",
    "openai_chat_message",
    "openai_tool",
]

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
# kwargs that configure the SDK client (`AsyncOpenAI.with_options`); they are never sent in the request
OPENAI_CLIENT_OPTIONS = frozenset(
    {"api_key", "organization", "project", "base_url", "timeout", "max_retries", "default_headers", "default_query"}
)
# the content parts of Chat Completions messages (Anthropic `image` blocks are converted to `image_url`)
OPENAI_CONTENT_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
_CONSTRUCTION_OPTIONS = frozenset({"api_key", "organization", "project", "base_url"})


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
    `reply_metadata`, and any Chat Completions parameter (`temperature`, `max_tokens`...), passed through;
    parameters the installed SDK does not know go in `extra_body`.

    `tools=[...]`: MiniAgents, functions with type hints and `Tool`s are run by the agent (a tool loop, see
    `miniagents.ext.llm.tools`; `max_tool_rounds`, default 10, and `raise_tool_errors`); raw tool dicts are
    passed through and the model's calls to them returned. `output_type=` (a Message subclass or a pydantic
    model) asks for JSON with a `json_schema` response format (strict when the schema allows it) and validates
    the answer, sending the errors back up to `output_retries` (default 1) times. The client options
    (`OPENAI_CLIENT_OPTIONS`: `max_retries`, `timeout`, `api_key`, `base_url`...) configure the SDK client
    of the call and are never sent in the request. Streamed calls ask for usage with
    `stream_options={"include_usage": True}` (added to a given `stream_options` that does not say; None: no
    `stream_options` is sent).
    `response_cache` records / replays responses (default: `MINIAGENTS_LLM_CACHE_DIR`), `llm_logger`
    writes each call as markdown (default: `MINIAGENTS_LLM_LOG_DIR`).

    A message's `content` parts (`text`, `image_url`...; Anthropic `image` blocks are converted) are sent as
    parts; content OpenAI cannot take, and a message without text or parts, fail the call with ValueError.
    A reply that ends without a `finish_reason` fails with LLMIncompleteReplyError.

    Raises ImportError (naming the extra to install) when no client is given and `openai` is missing.
    """
    if async_client is None:
        require_sdk("openai", "openai")
    client = AgentSDKClient(async_client, _make_client, _CONSTRUCTION_OPTIONS)
    return create_llm_agent(
        OpenAIAgent,
        alias=alias,
        description="An OpenAI chat model.",
        reply_metadata=reply_metadata,
        agent_objects={"client": client, "response_cache": response_cache, "llm_logger": llm_logger},
        defaults={"model": DEFAULT_OPENAI_MODEL, **miniagent_kwargs},
    )


def _make_client(**options: Any) -> Any:
    openai = import_sdk("openai", "openai")
    # a plain httpx client: the SDK's default one schedules its own closing in whatever loop collects it
    return openai.AsyncOpenAI(http_client=openai.DefaultAsyncHttpxClient(), **options)


class OpenAIAgent(LLMAgent):
    """One call of an OpenAI agent."""

    provider = "openai"
    response_message_class = OpenAIMessage
    client_options = OPENAI_CLIENT_OPTIONS

    def __init__(self, ctx: InteractionContext, client: AgentSDKClient, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.client = client

    def _build_payload(self, messages: tuple[Message, ...]) -> dict[str, Any]:
        chat = [] if self.system is None else [{"role": "system", "content": self.system}]
        chat += [openai_chat_message(message) for message in messages]
        payload = {"model": self.model, "messages": chat, **self.provider_kwargs}
        if self.toolbox:
            payload["tools"] = self.toolbox.specs(openai_tool)
        if self.output is not None and "response_format" not in payload:
            json_schema = {"name": self.output.name, "schema": self.output.schema, "strict": self.output.strict}
            if self.output.description:
                json_schema["description"] = self.output.description
            payload["response_format"] = {"type": "json_schema", "json_schema": json_schema}
        return payload

    async def _aproduce_tokens(self, request: LLMRequest, response: dict[str, Any]) -> AsyncGenerator[str, None]:
        client = self.client.for_call(self.call_options)
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

    def _finish_reason(self, response: dict[str, Any]) -> Any:
        choices = response.get("choices") or ()
        return choices[0].get("finish_reason") if choices else None

    def _tool_calls(self, response: dict[str, Any]) -> tuple[ToolCallRequest, ...]:
        choices = response.get("choices") or ()
        message = (choices[0].get("message") or {}) if choices else {}
        return tool_calls_from(message.get("tool_calls") or ())

    def _secrets(self) -> tuple[str, ...]:
        return (*self.client.credentials(self.call_options), os.environ.get("OPENAI_API_KEY", ""))


def openai_tool(tool: Tool) -> dict[str, Any]:
    """A tool as a Chat Completions function tool (strict when its schema allows it)."""
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters
    if tool.strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def openai_chat_message(message: Message) -> dict[str, Any]:
    """
    A Message as a Chat Completions message: its role (default `user`) and its text, or its `content` parts;
    an assistant message keeps its `tool_calls` (its own field, or those of a resolved OpenAIMessage), a `tool`
    message (such as a ToolResultMessage) its `tool_call_id`. A reply of another provider goes over too: its
    `tool_use` blocks are its `tool_calls`, and a structured answer given through an output tool is its text.

    Raises ValueError for content OpenAI cannot take (naming it), and for a message without text or parts.
    """
    role = message_role(message)
    tool_calls: Any = [call.as_dict() for call in message_tool_calls(message)] or None
    if tool_calls is None and role == "assistant":
        choices = getattr(message, "choices", None)
        if choices:
            tool_calls = getattr(getattr(choices[0], "message", None), "tool_calls", None)
            tool_calls = plain_data(tool_calls) if tool_calls else None
    chat: dict[str, Any] = {"role": role}
    if getattr(message, "output_tool", None) is not None:
        chat["content"] = message_text(message, "OpenAI")  # the JSON of a structured answer
    elif tool_calls and message.text is None and message.text_template is None and content_parts(message) is None:
        chat["content"] = ""
    else:
        chat["content"] = openai_content(message, skip_tool_use=bool(tool_calls) and role == "assistant")
    if tool_calls:
        chat["tool_calls"] = [
            {"id": call.get("id"), "type": call.get("type") or "function", "function": call.get("function")}
            for call in tool_calls
        ]
        # llama.cpp rejects `content: null` next to tool calls; "" is taken by it and by OpenAI alike
        chat["content"] = chat["content"] or ""
    tool_call_id = getattr(message, "tool_call_id", None)
    if tool_call_id is not None:
        chat["tool_call_id"] = tool_call_id
    return chat


def openai_content(message: Message, skip_tool_use: bool = False) -> str | list[dict[str, Any]]:
    """
    The `content` of a Chat Completions message: the message's text, or its `content` parts when it has
    parts other than text (Anthropic `image` blocks become `image_url` parts). `skip_tool_use`: leave out
    Anthropic `tool_use` blocks (an assistant message whose `tool_calls` carry them).

    Raises ValueError for a part OpenAI cannot take, and for a message without text or parts.
    """
    parts = content_parts(message)
    if parts is not None and skip_tool_use:
        parts = [part for part in parts if part["type"] != "tool_use"]
    if parts is None or (message.text is not None and all(part["type"] == "text" for part in parts)):
        return message_text(message, "OpenAI")
    return [_openai_part(part, message) for part in parts]


def _openai_part(part: dict[str, Any], message: Message) -> dict[str, Any]:
    kind = part["type"]
    if kind == "text":
        return {"type": "text", "text": part.get("text", "")}
    if kind in OPENAI_CONTENT_PART_TYPES:
        return part
    if kind == "image":  # an Anthropic image block
        source = part.get("source") or {}
        if source.get("type") == "base64" and source.get("media_type") and source.get("data"):
            return {"type": "image_url", "image_url": {"url": f"data:{source['media_type']};base64,{source['data']}"}}
        if source.get("type") == "url" and source.get("url"):
            return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise ValueError(
        f"a {type(message).__name__} (role {message_role(message)!r}) has a content part OpenAI cannot take: "
        f"{part!r:.160}; OpenAI takes parts of type {', '.join(sorted(OPENAI_CONTENT_PART_TYPES))} (and Anthropic "
        f"`image` blocks with a base64 or url source, converted to `image_url`)"
    )


async def _astream_completion(
    client: Any, payload: dict[str, Any], response: dict[str, Any]
) -> AsyncGenerator[str, None]:
    """Stream a chat completion: yield the text of choice 0, then put the whole completion in `response`."""
    request = {**payload, "stream": True}
    stream_options = request.get("stream_options", {})
    if stream_options is None:
        del request["stream_options"]  # for servers that reject the option
    elif isinstance(stream_options, dict) and "include_usage" not in stream_options:
        request["stream_options"] = {**stream_options, "include_usage": True}  # the usage is part of the reply
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
