"""
Record / replay of LLM responses: a folder of readable JSON files keyed by the request's `hash_key`.

This is what lets notebooks and tests that call real models run offline and deterministically: record
once with a key and a network, then replay with neither. A recording keeps the tokens exactly as they
were chunked by the provider, and the provider's response fields, so a replayed message is identical
to the recorded one.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from miniagents.ext.llm.llm_request import LLMRequest, redact_secrets, scrub_secrets

CacheMode = Literal["off", "record", "replay", "auto"]
_MODES: tuple[str, ...] = ("off", "record", "replay", "auto")
CACHE_DIR_ENV = "MINIAGENTS_LLM_CACHE_DIR"
CACHE_MODE_ENV = "MINIAGENTS_LLM_CACHE_MODE"


class LLMCacheMissError(LookupError):
    """Strict replay found no recording for a request."""


@dataclass(frozen=True)
class LLMRecording:
    """A recorded response: the tokens as they were chunked, and the provider's response fields."""

    tokens: tuple[str, ...]
    response: dict[str, Any]

    async def atokens(self, stream: bool) -> AsyncGenerator[str, None]:
        """Replay the tokens with their original chunking (as one token when not streaming)."""
        if not stream:
            text = "".join(self.tokens)
            if text:
                yield text
            return
        for token in self.tokens:
            await asyncio.sleep(0)  # let other agents run between tokens, as a live stream would
            yield token


class LLMResponseCache:
    """
    Recorded LLM responses in `folder`, one `<request hash_key>.json` file per request.

    Modes: `off` (always call the model), `record` (always call it, and save each response),
    `replay` (never call it: a request without a recording fails with `LLMCacheMissError`), `auto`
    (replay what is recorded, call and record the rest). Without `mode`, the
    `MINIAGENTS_LLM_CACHE_MODE` environment variable decides, else `auto`; set it to `replay` in CI so
    that a missing recording fails instead of reaching for the network.

    The key covers the provider, the model, the messages, every parameter and `stream`: a response
    recorded streamed replays with its original chunks, and recording the same request non-streamed
    never replaces it. A non-streamed request without a recording of its own is answered by the streamed
    recording, joined into one piece.
    """

    def __init__(self, folder: str | os.PathLike[str], mode: CacheMode | None = None) -> None:
        chosen = mode or os.environ.get(CACHE_MODE_ENV) or "auto"
        if chosen not in _MODES:
            raise ValueError(f"unknown LLM cache mode {chosen!r}; use one of {', '.join(_MODES)}")
        self.folder = Path(folder)
        self.mode = cast(CacheMode, chosen)

    @classmethod
    def from_env(cls) -> LLMResponseCache | None:
        """The cache named by `MINIAGENTS_LLM_CACHE_DIR` (mode from `MINIAGENTS_LLM_CACHE_MODE`), if set."""
        folder = os.environ.get(CACHE_DIR_ENV)
        return cls(folder) if folder else None

    def path_for(self, request: LLMRequest) -> Path:
        """Where the recording of `request` lives."""
        return self.folder / f"{request.hash_key}.json"

    def lookup(self, request: LLMRequest) -> LLMRecording | None:
        """
        The recording that answers `request`, or None when the model must be called.

        Raises LLMCacheMissError in `replay` mode when there is no recording.
        """
        if self.mode in ("off", "record"):
            return None
        data = self._read(request)
        if data is None and not request.stream:
            data = self._read(request.streamed())
        if data is None:
            if self.mode == "replay":
                raise LLMCacheMissError(
                    f"no recorded response for {request.provider} request {request.hash_key} "
                    f"(model {request.model!r}, agent {request.agent_alias}, first user message: "
                    f"{request.first_user_text()!r}) in {self.folder}; record it first with "
                    f"mode='record' or 'auto'"
                )
            return None
        return LLMRecording(tokens=tuple(data["tokens"]), response=data["response"])

    def _read(self, request: LLMRequest) -> dict[str, Any] | None:
        try:
            return json.loads(self.path_for(request).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def record(
        self, request: LLMRequest, tokens: list[str], response: dict[str, Any], secrets: Iterable[str] = ()
    ) -> None:
        """Save a complete response (in `record` and `auto` modes; otherwise do nothing)."""
        if self.mode not in ("record", "auto"):
            return
        data = {
            "request_hash": request.hash_key,
            "provider": request.provider,
            "agent_alias": request.agent_alias,
            "recorded_streamed": request.stream,
            "request": redact_secrets(request.payload),
            "tokens": tokens,
            "response": response,
        }
        text = scrub_secrets(json.dumps(data, ensure_ascii=False, indent=2), secrets)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path_for(request)
        # write then rename: agents running in parallel never see a half-written recording
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=self.folder, prefix=f".{path.stem}.", suffix=".tmp", delete=False
        ) as file:
            file.write(text + "\n")
        os.replace(file.name, path)

    def __repr__(self) -> str:
        return f"LLMResponseCache({str(self.folder)!r}, mode={self.mode!r})"
