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
        status = f"failed: {type(error).__name__}: {error}"
    parameters = request.parameters
    system = parameters.pop("system", None)
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
        "## Prompt",
        "",
    ]
    if system is not None:
        lines += ["### system", "", *_fenced(_content_text(system)), ""]
    for message in request.payload.get("messages") or ():
        role = message.get("role", "?") if isinstance(message, dict) else "?"
        content = message.get("content") if isinstance(message, dict) else message
        lines += [f"### {role}", "", *_fenced(_content_text(content)), ""]
        extras = {k: v for k, v in message.items() if k not in ("role", "content")} if isinstance(message, dict) else {}
        if extras:  # tool calls, tool call ids...
            lines += [*_fenced(_json(extras), "json"), ""]
    lines += ["## Response", "", *_fenced("".join(tokens)), ""]
    if response:
        lines += ["## Response fields", "", *_fenced(_json(response), "json"), ""]
    return "\n".join(lines)


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
