"""
Opt-in LLM call logging: each prompt and its response as a readable markdown file in a folder.

Pass `llm_logger=LLMLogFolder("llm_logs")` to a create_*_agent function, or set the
`MINIAGENTS_LLM_LOG_DIR` environment variable. API keys are never written: credential-looking
parameters are masked, and the client's known keys are scrubbed from the text before it is saved.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from miniagents.ext.llm.llm_request import LLMRequest, redact_secrets, scrub_secrets

LOG_DIR_ENV = "MINIAGENTS_LLM_LOG_DIR"
logger = logging.getLogger("miniagents.llm")


class LLMLogFolder:
    """Writes one markdown file per LLM call into `folder` (created when needed)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> LLMLogFolder | None:
        """The log folder named by `MINIAGENTS_LLM_LOG_DIR`, if it is set."""
        folder = os.environ.get(LOG_DIR_ENV)
        return cls(folder) if folder else None

    def log_call(
        self,
        request: LLMRequest,
        tokens: list[str],
        response: dict[str, Any],
        error: BaseException | None = None,
        replayed: bool = False,
        secrets: Iterable[str] = (),
    ) -> Path | None:
        """
        Write the markdown file of one call and return its path.

        Never raises: a failure to write is logged, since it must not break the call being logged.
        """
        try:
            text = scrub_secrets(render_call(request, tokens, response, error, replayed), secrets)
            return self._write_new_file(request.agent_alias, text)
        except Exception as exc:
            logger.warning("could not write the LLM call log to %s: %r", self.folder, exc)
            return None

    def _write_new_file(self, agent_alias: str, text: str) -> Path:
        """Write `text` to a new `<time>_<number>_<alias>.md` file (never overwriting one)."""
        alias = re.sub(r"[^A-Za-z0-9_.-]+", "_", agent_alias) or "agent"
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            with self._lock:
                number = next(self._numbers)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
            path = self.folder / f"{stamp}_{number:04d}_{alias}.md"
            try:
                with path.open("x", encoding="utf-8") as file:
                    file.write(text)
            except FileExistsError:  # another logger on the same folder took this name
                continue
            return path

    def __repr__(self) -> str:
        return f"LLMLogFolder({str(self.folder)!r})"


def render_call(
    request: LLMRequest,
    tokens: list[str],
    response: dict[str, Any],
    error: BaseException | None,
    replayed: bool,
) -> str:
    """The markdown text of one call: who called which model with what, and what came back."""
    if error is None:
        status = "ok"
    elif isinstance(error, GeneratorExit):
        status = "abandoned by its consumer before the end"
    else:
        status = f"failed: {type(error).__name__}: {_shortened(str(error))}"
    parameters = request.parameters
    system = parameters.pop("system", None)
    tools = parameters.pop("tools", None)
    lines = [
        f"# {request.agent_alias} → {request.model}",
        "",
        f"- provider: {request.provider}",
        f"- agent: {request.agent_alias}",
        f"- model: {request.model}",
        f"- stream: {str(request.stream).lower()}",
        f"- request hash: {request.hash_key if _hashable(request) else '(not hashable)'}",
        f"- source: {'replayed from the response cache' if replayed else 'provider'}",
        f"- status: {status}",
        "",
        "## Parameters",
        "",
        *_fenced(_json(redact_secrets(parameters)), "json"),
        "",
    ]
    if tools:
        names = [_tool_name(tool) for tool in tools] if isinstance(tools, list) else []
        lines += ["## Tools", "", f"{', '.join(f'`{name}`' for name in names)}", "", *_fenced(_json(tools), "json"), ""]
    lines += ["## Prompt", ""]
    if system is not None:
        lines += ["### system", "", *_fenced(_content_text(system)), ""]
    for message in request.payload.get("messages") or ():
        lines += _message_lines(message)
    lines += ["## Response", "", *_fenced("".join(tokens)), ""]
    calls = _response_tool_calls(response)
    if calls:
        lines += ["## Tool calls asked for", "", *calls, ""]
    if response:
        lines += ["## Response fields", "", *_fenced(_json(response), "json"), ""]
    return "\n".join(lines)


def _shortened(text: str, limit: int = 2000) -> str:
    """A huge error message cut to its start (the framework's log of the failure carries it whole, once)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _message_lines(message: Any) -> list[str]:
    """One message of the prompt: its role, its text, and its tool calls and tool results one per line."""
    if not isinstance(message, dict):
        return ["### ?", "", *_fenced(_content_text(message)), ""]
    role = message.get("role", "?")
    content = message.get("content")
    shown = {"role", "content", "tool_calls", "tool_call_id", "tool_name", "is_error"}
    if role == "tool":  # an OpenAI / offline tool result
        name = f"`{message['tool_name']}` " if message.get("tool_name") else ""
        error = ", error" if message.get("is_error") else ""
        lines = [
            f"### tool result of {name}({message.get('tool_call_id')}){error}",
            "",
            *_fenced(_content_text(content)),
        ]
    elif isinstance(content, list) and any(isinstance(block, dict) and "type" in block for block in content):
        lines = [f"### {role}", ""]
        for block in content:
            lines += [*_block_lines(block), ""]
        lines = lines[:-1]
    else:
        lines = [f"### {role}", "", *_fenced(_content_text(content))]
    for call in message.get("tool_calls") or ():  # OpenAI / offline tool calls
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        lines += ["", _call_line(function.get("name"), call.get("id"), function.get("arguments"))]
    extras = {k: v for k, v in message.items() if k not in shown}
    if extras:
        lines += ["", *_fenced(_json(extras), "json")]
    return [*lines, ""]


def _block_lines(block: Any) -> list[str]:
    """One Anthropic content block: text as text, a tool call on one line, a tool result as its text."""
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return _fenced(str(block.get("text", "")))
    if kind == "tool_use":
        return [_call_line(block.get("name"), block.get("id"), block.get("input"))]
    if kind == "tool_result":
        error = ", error" if block.get("is_error") else ""
        return [
            f"← tool result ({block.get('tool_use_id')}){error}:",
            "",
            *_fenced(_content_text(block.get("content", ""))),
        ]
    return _fenced(_json(block), "json")


def _call_line(name: Any, call_id: Any, arguments: Any) -> str:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return f"- → tool call `{name}` ({call_id}): `{text}`"


def _response_tool_calls(response: dict[str, Any]) -> list[str]:
    """The tool calls a response asked for (OpenAI, Anthropic or offline shape), one line each."""
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        calls = (choices[0].get("message") or {}).get("tool_calls") or ()
    elif isinstance(response.get("content"), list):
        return [
            _call_line(block.get("name"), block.get("id"), block.get("input"))
            for block in response["content"]
            if isinstance(block, dict) and block.get("type") == "tool_use"
        ]
    else:
        calls = response.get("tool_calls") or ()
    lines = []
    for call in calls:
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        lines.append(
            _call_line(
                function.get("name"), call.get("id") if isinstance(call, dict) else None, function.get("arguments")
            )
        )
    return lines


def _tool_name(tool: Any) -> str:
    if not isinstance(tool, dict):
        return "?"
    function = tool.get("function")
    return str(function.get("name") if isinstance(function, dict) else tool.get("name", tool.get("type", "?")))


def _content_text(content: Any) -> str:
    """Message content as sent: plain text as it is, structured content (blocks, tool calls) as JSON."""
    return content if isinstance(content, str) else _json(content)


def _hashable(request: LLMRequest) -> bool:
    try:
        request.hash_key  # noqa: B018
    except ValueError:
        return False
    return True


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=repr)


def _fenced(text: str, info: str = "text") -> list[str]:
    """`text` in a code fence longer than any backtick run inside it, so it cannot break out."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", text, fence]
