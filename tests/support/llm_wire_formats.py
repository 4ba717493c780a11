"""Wire shapes of the OpenAI Chat Completions and Anthropic Messages APIs, used by `llm_wire_server`.

Each dialect turns a resolved `Turn` into a plain JSON body or into SSE events split in three parts:
`head` (preamble), `body` (exactly one event per scripted token, then tool-call events) and `tail`
(finish / usage / end-of-stream events). Faults replay `head` + `body` and then misbehave.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

_FINGERPRINT = "fp_wire"
_TO_OPENAI = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length"}
_TO_ANTHROPIC = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


@dataclass(frozen=True)
class Usage:
    """Token counts of a reply.

    Sent as OpenAI `prompt_tokens`/`completion_tokens` and Anthropic `input_tokens`/`output_tokens`.
    """

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ToolCall:
    """A scripted tool call.

    `arguments` is a JSON object (a mapping, or its JSON text). `chunks`, if given, is how the arguments
    text is split into streamed fragments (`function.arguments` pieces / `input_json_delta`s) and must
    join back to exactly `arguments_json`; by default the arguments are streamed as one fragment.
    `id` defaults to a deterministic `call_…` (OpenAI) or `toolu_…` (Anthropic) id.
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None
    chunks: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(json.loads(self.arguments_json), dict):
            raise ValueError("tool call arguments must be a JSON object")
        if self.chunks is not None and "".join(self.chunks) != self.arguments_json:
            raise ValueError(f"chunks must join to the arguments JSON {self.arguments_json!r}")

    @property
    def arguments_json(self) -> str:
        """The arguments as JSON text (as sent in OpenAI's `function.arguments`)."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(dict(self.arguments))

    def fragments(self) -> list[str]:
        """The pieces in which the arguments JSON is streamed."""
        return list(self.chunks) if self.chunks is not None else [self.arguments_json]


@dataclass(frozen=True)
class Turn:
    """A reply with every default resolved; what a dialect renders."""

    seq: int
    model: str
    created: int
    tokens: list[str]
    tool_calls: list[ToolCall]
    finish_reason: str | None
    usage: Usage
    include_usage: bool
    unfinished: bool = False  # the reply ends without a finish reason (see Fault.unfinished)


def _sse(data: JSON, event: str | None = None) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class OpenAIDialect:
    """`POST /v1/chat/completions` (Chat Completions)."""

    request_id_header = "x-request-id"
    malformed_event = b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[\n\n'

    @staticmethod
    def finish_reason(turn: Turn) -> str:
        if turn.finish_reason:
            return _TO_OPENAI.get(turn.finish_reason, turn.finish_reason)
        return "tool_calls" if turn.tool_calls else "stop"

    @staticmethod
    def tool_id(turn: Turn, index: int) -> str:
        return turn.tool_calls[index].id or f"call_wire{turn.seq:04d}{index}"

    @staticmethod
    def usage(turn: Turn) -> JSON:
        u = turn.usage
        return {
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _envelope(self, turn: Turn, obj: str, choices: list[JSON]) -> JSON:
        return {
            "id": f"chatcmpl-wire{turn.seq:06d}",
            "object": obj,
            "created": turn.created,
            "model": turn.model,
            "choices": choices,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }

    def json_body(self, turn: Turn) -> JSON:
        """A complete `chat.completion` object."""
        message: JSON = {
            "role": "assistant",
            "content": "".join(turn.tokens) if turn.tokens or not turn.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if turn.tool_calls:
            message["tool_calls"] = [
                {
                    "id": self.tool_id(turn, i),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_json},
                }
                for i, c in enumerate(turn.tool_calls)
            ]
        finish = None if turn.unfinished else self.finish_reason(turn)
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return {**self._envelope(turn, "chat.completion", [choice]), "usage": self.usage(turn)}

    def _chunk(self, turn: Turn, delta: JSON | None, finish: str | None = None, usage: JSON | None = None) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        chunk = self._envelope(turn, "chat.completion.chunk", choices)
        if turn.include_usage:  # with include_usage every chunk carries `usage` (null until the last one)
            chunk["usage"] = usage
        return _sse(chunk)

    def stream(self, turn: Turn) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """SSE `chat.completion.chunk`s: role, one per token / tool fragment, finish, [usage], [DONE]."""
        role: JSON = {"role": "assistant", "content": "", "refusal": None}
        head = [self._chunk(turn, role)] if turn.tokens or not turn.tool_calls else []
        body = [self._chunk(turn, {"content": token}) for token in turn.tokens]
        for i, call in enumerate(turn.tool_calls):
            start: JSON = {
                "index": i,
                "id": self.tool_id(turn, i),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            first = {"role": "assistant", "content": None, "refusal": None} if not head and i == 0 else {}
            body.append(self._chunk(turn, {**first, "tool_calls": [start]}))
            body += [
                self._chunk(turn, {"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                for piece in call.fragments()
            ]
        if turn.unfinished:
            return head, body, [b"data: [DONE]\n\n"]
        tail = [self._chunk(turn, {}, self.finish_reason(turn))]
        if turn.include_usage:
            tail.append(self._chunk(turn, None, usage=self.usage(turn)))
        return head, body, [*tail, b"data: [DONE]\n\n"]

    @staticmethod
    def error_body(status: int, message: str) -> JSON:
        kind, code = {
            429: ("requests", "rate_limit_exceeded"),
            401: ("invalid_request_error", "invalid_api_key"),
        }.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class AnthropicDialect:
    """`POST /v1/messages` (Messages)."""

    request_id_header = "request-id"
    malformed_event = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{\n\n'
    _ERROR_TYPES = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }

    @staticmethod
    def stop_reason(turn: Turn) -> str:
        if turn.finish_reason:
            return _TO_ANTHROPIC.get(turn.finish_reason, turn.finish_reason)
        return "tool_use" if turn.tool_calls else "end_turn"

    @staticmethod
    def _blocks(turn: Turn) -> list[tuple[JSON, list[JSON], JSON]]:
        """(content_block_start block, deltas, final block) for each content block."""
        blocks = []
        if turn.tokens or not turn.tool_calls:
            text = [{"type": "text_delta", "text": t} for t in turn.tokens]
            blocks.append(({"type": "text", "text": ""}, text, {"type": "text", "text": "".join(turn.tokens)}))
        for i, call in enumerate(turn.tool_calls):
            block = {"type": "tool_use", "id": call.id or f"toolu_wire{turn.seq:04d}{i}", "name": call.name}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in call.fragments()]
            blocks.append(({**block, "input": {}}, deltas, {**block, "input": json.loads(call.arguments_json)}))
        return blocks

    def _message(self, turn: Turn, content: list[JSON], stop_reason: str | None, output_tokens: int) -> JSON:
        return {
            "id": f"msg_wire{turn.seq:06d}",
            "type": "message",
            "role": "assistant",
            "model": turn.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": turn.usage.input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
                "service_tier": "standard",
            },
        }

    def json_body(self, turn: Turn) -> JSON:
        """A complete `message` object."""
        content = [final for _, _, final in self._blocks(turn)]
        stop_reason = None if turn.unfinished else self.stop_reason(turn)
        return self._message(turn, content, stop_reason, turn.usage.output_tokens)

    def stream(self, turn: Turn) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """message_start, content_block_start, ping, one content_block_delta per token / fragment, stops."""

        def event(name: str, **data: Any) -> bytes:
            return _sse({"type": name, **data}, event=name)

        blocks = self._blocks(turn)
        head = [
            event("message_start", message=self._message(turn, [], None, 1)),
            event("content_block_start", index=0, content_block=blocks[0][0]),
            event("ping"),
        ]
        body = []
        for index, (start, deltas, _) in enumerate(blocks):
            if index:
                body += [
                    event("content_block_stop", index=index - 1),
                    event("content_block_start", index=index, content_block=start),
                ]
            body += [event("content_block_delta", index=index, delta=d) for d in deltas]
        if turn.unfinished:
            return head, body, [event("content_block_stop", index=len(blocks) - 1)]
        tail = [
            event("content_block_stop", index=len(blocks) - 1),
            event(
                "message_delta",
                delta={"stop_reason": self.stop_reason(turn), "stop_sequence": None},
                usage={"output_tokens": turn.usage.output_tokens},
            ),
            event("message_stop"),
        ]
        return head, body, tail

    def error_body(self, status: int, message: str) -> JSON:
        kind = self._ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}


# --- request validation: the checks the real APIs make on what matters for tool calls and structured output ----

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_NAME_PATTERN = "string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."


def _strict_schema_problem(schema: Any, context: str = "()") -> str | None:
    """What OpenAI's strict mode refuses in a schema (every object: all properties required, none other allowed)."""
    if isinstance(schema, list):
        for item in schema:
            problem = _strict_schema_problem(item, context)
            if problem:
                return problem
        return None
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return f"In context={context}, an object schema must list its 'properties'."
        if schema.get("additionalProperties") is not False:
            return f"In context={context}, 'additionalProperties' is required to be supplied and to be false."
        missing = [name for name in properties if name not in (schema.get("required") or [])]
        if missing:
            return (
                f"In context={context}, 'required' is required to be supplied and to be an array including every key "
                f"in properties. Missing '{missing[0]}'."
            )
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            for name, sub in value.items():
                problem = _strict_schema_problem(sub, f"('{key}', '{name}')")
                if problem:
                    return problem
        elif key in ("items", "anyOf", "allOf", "oneOf", "prefixItems"):
            problem = _strict_schema_problem(value, f"('{key}',)")
            if problem:
                return problem
    return None


def openai_request_error(body: JSON) -> str | None:
    """Why the Chat Completions API would refuse this request with HTTP 400 (None: it would take it)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Invalid 'messages': empty array. Expected an array with minimum length 1."
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            return "Invalid 'tools': empty array. Expected an array with minimum length 1."
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
                return f"Missing required parameter: 'tools[{i}].function'."
            name = function.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                return f"Invalid 'tools[{i}].function.name': {_NAME_PATTERN}"
            names.append(name)
            parameters = function.get("parameters")
            if parameters is not None and (not isinstance(parameters, dict) or parameters.get("type") != "object"):
                kind = parameters.get("type") if isinstance(parameters, dict) else None
                return f"Invalid schema for function '{name}': its schema must be of type object, got {kind!r}."
            if function.get("strict") is True:
                problem = _strict_schema_problem(parameters)
                if problem:
                    return f"Invalid schema for function '{name}': {problem}"
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            return f"Invalid value for 'tool_choice': tool '{name}' is not in 'tools'."
    elif choice is not None and choice not in ("none", "auto", "required"):
        return f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'."
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            return f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and 'json_schema'."
        if kind == "json_schema":
            json_schema = response_format.get("json_schema")
            if not isinstance(json_schema, dict) or not isinstance(json_schema.get("name"), str):
                return "Missing required parameter: 'response_format.json_schema.name'."
            if not _TOOL_NAME.match(json_schema["name"]):
                return f"Invalid 'response_format.json_schema.name': {_NAME_PATTERN}"
            schema = json_schema.get("schema")
            if not isinstance(schema, dict):
                return "Missing required parameter: 'response_format.json_schema.schema'."
            if json_schema.get("strict") is True:
                problem = _strict_schema_problem(schema)
                if problem:
                    return f"Invalid schema for response_format '{json_schema['name']}': {problem}"
    pending: list[str] = []  # tool call ids of the last assistant message, not answered yet
    answerable: set[str] = set()
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"Invalid type for 'messages[{i}]': expected an object."
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return (
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool' and 'developer'."
            )
        if role != "tool" and pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}"
            )
        content = message.get("content")
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            return f"Invalid value for 'content': expected a string, got null. (messages[{i}])"
        if content is not None and not isinstance(content, (str, list)):
            return f"Invalid type for 'messages[{i}].content': expected one of a string or array of objects."
        if role == "assistant" and message.get("tool_calls"):
            pending, answerable = [], set()
            for j, call in enumerate(message["tool_calls"]):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not isinstance(function, dict):
                    return f"Missing required parameter: 'messages[{i}].tool_calls[{j}].id'."
                if not isinstance(function.get("name"), str) or not isinstance(function.get("arguments"), str):
                    return f"Invalid type for 'messages[{i}].tool_calls[{j}].function.arguments': expected a string."
                pending.append(call["id"])
                answerable.add(call["id"])
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                return f"Missing required parameter: 'messages[{i}].tool_call_id'."
            if call_id not in answerable:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    "'tool_calls'."
                )
            if call_id in pending:
                pending.remove(call_id)
        else:
            answerable = set()
    if pending:
        return (
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}"
        )
    return None


_ANTHROPIC_BLOCKS = {
    "user": {"text", "image", "document", "tool_result", "search_result"},
    "assistant": {"text", "tool_use", "thinking", "redacted_thinking", "server_tool_use", "web_search_tool_result"},
}


def anthropic_request_error(body: JSON) -> str | None:
    """Why the Messages API would refuse this request with HTTP 400 (None: it would take it)."""
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return f"tools.{i}: Input should be a valid dictionary"
            if tool.get("type") not in (None, "custom"):
                names.append(str(tool.get("name")))  # a server tool: its own rules
                continue
            name = tool.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                return f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return f"tools.{i}.custom.input_schema.type: Input should be 'object'"
            names.append(name)
        if len(set(names)) != len(names):
            return "tools: Tool names must be unique."
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            return (
                f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the expected tags: 'auto', "
                "'any', 'tool', 'none'"
            )
        if kind in ("any", "tool") and not names:
            return "tool_choice: tool_choice may only be specified while providing tools."
        if kind == "tool" and choice.get("name") not in names:
            return f"tool_choice.name: Tool '{choice.get('name')}' not found in the provided tools"
    if messages[0].get("role") != "user" if isinstance(messages[0], dict) else True:
        return 'messages: first message must use the "user" role'
    previous_tool_uses: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if isinstance(content, str):
            blocks: list[Any] = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            blocks = content
        else:
            return f"messages.{i}.content: Input should be a valid string or list"
        tool_uses: list[str] = []
        results: list[str] = []
        seen_other = False
        for j, block in enumerate(blocks):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in _ANTHROPIC_BLOCKS[role]:
                return f"messages.{i}.content.{j}: `{kind}` blocks are not allowed in `{role}` messages"
            if kind == "text" and not block.get("text") and not (role == "assistant" and i == len(messages) - 1):
                return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
            if kind == "tool_use":
                if not isinstance(block.get("id"), str) or not isinstance(block.get("input"), dict):
                    return f"messages.{i}.content.{j}.tool_use: `id` and an object `input` are required"
                tool_uses.append(block["id"])
            elif kind == "tool_result":
                if seen_other:
                    return (
                        f"messages.{i}.content.{j}: `tool_result` blocks must come before any other content in a user "
                        "message"
                    )
                if block.get("tool_use_id") not in previous_tool_uses:
                    return (
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` "
                        "block in the previous message."
                    )
                if "is_error" in block and not isinstance(block["is_error"], bool):
                    return f"messages.{i}.content.{j}.tool_result.is_error: Input should be a valid boolean"
                results.append(block["tool_use_id"])
            else:
                seen_other = True
        unanswered = [tool_id for tool_id in previous_tool_uses if tool_id not in results]
        if unanswered:
            return (
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(unanswered)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
                "next message."
            )
        previous_tool_uses = tool_uses
    if previous_tool_uses:
        return (
            f"messages.{len(messages) - 1}: the conversation ends with `tool_use` blocks "
            f"({', '.join(previous_tool_uses)}) without a user message of `tool_result` blocks after them."
        )
    return None
