"""A scriptable fake LLM HTTP server that the real `openai` and `anthropic` SDKs can talk to.

    with LLMWireServer() as server:
        client = openai.AsyncOpenAI(api_key="test-key", base_url=server.openai_base_url)
        server.enqueue(Reply(tokens=["Hel", "lo", "!"]), Fault.http_status(429, retry_after=0.01))
        ...
        assert server.requests[0].body["model"] == "gpt-4o-mini"

Endpoints: `POST /v1/chat/completions` (also `/chat/completions`) and `POST /v1/messages` (also `/messages`),
plain JSON or SSE (`"stream": true`). Every request takes the next item from one FIFO queue shared by both
endpoints; when the queue is empty the reply echoes the last user message, tokenised by words.

Requests are checked the way the providers check them where it matters for tool calls and structured output
(`openai_request_error` / `anthropic_request_error`: every tool call answered right after it, tool results only
for the calls just made, tool and schema shapes, `tool_choice` naming a tool...): a request the provider would
refuse gets its HTTP 400, and takes nothing from the queue (on by default; `LLMWireServer(validate_requests=False)`
serves such requests anyway, for a test that sends one on purpose).
The server runs in its own thread on 127.0.0.1:<free port> and never depends on the caller's event loop.
"""

from __future__ import annotations

import itertools
import json
import re
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

from .llm_wire_formats import (
    JSON,
    AnthropicDialect,
    OpenAIDialect,
    ToolCall,
    Turn,
    Usage,
    anthropic_request_error,
    openai_request_error,
)

__all__ = ["Fault", "LLMWireServer", "RecordedRequest", "Reply", "ToolCall", "Usage"]

_DIALECTS: dict[str, OpenAIDialect | AnthropicDialect] = {
    "/v1/chat/completions": OpenAIDialect(),
    "/chat/completions": OpenAIDialect(),
    "/v1/messages": AnthropicDialect(),
    "/messages": AnthropicDialect(),
}
_SECRET_HEADERS = frozenset({"authorization", "x-api-key"})


@dataclass(frozen=True)
class Reply:
    """A scripted successful reply.

    `tokens` are streamed one delta per token (OpenAI additionally sends its usual leading role chunk with
    `content: ""`); in JSON mode they are joined. `tool_calls` follow the text. `model` defaults to the
    request's model (`""` sends an empty model, as some compatible servers do); `finish_reason` defaults to
    stop / tool_calls (OpenAI) = end_turn / tool_use (Anthropic) and is translated between the two
    vocabularies. `usage` defaults to (words in the request's messages, number of tokens + tool fragments).
    `token_delay` seconds are waited before each streamed token event.

    `output` is a structured answer (a JSON object, or its JSON text), sent the way each provider sends one:
    OpenAI as the message content (after `tokens`), Anthropic as the input of a call of the tool the request
    forces with `tool_choice` (before `tool_calls`). `output_chunks` splits its JSON text into streamed
    fragments (they must join to it; by default it is one fragment).
    """

    tokens: Sequence[str] = ()
    tool_calls: Sequence[ToolCall] = ()
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    token_delay: float = 0.0
    output: Mapping[str, Any] | str | None = None
    output_chunks: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.output is not None and self.output_chunks is not None:
            text = self.output if isinstance(self.output, str) else json.dumps(dict(self.output))
            if "".join(self.output_chunks) != text:
                raise ValueError(f"output_chunks must join to the output JSON {text!r}")

    def output_json(self) -> str:
        """The output as JSON text (empty without one)."""
        if self.output is None:
            return ""
        return self.output if isinstance(self.output, str) else json.dumps(dict(self.output))


FaultKind = Literal["http_status", "drop", "malformed", "stall", "unfinished", "empty"]


@dataclass(frozen=True)
class Fault:
    """A scripted failure; build it with one of the class methods.

    For streamed requests `tokens` are sent as normal deltas before the fault strikes. For non-streamed
    requests: `drop` sends half of the promised JSON body then closes, `malformed` sends a complete
    response whose JSON body is truncated, `stall` sends nothing, `unfinished` sends a complete body whose
    finish reason is null.
    """

    kind: FaultKind
    tokens: tuple[str, ...] = ()
    status: int = 500
    retry_after: float | None = None
    message: str = "Scripted failure from LLMWireServer"

    @classmethod
    def http_status(cls, status: int, *, retry_after: float | None = None, message: str | None = None) -> Fault:
        """Answer with HTTP `status` and the provider's error JSON; `retry_after` (seconds) sets the
        `retry-after` and `retry-after-ms` headers (note: the SDKs treat 0 as absent and back off ~0.5 s)."""
        return cls(
            "http_status",
            status=status,
            retry_after=retry_after,
            message=message or f"Scripted HTTP {status}",
        )

    @classmethod
    def drop_after(cls, tokens: Sequence[str] = ()) -> Fault:
        """Stream `tokens`, then close the TCP connection without finishing the response."""
        return cls("drop", tokens=tuple(tokens))

    @classmethod
    def malformed_event(cls, after_tokens: Sequence[str] = ()) -> Fault:
        """Stream `after_tokens`, then an SSE event whose data is invalid JSON, then end the response."""
        return cls("malformed", tokens=tuple(after_tokens))

    @classmethod
    def unfinished(cls, tokens: Sequence[str] = ()) -> Fault:
        """Stream `tokens`, then end the response cleanly but without a finish reason, as llama.cpp does when
        it aborts a generation (OpenAI: no chunk has a `finish_reason`, no usage, then `[DONE]`; Anthropic:
        no `message_delta` / `message_stop`)."""
        return cls("unfinished", tokens=tuple(tokens))

    @classmethod
    def empty_stream(cls) -> Fault:
        """Answer a streamed request with HTTP 200 and a stream that ends at once, without a single event (what
        llama.cpp's server does with a prompt over its context window). A non-streamed request gets an empty
        JSON body."""
        return cls("empty")

    @classmethod
    def stall(cls, after_tokens: Sequence[str] = ()) -> Fault:
        """Stream `after_tokens`, then go silent (socket open) until the client or the server hangs up."""
        return cls("stall", tokens=tuple(after_tokens))


Script = Reply | Fault


@dataclass(frozen=True)
class RecordedRequest:
    """One received HTTP request. Header names are lower-case; `body` is the parsed JSON (None if not JSON);
    `client_port` is the client's end of the TCP connection (requests sent over one kept-alive connection share
    it). Header values are kept out of `repr` so that credentials never end up in test output."""

    method: str
    path: str
    headers: Mapping[str, str] = field(repr=False)
    body: Any
    client_port: int | None = None

    @property
    def api_key(self) -> str | None:
        """The credential the client sent (`x-api-key`, or the token of `Authorization: Bearer …`)."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

    def redacted_headers(self) -> dict[str, str]:
        """The headers with credential values replaced by `***`, safe to print."""
        return {k: "***" if k in _SECRET_HEADERS else v for k, v in self.headers.items()}


def _has_null_content(body: JSON) -> bool:
    return any(isinstance(m, dict) and "content" in m and m["content"] is None for m in body.get("messages") or [])


def _text_of(content: Any) -> str:
    """Text of an OpenAI/Anthropic message `content` (a string or a list of parts/blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


class _State:
    """Everything shared between the test thread and the handler threads, behind one lock."""

    def __init__(self, reject_null_content: bool = False, validate_requests: bool = True) -> None:
        self.reject_null_content = reject_null_content
        self.validate_requests = validate_requests
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.queue: deque[Script] = deque()
        self.requests: list[RecordedRequest] = []
        self.connections: set[socket.socket] = set()
        self.seq = itertools.count(1)

    def take(self, body: JSON) -> tuple[Script, int]:
        """The next scripted item (or the default echo reply) and a sequence number for ids."""
        with self.lock:
            item = self.queue.popleft() if self.queue else None
            seq = next(self.seq)
        if item is None:
            users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
            item = Reply(tokens=re.findall(r"\s*\S+", _text_of(users[-1].get("content")) if users else ""))
        return item, seq

    def track(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections.add(conn)
            if self.stopping.is_set():
                _shutdown(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections.discard(conn)

    def close_connections(self) -> None:
        """Shut down every open socket so that handlers blocked on keep-alive reads return."""
        with self.lock:
            for conn in self.connections:
                _shutdown(conn)


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _resolve(item: Script, body: JSON, seq: int, anthropic: bool) -> Turn:
    """Fill in the defaults of a reply (or of the tokens a fault sends first)."""
    reply = item if isinstance(item, Reply) else Reply(tokens=item.tokens)
    tokens, tool_calls = list(reply.tokens), list(reply.tool_calls)
    if reply.output is not None:
        chunks = list(reply.output_chunks) if reply.output_chunks is not None else [reply.output_json()]
        if anthropic:
            choice = body.get("tool_choice") or {}
            if choice.get("type") != "tool":
                raise ValueError("Reply.output needs a request that forces a tool with tool_choice {'type': 'tool'}")
            tool_calls.insert(0, ToolCall(choice["name"], reply.output_json(), chunks=chunks))
        else:
            tokens += chunks
    usage = reply.usage
    if usage is None:
        texts = [_text_of(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict)]
        prompt_words = len(" ".join([_text_of(body.get("system")), *texts]).split())
        fragments = sum(len(c.fragments()) for c in tool_calls)
        usage = Usage(input_tokens=prompt_words, output_tokens=len(tokens) + fragments)
    stream_options = body.get("stream_options") or {}
    unfinished = isinstance(item, Fault) and item.kind == "unfinished"
    return Turn(
        seq=seq,
        model=reply.model if reply.model is not None else str(body.get("model") or "wire-model"),
        created=int(time.time()),
        tokens=tokens,
        tool_calls=tool_calls,
        finish_reason=reply.finish_reason,
        usage=usage,
        include_usage=bool(stream_options.get("include_usage")) and not unfinished,
        unfinished=unfinished,
    )


class _Handler(BaseHTTPRequestHandler):
    """Parses and records a request, then plays the scripted item for it."""

    protocol_version = "HTTP/1.1"  # keep-alive, chunked streaming, like the real APIs
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    def setup(self) -> None:
        super().setup()
        self.server.state.track(self.connection)

    def finish(self) -> None:
        self.server.state.untrack(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_POST(self) -> None:
        state = self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = urlsplit(self.path).path
        headers = {k.lower(): v for k, v in self.headers.items()}
        with state.lock:
            state.requests.append(RecordedRequest("POST", path, headers, body, self.client_address[1]))
        dialect = _DIALECTS.get(path.rstrip("/"))
        if dialect is None or not isinstance(body, dict):
            self._send_json(404 if dialect is None else 400, {"error": {"message": f"Unsupported: POST {path}"}}, {})
            return
        if state.reject_null_content and _has_null_content(body):
            # what llama.cpp's server does with `"content": null` (it takes a string or a list of parts)
            self._send_json(500, dialect.error_body(500, "message content must be a string or an array"), {})
            return
        if state.validate_requests:
            problem = (anthropic_request_error if isinstance(dialect, AnthropicDialect) else openai_request_error)(body)
            if problem is not None:  # what the provider answers to a request it refuses
                self._send_json(400, dialect.error_body(400, problem), {})
                return
        item, seq = state.take(body)
        try:
            self._play(dialect, body, item, seq)
        except OSError:  # the client went away; nothing more to say
            self.close_connection = True

    def _play(self, dialect: OpenAIDialect | AnthropicDialect, body: JSON, item: Script, seq: int) -> None:
        headers = {dialect.request_id_header: f"req_wire{seq:06d}"}
        fault = item if isinstance(item, Fault) else None
        if fault is not None and fault.kind == "http_status":
            if fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
                headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
            self._send_json(fault.status, dialect.error_body(fault.status, fault.message), headers)
            return
        if fault is not None and fault.kind == "empty":
            if body.get("stream"):
                self._start_stream(headers)
                self.wfile.write(b"0\r\n\r\n")
            else:
                self._send_json(200, b"", headers)
            return
        try:
            turn = _resolve(item, body, seq, isinstance(dialect, AnthropicDialect))
        except ValueError as exc:  # a script that does not fit the request: a bug in the test, said loudly
            self._send_json(500, dialect.error_body(500, f"LLMWireServer: {exc}"), headers)
            return
        if not body.get("stream"):
            payload = json.dumps(dialect.json_body(turn)).encode()
            if fault is None or fault.kind == "unfinished":
                self._send_json(200, payload, headers)
            elif fault.kind == "stall":
                self._stall()
            elif fault.kind == "malformed":  # a complete response whose JSON is cut in half
                self._send_json(200, payload[: len(payload) // 2], headers)
            else:  # drop: promise the full body, deliver half of it, hang up
                self._send_json(200, payload[: len(payload) // 2], headers, length=len(payload))
                self._drop()
            return
        head, events, tail = dialect.stream(turn)
        delay = item.token_delay if isinstance(item, Reply) else 0.0
        self._start_stream(headers)
        for chunk in head:
            self._write_chunk(chunk)
        for chunk in events:
            if delay and self.server.state.stopping.wait(delay):
                self._drop()
                return
            self._write_chunk(chunk)
        if fault is None or fault.kind in ("malformed", "unfinished"):
            ending = [dialect.malformed_event] if fault is not None and fault.kind == "malformed" else tail
            for chunk in ending:
                self._write_chunk(chunk)
            self.wfile.write(b"0\r\n\r\n")
        elif fault.kind == "drop":
            self._drop()
        else:
            self._stall()

    def _send_json(
        self, status: int, payload: JSON | bytes, headers: dict[str, str], length: int | None = None
    ) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data) if length is None else length))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _drop(self) -> None:
        """Close the TCP connection now, mid-response."""
        self.close_connection = True
        self.wfile.flush()
        _shutdown(self.connection)

    def _stall(self) -> None:
        """Stay silent until the client closes its side or the server stops (polled, never a blind sleep)."""
        self.close_connection = True
        self.wfile.flush()
        while not self.server.state.stopping.wait(0.05):
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return  # client hung up
                except OSError:
                    return


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins the handler threads

    def __init__(self, state: _State) -> None:
        self.state = state
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # disconnects are expected; real bugs are shown
            super().handle_error(request, client_address)


class LLMWireServer:
    """The fake server. Use as a context manager, or call `start()` / `stop()` yourself."""

    def __init__(self, reject_null_content: bool = False, validate_requests: bool = True) -> None:
        """`reject_null_content=True` answers HTTP 500 to a request holding a message with `content: null`, as
        llama.cpp's server does (OpenAI accepts it on an assistant message with `tool_calls`).
        `validate_requests` (on by default) answers HTTP 400 to a request the provider would refuse."""
        self._state = _State(reject_null_content, validate_requests)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LLMWireServer:
        """Bind 127.0.0.1 on a free port and serve from a background thread."""
        if self._httpd is None:
            self._state.stopping.clear()
            self._httpd = _HTTPServer(self._state)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="llm-wire-server",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: end stalls and keep-alive connections, close the socket, join every thread."""
        if self._httpd is None:
            return
        self._state.stopping.set()
        self._httpd.shutdown()
        self._state.close_connections()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> LLMWireServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("LLMWireServer is not started")
        return self._httpd.server_address[1]

    @property
    def openai_base_url(self) -> str:
        """`base_url` for `openai.OpenAI` / `openai.AsyncOpenAI`, e.g. `http://127.0.0.1:PORT/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """`base_url` for `anthropic.Anthropic` / `anthropic.AsyncAnthropic`, e.g. `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    def enqueue(self, *items: Script) -> None:
        """Append replies/faults; each request (either endpoint, SDK retries included) takes the next one."""
        with self._state.lock:
            self._state.queue.extend(items)

    @property
    def pending(self) -> int:
        """How many scripted items have not been used yet."""
        with self._state.lock:
            return len(self._state.queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    def reset(self) -> None:
        """Forget queued items and recorded requests."""
        with self._state.lock:
            self._state.queue.clear()
            self._state.requests.clear()
