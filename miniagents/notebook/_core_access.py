"""
The few things the notebook layer needs from the core that the core does not offer publicly (yet).

Every private access of `miniagents.*` by the notebook layer lives here, read-only except for task
cancellation, so that a public hook can replace each one in a single place:

- `reply_sequence_of(call)`: `AgentCall.reply_sequence()` also finishes the call's input, which an
  observer must never do (it would cut off `initiate_inquiry()` callers), so the reply sequence is read
  from the call's appender.
- `peek_pieces()`, `peek_result()`, `is_started()`: what a (streamed) promise holds right now,
  synchronously, so the static text/plain and text/html of a finished reply are complete at display time.
- `make_current(context)`: re-activating an already active context in another execution context (the
  notebook's context after a cell that used `await` lost the ContextVar) is not possible publicly.
- `cancel_agent_calls(calls)`: `AgentCall.cancel()` stops the agent, not the streaming of the messages it
  already replied (an LLM agent returns at once, its reply streams on in its own task); those tasks are
  found among the loop's tasks by their coroutine. Also, `cancel()` before the call's task has taken its
  first step leaves its reply sequence open forever, so calls are only cancelled once they run.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable
from typing import Any

from miniagents.messages import MessagePromise, MessageSequencePromise
from miniagents.miniagents import AgentCall
from miniagents.promising.promising import Promise, PromisingContext, StreamedPromise
from miniagents.promising.sentinels import NO_VALUE

_STREAM_DRAIN_CODE = StreamedPromise._adrain_then_resolve.__code__


def reply_sequence_of(call: AgentCall) -> MessageSequencePromise:
    """The reply sequence of `call`, without finishing its input (unlike `call.reply_sequence()`)."""
    return call._replies.sequence_promise


def peek_pieces(promise: StreamedPromise[Any, Any]) -> tuple[tuple[Any, ...], bool]:
    """The pieces a streamed promise has produced so far, and whether its stream is complete."""
    return tuple(promise._pieces), promise._stream_done


def peek_result(promise: Promise[Any]) -> Any:
    """The resolved value of `promise`, or NO_VALUE while it is not resolved (or failed)."""
    return promise._result


def is_started(promise: StreamedPromise[Any, Any]) -> bool:
    """Whether consuming `promise` would not start any lazy work (its streamer already runs or ran)."""
    return promise._stream_started or promise._stream_done


def make_current(context: PromisingContext) -> None:
    """Make `context` current in this execution context even if it was activated in another one (where
    `activate()` would raise: contexts are not re-entrant, and a ContextVar set in an awaited cell is lost)."""
    if context._active:
        context._deactivate()
    context.activate()


def make_not_current(context: PromisingContext) -> None:
    """Undo `make_current()` / `activate()` without waiting for the context's tasks."""
    context._deactivate()


def cancel_agent_calls(calls: Iterable[AgentCall]) -> tuple[int, bool]:
    """
    Cancel `calls` (with `AgentCall.cancel()`) and the tasks that still stream their reply messages.
    Returns how many calls and streams were cancelled, and whether some of them have not started yet:
    those are left alone (a task cancelled before its first step never runs the code that ends its
    stream, so its consumers would wait forever) and the caller should try again on a later loop
    iteration. The agents see CancelledError; their reply sequences end with PromiseCancelledError.
    """
    cancelled = 0
    not_started = False
    streaming: set[int] = set()
    for call in calls:
        if call.status == "running":
            cancelled += bool(call.cancel())
        elif call.status == "pending":
            not_started = True
        pieces, _ = peek_pieces(reply_sequence_of(call))
        streaming.update(id(piece) for piece in pieces if isinstance(piece, MessagePromise))
    if not streaming:
        return cancelled, not_started
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no running loop: nothing of ours can be running either
        return cancelled, not_started
    for task in tasks:
        coroutine = task.get_coro()
        if task.done() or getattr(coroutine, "cr_code", None) is not _STREAM_DRAIN_CODE:
            continue
        if id(inspect.getcoroutinelocals(coroutine).get("self")) not in streaming:
            continue
        if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED:
            not_started = True
        else:
            task.cancel()
            cancelled += 1
    return cancelled, not_started


__all__ = [
    "NO_VALUE",
    "cancel_agent_calls",
    "is_started",
    "make_current",
    "make_not_current",
    "peek_pieces",
    "peek_result",
    "reply_sequence_of",
]
