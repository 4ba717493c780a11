"""
Batch runs: one agent over many inputs with a concurrency cap. Results come back in input order, one row
per input; a failure is kept in its row and never aborts the batch. `miniagents.utils.amap` re-exports
`amap`; the notebook's `mn.amap` adds a live progress widget on top of the same `on_progress` / `on_row` hooks.

A failed row is reported in its row, so the context logs the errors of the batch's calls (and of the calls
inside them) at DEBUG level rather than at its `log_level_for_errors`: 500 failed rows print no 500 tracebacks.

Cancelling the task that awaits `amap` (an interrupted notebook cell, a timeout) cancels the batch as a whole:
the running calls are cancelled, no further input starts, and `amap` raises CancelledError once nothing of
the batch runs any more. The rows finished before that were already given to `on_row`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from miniagents.agent_call import AgentCall, check_function_kwargs
from miniagents.messages import Message
from miniagents.miniagent_typing import MessageType
from miniagents.miniagents import MiniAgent
from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.ownership import current_owner
from miniagents.run_context import MiniAgents
from miniagents.usage import usage_of


@dataclass(frozen=True)
class BatchRow:
    """
    The outcome of one input: its replies, or the error that ended its call (`ok` tells which). The token
    counts add up the providers' `usage` found on the replies (0 when they report none).
    """

    index: int
    input: Any
    messages: tuple[Message, ...] = ()
    error: BaseException | None = None
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        """The replies' texts joined by blank lines ("" for a failed row)."""
        return "\n\n".join(str(message) for message in self.messages)

    @property
    def error_text(self) -> str:
        """The error as 'Type: message' ("" for a row that succeeded)."""
        if self.error is None:
            return ""
        message = str(self.error)
        return f"{type(self.error).__name__}: {message}" if message else type(self.error).__name__

    def as_record(self) -> dict[str, Any]:
        """The row as a flat dict: input, ok, text, error (text), input_tokens, output_tokens, seconds."""
        return {
            "input": self.input,
            "ok": self.ok,
            "text": self.text,
            "error": self.error_text,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "seconds": self.seconds,
        }


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
    ended_at: float | None = None  # time.perf_counter() when the batch ended (completed or cancelled)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def elapsed(self) -> float:
        """Seconds since the batch started (until it ended, once it has)."""
        end = self.ended_at if self.ended_at is not None else time.perf_counter()
        return max(0.0, end - self.started_at)

    @property
    def rate(self) -> float:
        """Finished inputs per second so far."""
        elapsed = self.elapsed
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
    on_row: Callable[[BatchRow], None] | None = None,
    **function_kwargs: Any,
) -> list[BatchRow]:
    """
    Run `agent` once per input (at most `concurrency` calls at a time) and return one BatchRow per input, in
    input order. An input whose call fails keeps its error in its row; the batch goes on. `function_kwargs`
    go to every call. `on_progress(progress)` is called once before the first call and after every change;
    `on_row(row)` with each row as it finishes (in finishing order).

    Raises (before any call starts): TypeError if `agent` is not a MiniAgent or `inputs` is not an iterable of
    inputs (a str, a message or a promise is one input, not many); ValueError if `concurrency` is not a whole
    number >= 1, or if `function_kwargs` cannot be given to the agent (not freezable); RuntimeError if no
    MiniAgents context is active.
    """
    if not isinstance(agent, MiniAgent):
        raise TypeError(f"amap() runs a MiniAgent, got {type(agent).__name__}: {agent!r:.80}")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
    items = _input_list(inputs)
    context = MiniAgents.get_current()  # raises RuntimeError naming the fix when no context is active
    check_function_kwargs(agent, function_kwargs)
    calls_at_work: set[AgentCall] = set()
    row_errors_at_debug = _RowErrorsAtDebug(calls_at_work)
    progress = BatchProgress(total=len(items))
    rows: list[BatchRow | None] = [None] * len(items)
    next_indexes = iter(range(len(items)))  # shared by the workers: each takes the next input not started

    def report() -> None:
        if on_progress is not None:
            on_progress(progress)

    async def arun_one(index: int, item: Any) -> BatchRow:
        call = agent.initiate_inquiry(**function_kwargs)  # (the kwargs were checked: the same for every call)
        calls_at_work.add(call)
        progress.running += 1
        report()
        started = time.perf_counter()
        try:
            if item is not None:
                call.send_message(item)
            messages = await call.reply_sequence().aresolve_messages()
        except asyncio.CancelledError:
            call.cancel()  # the batch is cancelled: so is the call at work for this input
            raise
        except Exception as exc:
            progress.failed += 1
            return BatchRow(index, item, error=exc, seconds=time.perf_counter() - started)
        else:
            input_tokens, output_tokens = reply_usage(messages)
            progress.done += 1
            progress.input_tokens += input_tokens
            progress.output_tokens += output_tokens
            return BatchRow(
                index,
                item,
                messages,
                seconds=time.perf_counter() - started,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
            )
        finally:
            progress.running -= 1
            calls_at_work.discard(call)

    async def awork() -> None:
        for index in next_indexes:
            row = rows[index] = await arun_one(index, items[index])
            if on_row is not None:
                on_row(row)
            report()

    report()
    loop = asyncio.get_running_loop()
    workers = [loop.create_task(awork()) for _ in range(min(concurrency, len(items)))]
    context.logger.addFilter(row_errors_at_debug)
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for worker in workers:
            worker.cancel()
        # return only once every worker has cancelled its call: nothing of the batch outlives it
        await asyncio.gather(*workers, return_exceptions=True)
        progress.ended_at = time.perf_counter()
        report()
        raise
    finally:
        context.logger.removeFilter(row_errors_at_debug)
    progress.ended_at = time.perf_counter()
    report()
    return [row for row in rows if row is not None]


def reply_usage(messages: Iterable[Message]) -> tuple[int, int]:
    """
    The input and output tokens the providers reported in the `usage` of these messages, added up (any
    provider's shape, read by `miniagents.usage.usage_of`); (0, 0) if none reported any.
    """
    input_tokens = output_tokens = 0
    for message in messages:
        counted = usage_of(message.get("usage"))
        if counted is not None:
            input_tokens += counted.input_tokens
            output_tokens += counted.output_tokens
    return input_tokens, output_tokens


def rows_to_dataframe(rows: Iterable[BatchRow]) -> Any:
    """
    The rows as a pandas DataFrame indexed by input position ("index"), with the columns of
    `BatchRow.as_record()`. Raises ImportError when pandas is not installed.
    """
    try:
        import pandas
    except ImportError as exc:
        raise ImportError("rows_to_dataframe() needs pandas: pip install pandas (or miniagents[jupyter])") from exc
    rows = list(rows)
    columns = ["input", "ok", "text", "error", "input_tokens", "output_tokens", "seconds"]
    frame = pandas.DataFrame([row.as_record() for row in rows], columns=columns)
    frame.index = pandas.Index([row.index for row in rows], name="index")
    return frame


class _RowErrorsAtDebug(logging.Filter):
    """
    On the context's logger while a batch runs: a record about an error, logged from inside one of the batch's
    calls (or a call below one), is lowered to DEBUG (the error is reported in its row) and kept only if the
    logger shows DEBUG.
    """

    def __init__(self, calls_at_work: set[AgentCall]) -> None:
        super().__init__()
        self.calls_at_work = calls_at_work

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG or not record.exc_info:
            return True
        owner = current_owner()
        while isinstance(owner, AgentCall):
            if owner in self.calls_at_work:
                record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
                return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
            owner = owner.parent
        return True


def _input_list(inputs: Any) -> list[Any]:
    """The inputs as a list, or TypeError when `inputs` is not an iterable of several inputs."""
    if isinstance(inputs, (str, bytes, bytearray, Frozen)):
        raise TypeError(
            f"amap() takes an iterable of inputs, one per call; got a single {type(inputs).__name__} "
            f"({inputs!r:.60}): wrap it in a list to run one call"
        )
    if not isinstance(inputs, Iterable):
        detail = " (an async stream: resolve it into a list first)" if hasattr(inputs, "__aiter__") else ""
        raise TypeError(f"amap() takes an iterable of inputs, got {type(inputs).__name__}: {inputs!r:.60}{detail}")
    return list(inputs)
