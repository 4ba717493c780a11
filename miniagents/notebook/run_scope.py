"""
RunScope: the agent calls one piece of notebook work started (a cell, a chat loop), so that work can be
cancelled as a whole: interrupting the kernel during a cell cancels the agents that cell started, and
the stop button of a chat cancels the reply in progress.

Attribution follows the asyncio context: the scope is a ContextVar, and tasks inherit their creator's
context, so a call made anywhere downstream of a cell (in agents it called, in tasks it created) is
attributed to that cell, while calls made by a chat loop started in an earlier cell are not.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Collection
from contextvars import ContextVar

from miniagents.messages import MessagePromise
from miniagents.miniagents import AgentCall, MiniAgent, MiniAgents
from miniagents.notebook import _core_access

_PRUNE_ABOVE = 64  # calls kept before the completed ones are dropped
_MAX_CANCEL_ROUNDS = 100  # loop iterations spent waiting for not yet started tasks to start

current_scope: ContextVar[RunScope | None] = ContextVar("miniagents_notebook_run_scope", default=None)


class RunScope:
    """The agent calls started under this scope that may still be working."""

    __slots__ = ("_calls", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._calls: list[AgentCall] = []

    def add(self, call: AgentCall) -> None:
        """Attribute `call` to this scope."""
        self._calls.append(call)
        if len(self._calls) > _PRUNE_ABOVE:
            self._calls = [each for each in self._calls if not _completely_done(each)]

    @property
    def active_calls(self) -> list[AgentCall]:
        """The calls that are running or whose replies are still streaming."""
        return [call for call in self._calls if not _completely_done(call)]

    def cancel(self, spare: Collection[MiniAgent] = ()) -> None:
        """
        Cancel every call of this scope still at work (except calls of the agents in `spare`), and the
        streaming of their replies. Calls that have not started yet (the loop was blocked) are cancelled
        as soon as they start, on the next loop iterations, together with any calls they make meanwhile.
        """
        self._cancel_round(tuple(spare), _MAX_CANCEL_ROUNDS)

    def _cancel_round(self, spare: tuple[MiniAgent, ...], rounds_left: int) -> None:
        calls = [call for call in self.active_calls if not any(call.agent is agent for agent in spare)]
        _, not_started = _core_access.cancel_agent_calls(calls)
        if not_started and rounds_left > 1:
            asyncio.get_running_loop().call_soon(self._cancel_round, spare, rounds_left - 1)

    def __repr__(self) -> str:
        return f"<RunScope {self.name}: {len(self.active_calls)} active call(s)>"


def _completely_done(call: AgentCall) -> bool:
    if call.status not in ("finished", "failed"):
        return False
    pieces, done = _core_access.peek_pieces(_core_access.reply_sequence_of(call))
    return done and all(_core_access.peek_pieces(piece)[1] for piece in pieces if isinstance(piece, MessagePromise))


def _attribute_to_current_scope(call: AgentCall) -> None:
    scope = current_scope.get()
    if scope is not None:
        scope.add(call)


_scoped_contexts: weakref.WeakSet[MiniAgents] = weakref.WeakSet()


def attribute_calls_to_scopes(context: MiniAgents) -> None:
    """Make every agent call in `context` (and contexts nested in it) join the current RunScope (idempotent)."""
    if context not in _scoped_contexts:
        _scoped_contexts.add(context)
        context.on_agent_call(_attribute_to_current_scope)
