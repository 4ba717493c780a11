"""
The offline stand-in LLM: deterministic, no key, no network. NOT a real model.

It exists so that demos, notebooks and tests run anywhere, and it is a full test double of an LLM agent (like
PydanticAI's `FunctionModel`): the same agent skeleton as the OpenAI and Anthropic agents (tools, the tool loop,
structured output, the response cache and the call log all work), with replies you script.

    model = OfflineModel([
        OfflineReply(tool_calls=[OfflineToolCall("get_weather", {"city": "Paris"})]),  # first model turn
        "It is sunny in Paris.",                                                       # second model turn
    ])
    agent = create_offline_agent(model, tools=[get_weather])
    ...
    model.last_request.tools          # what the agent sent with its last model turn
    model.last_request.messages       # the conversation (tool results included)

What a model turn answers comes from the `OfflineModel`'s replies:

- a reply function `f(messages) -> str | OfflineReply` (or `f(messages, request)` to see the tools, the output
  schema and the parameters of the request; sync or async); by default a labelled echo of the last message;
- or a script: a list of replies (`str` or `OfflineReply`), one per model turn, in order (running out of it is
  an `OfflineScriptError` naming the request).

An `OfflineReply` scripts text, tool calls (`OfflineToolCall`), a structured answer (`output=`: a dict or a
pydantic model, sent as its JSON text), usage figures, a failure after N tokens (`fail_after_tokens`, `error`),
a delay per token and the stop reason. The text streams as word tokens (`tokenize`), `token_delay` seconds
apart. Every request the model receives is recorded (`requests`, `last_request`: an `OfflineRequest` with the
messages, the tools, the output schema and the parameters) for assertions.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from miniagents.ext.llm.llm_cache import LLMResponseCache
from miniagents.ext.llm.llm_common import AssistantMessage, LLMAgent, LLMRequest, create_llm_agent, message_role
from miniagents.ext.llm.llm_log import LLMLogFolder
from miniagents.ext.llm.llm_messages import ToolCallRequest, message_tool_calls, tool_calls_from
from miniagents.ext.llm.tools import Tool
from miniagents.messages import Message
from miniagents.miniagents import InteractionContext, MiniAgent

__all__ = [
    "OFFLINE_MODEL",
    "OfflineLLMAgent",
    "OfflineMessage",
    "OfflineModel",
    "OfflineReply",
    "OfflineRequest",
    "OfflineScriptError",
    "OfflineToolCall",
    "create_offline_agent",
    "default_reply",
    "tokenize",
]

OFFLINE_MODEL = "offline-stand-in"


class OfflineMessage(AssistantMessage):
    """A reply of the offline stand-in LLM (not a real model)."""


class OfflineScriptError(RuntimeError):
    """An `OfflineModel` was asked for more replies than its script holds, or its reply function misbehaved."""


@dataclass(frozen=True)
class OfflineToolCall:
    """A scripted tool call: the tool's name and its arguments (a mapping, or JSON text). `id` defaults to
    `call_<n>_<i>` (`n`: the number of messages in the request, `i`: the call's position), stable across runs."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        """The arguments as JSON text."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class OfflineReply:
    """
    One scripted model turn.

    `text` streams as word tokens; `output` (a dict, a list or a pydantic model) is a structured answer, sent
    as its JSON text after `text`; `tool_calls` are asked for after the text. `usage` (`input_tokens`,
    `output_tokens`) replaces the word counts reported by default. With `fail_after_tokens=N` the reply streams
    N tokens, then raises `error` (default: a ConnectionError saying it is scripted); not streamed, it raises
    before any text. `token_delay` (seconds) overrides the agent's; `stop_reason` the default `end_turn` /
    `tool_use`.
    """

    text: str = ""
    tool_calls: Sequence[OfflineToolCall] = ()
    output: Any = None
    usage: Mapping[str, int] | None = None
    fail_after_tokens: int | None = None
    error: BaseException | None = None
    token_delay: float | None = None
    stop_reason: str | None = None

    def __post_init__(self) -> None:
        if self.fail_after_tokens is not None and self.fail_after_tokens < 0:
            raise ValueError(f"fail_after_tokens must be >= 0, got {self.fail_after_tokens}")
        if self.error is not None and self.fail_after_tokens is None:
            raise ValueError("an OfflineReply with `error` needs `fail_after_tokens` (how many tokens come first)")
        if self.token_delay is not None and self.token_delay < 0:
            raise ValueError(f"token_delay must be >= 0, got {self.token_delay}")
        for call in self.tool_calls:
            if not isinstance(call, OfflineToolCall):
                raise TypeError(f"tool_calls must be OfflineToolCall objects, got {type(call).__name__}")

    def full_text(self) -> str:
        """The text of the reply: `text`, then the JSON of `output`."""
        if self.output is None:
            return self.text
        if isinstance(self.output, BaseModel):
            output = self.output.model_dump_json()
        elif isinstance(self.output, str):
            output = self.output
        else:
            output = json.dumps(self.output, ensure_ascii=False)
        return self.text + output


@dataclass(frozen=True)
class OfflineRequest:
    """
    What the offline model received for one model turn: the `messages` (the system prompt first, as a system
    message, when there is one), the `tools` (`{"name", "description", "parameters"}`, raw tool dicts as given),
    the `output_schema` of the output type (None without one), the other `parameters` (temperature...), the
    `model`, the `system` prompt and whether it was `stream`ed.
    """

    messages: tuple[Message, ...]
    tools: tuple[dict[str, Any], ...]
    output_schema: dict[str, Any] | None
    parameters: dict[str, Any]
    model: str
    system: Any
    stream: bool

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The names of the tools offered, in order."""
        return tuple(str(tool.get("name") or (tool.get("function") or {}).get("name")) for tool in self.tools)


ReplyValue = str | OfflineReply
ReplyFunction = Callable[..., ReplyValue | Awaitable[ReplyValue]]


def default_reply(messages: tuple[Message, ...]) -> str:
    """A deterministic, clearly labelled reply that echoes the last message."""
    if not messages:
        return "[offline stand-in LLM, not a real model] I received no messages."
    last = str(messages[-1])
    return f"[offline stand-in LLM, not a real model] I received {len(messages)} message(s). The last one says: {last}"


def tokenize(text: str) -> list[str]:
    """Split text into word-like tokens that join back to exactly `text`."""
    return re.findall(r"\s*\S+|\s+", text)


class OfflineModel:
    """
    The model behind offline agents: answers each request from a reply function or a script (see the module
    docstring), and records every request (`requests`, `last_request`).
    """

    def __init__(self, replies: ReplyFunction | Sequence[ReplyValue] = default_reply) -> None:
        if isinstance(replies, (str, OfflineReply)):
            raise TypeError("a script is a list of replies: OfflineModel([reply, ...])")
        self._function: ReplyFunction | None = None
        self._script: list[ReplyValue] | None = None
        if callable(replies):
            self._function = replies
            self._wants_request = _takes_two_arguments(replies)
        elif isinstance(replies, Sequence):
            self._script = list(replies)
            for index, reply in enumerate(self._script):
                if not isinstance(reply, (str, OfflineReply)):
                    raise TypeError(f"script[{index}] is a {type(reply).__name__}; a reply is a str or an OfflineReply")
        else:
            raise TypeError(f"OfflineModel takes a reply function or a list of replies, got {type(replies).__name__}")
        self.requests: list[OfflineRequest] = []

    @property
    def last_request(self) -> OfflineRequest:
        """The last request received. Raises LookupError when there was none yet."""
        if not self.requests:
            raise LookupError("the offline model has received no request yet")
        return self.requests[-1]

    @property
    def replies_left(self) -> int | None:
        """How many scripted replies are not used yet (None for a reply function)."""
        return None if self._script is None else len(self._script) - len(self.requests)

    async def areply(self, request: OfflineRequest) -> OfflineReply:
        """Record `request` and answer it. Raises OfflineScriptError when the script has run out."""
        self.requests.append(request)
        number = len(self.requests)
        if self._script is not None:
            if number > len(self._script):
                last = str(request.messages[-1])[:80] if request.messages else ""
                raise OfflineScriptError(
                    f"the offline model's script has no reply left for request {number} (it has {len(self._script)} "
                    f"replies); the request's last message: {last!r}"
                )
            reply: Any = self._script[number - 1]
        else:
            assert self._function is not None
            reply = (
                self._function(request.messages, request) if self._wants_request else self._function(request.messages)
            )
            if inspect.isawaitable(reply):
                reply = await reply
        if isinstance(reply, str):
            return OfflineReply(text=reply)
        if isinstance(reply, OfflineReply):
            return reply
        raise OfflineScriptError(
            f"the offline model's reply function returned a {type(reply).__name__} ({reply!r:.60}); return a str or "
            "an OfflineReply"
        )

    def __repr__(self) -> str:
        source = (
            f"script of {len(self._script)}"
            if self._script is not None
            else getattr(self._function, "__name__", "function")
        )
        return f"OfflineModel({source}, {len(self.requests)} request(s))"


def _takes_two_arguments(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def create_offline_agent(
    reply_function: ReplyFunction | OfflineModel | Sequence[ReplyValue] = default_reply,
    token_delay: float = 0.0,
    alias: str = "OFFLINE_LLM",
    model: str = OFFLINE_MODEL,
    reply_metadata: dict[str, Any] | None = None,
    response_cache: LLMResponseCache | None = None,
    llm_logger: LLMLogFolder | None = None,
    **miniagent_kwargs: Any,
) -> MiniAgent:
    """
    An agent that answers like an LLM without being one: each model turn is answered by an `OfflineModel`
    (given, or made from a reply function or a script), streamed as word tokens, `token_delay` seconds apart
    (0 = as fast as possible, still yielding control).

    Call-time kwargs `model`, `stream`, `reply_metadata`, `token_delay`, `system` (passed to the reply function
    as a first system message), `tools`, `output_type`, `max_tool_rounds`, `raise_tool_errors` and
    `output_retries` are honoured as by the real providers (a structured answer is the reply's text); other
    parameters are recorded in the request. `response_cache` and `llm_logger` work as for the real providers
    (the environment variables do not apply here).
    """
    offline_model = reply_function if isinstance(reply_function, OfflineModel) else OfflineModel(reply_function)
    return create_llm_agent(
        OfflineLLMAgent,
        alias=alias,
        description="The offline stand-in LLM: deterministic replies, NOT a real model.",
        reply_metadata=reply_metadata,
        agent_objects={"offline_model": offline_model, "response_cache": response_cache, "llm_logger": llm_logger},
        defaults={"model": model, "token_delay": token_delay, **miniagent_kwargs},
    )


class OfflineLLMAgent(LLMAgent):
    """One call of the offline stand-in LLM."""

    provider = "offline"
    response_message_class = OfflineMessage
    cache_from_env = False  # deterministic already: a cache would only get in the way

    def __init__(
        self, ctx: InteractionContext, offline_model: OfflineModel, token_delay: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(ctx, **kwargs)
        self.offline_model = offline_model
        self.token_delay = token_delay

    def _build_payload(self, messages: tuple[Message, ...]) -> dict[str, Any]:
        conversation = [offline_message(message) for message in messages]
        payload: dict[str, Any] = {"model": self.model}
        if self.system is not None:
            payload["system"] = self.system
        payload.update(self.provider_kwargs)
        if self.toolbox:
            payload["tools"] = self.toolbox.specs(offline_tool)
        if self.output is not None:
            payload["output"] = {"name": self.output.name, "schema": self.output.schema}
        return {**payload, "messages": conversation}

    async def _aproduce_tokens(self, request: LLMRequest, response: dict[str, Any]) -> AsyncGenerator[str, None]:
        messages = request.messages
        if self.system is not None:
            messages = (Message(text=self.system, role="system"), *messages)
        parameters = request.parameters
        output = parameters.pop("output", None)
        for name in ("tools", "system"):
            parameters.pop(name, None)
        reply = await self.offline_model.areply(
            OfflineRequest(
                messages=messages,
                tools=tuple(request.payload.get("tools") or ()),
                output_schema=output["schema"] if output else None,
                parameters=parameters,
                model=request.model,
                system=self.system,
                stream=request.stream,
            )
        )
        text = reply.full_text()
        tokens = tokenize(text)
        calls = [
            ToolCallRequest(
                id=call.id or f"call_{len(request.messages)}_{index}", name=call.name, arguments=call.arguments_json()
            )
            for index, call in enumerate(reply.tool_calls)
        ]
        usage = dict(reply.usage) if reply.usage is not None else None
        response["usage"] = usage or {
            "input_tokens": sum(len(tokenize(str(m))) for m in messages),
            "output_tokens": len(tokens) + sum(len(tokenize(call.arguments)) for call in calls),
        }
        response["stop_reason"] = reply.stop_reason or ("tool_use" if calls else "end_turn")
        if calls:
            response["tool_calls"] = [call.as_dict() for call in calls]
        failing = reply.fail_after_tokens
        error = reply.error or ConnectionError(
            f"offline stand-in: the scripted reply fails after {failing} token(s) (OfflineReply.fail_after_tokens)"
        )
        if not request.stream:
            if failing is not None:
                raise error
            if text:
                yield text
            return
        delay = self.token_delay if reply.token_delay is None else reply.token_delay
        for index, token in enumerate(tokens):
            if failing is not None and index >= failing:
                break
            await asyncio.sleep(delay)
            yield token
        if failing is not None:
            raise error

    def _finish_reason(self, response: dict[str, Any]) -> Any:
        return response.get("stop_reason")

    def _tool_calls(self, response: dict[str, Any]) -> tuple[ToolCallRequest, ...]:
        return tool_calls_from(response.get("tool_calls") or ())


def offline_tool(tool: Tool) -> dict[str, Any]:
    """A tool as the offline model sees it: `{"name", "description", "parameters"}`."""
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters}


def offline_message(message: Message) -> dict[str, Any]:
    """A message as the offline model's request holds it: role and text, plus tool calls and tool results."""
    entry: dict[str, Any] = {"role": message_role(message), "content": str(message)}
    calls = message_tool_calls(message)
    if calls:
        entry["tool_calls"] = [call.as_dict() for call in calls]
    for name in ("tool_call_id", "tool_name", "is_error"):
        value = getattr(message, name, None)
        if value not in (None, False):
            entry[name] = value
    return entry
