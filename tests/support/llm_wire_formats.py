"""Wire shapes of the OpenAI Chat Completions and Anthropic Messages APIs, used by `llm_wire_server`.

Each dialect turns a resolved `Turn` into a plain JSON body or into SSE events split in three parts:
`head` (preamble), `body` (exactly one event per scripted token, then tool-call events) and `tail`
(finish / usage / end-of-stream events). Faults replay `head` + `body` and then misbehave.
"""

from __future__ import annotations

import json
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
