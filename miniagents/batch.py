"""
Batch runs: one agent over many inputs with a concurrency cap. Results come back in input order, one row
per input; a failure is kept in its row and never aborts the batch. `miniagents.utils.amap` re-exports
`amap`; the notebook's `mn.amap` adds a live progress widget on top of the same `on_progress` hook.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from miniagents.messages import Message
from miniagents.miniagent_typing import MessageType
from miniagents.miniagents import MiniAgent


@dataclass(frozen=True)
class BatchRow:
    """The outcome of one input: its replies, or the error that ended its call (`ok` tells which)."""

    index: int
    input: Any
    messages: tuple[Message, ...] = ()
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        """The replies' texts joined by blank lines ("" for a failed row)."""
        return "\n\n".join(str(message) for message in self.messages)


@dataclass
class BatchProgress:
    """Counts of a running batch, as `on_progress(progress)` receives them after every change."""

    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    started_at: float = field(default_factory=time.perf_counter)
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def rate(self) -> float:
        """Finished inputs per second so far."""
        elapsed = time.perf_counter() - self.started_at
        return self.finished / elapsed if elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the rate so far (None before the first input finished)."""
        rate = self.rate
        return (self.total - self.finished) / rate if rate > 0 else None


async def amap(
    agent: MiniAgent,
    inputs: Iterable[MessageType],
    concurrency: int = 8,
    on_progress: Callable[[BatchProgress], None] | None = None,
    **function_kwargs: Any,
) -> list[BatchRow]:
    """
    Run `agent` once per input (at most `concurrency` calls at a time) and return one BatchRow per input, in
    input order. An input whose call fails keeps its error in its row; the batch goes on. `function_kwargs`
    go to every call. Needs an active MiniAgents context. Raises ValueError if `concurrency` < 1.
    """
    if not isinstance(agent, MiniAgent):
        raise TypeError(f"amap() runs a MiniAgent, got {type(agent).__name__}: {agent!r:.80}")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
    items = list(inputs)
    progress = BatchProgress(total=len(items))
    slots = asyncio.Semaphore(concurrency)

    def report() -> None:
        if on_progress is not None:
            on_progress(progress)

    async def arun_one(index: int, item: Any) -> BatchRow:
        async with slots:
            progress.running += 1
            report()
            started = time.perf_counter()
            try:
                messages = await agent.inquire(item, **function_kwargs).aresolve_messages()
            except Exception as exc:
                progress.failed += 1
                return BatchRow(index, item, error=exc, seconds=time.perf_counter() - started)
            else:
                progress.done += 1
                _count_usage(progress, messages)
                return BatchRow(index, item, messages, seconds=time.perf_counter() - started)
            finally:
                progress.running -= 1
                report()

    report()
    return list(await asyncio.gather(*(arun_one(index, item) for index, item in enumerate(items))))


def _count_usage(progress: BatchProgress, messages: tuple[Message, ...]) -> None:
    """Add the providers' token usage (OpenAI and Anthropic field names) found on the replies."""
    for message in messages:
        usage = message.get("usage")
        if usage is None:
            continue
        for name, attribute in (
            ("prompt_tokens", "input_tokens"),
            ("input_tokens", "input_tokens"),
            ("completion_tokens", "output_tokens"),
            ("output_tokens", "output_tokens"),
        ):
            value = usage.get(name) if hasattr(usage, "get") else None
            if isinstance(value, int):
                setattr(progress, attribute, getattr(progress, attribute) + value)
