"""
RunScope: the agent calls one piece of notebook work started (a cell, a chat loop), so that work can be
cancelled as a whole: interrupting the kernel during a cell cancels the agents that cell started, and
the stop button of a chat cancels the reply in progress.

Attribution follows the asyncio context: the scope is a ContextVar, and tasks inherit their creator's
context, so a call made anywhere downstream of a cell (in agents it called, in tasks it created) is
attributed to that cell, while calls made by a chat loop started in an earlier cell are not.

A background scope (a chat's loop, which goes on after its cell ended) remembers the cell it was started in
(`origin`): a MessageTree made in another cell leaves its calls out. An agent standing for a person (the
notebook user agent) says when it waits for them to type (`waits_for_user`, `on_waiting_change`), so a tree
does not count that wait as work in progress.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection
from contextvars import ContextVar
from typing import Any

from miniagents.miniagents import AgentCall, MiniAgent, MiniAgents

_MIN_PRUNE = 64  # calls kept before the settled ones are dropped (then again whenever the count doubles)

current_scope: ContextVar[RunScope | None] = ContextVar("miniagents_notebook_run_scope", default=None)


class RunScope:
    """
    The top-level agent calls started under this scope that may still be working. Calls made inside agents
    belong to their caller's subtree: cancelling a top-level call cancels them (and every reply stream) too.
    Bookkeeping is O(1) per call: settled calls are dropped when the count doubles.
    """

    __slots__ = ("_calls", "_prune_at", "background", "name", "origin")

    def __init__(self, name: str, background: bool = False) -> None:
        """
        `background`: the scope's work goes on after the cell that started it (a chat's loop); its `origin` is
        the scope current when it was made (that cell's).
        """
        self.name = name
        self.background = background
        self.origin: RunScope | None = current_scope.get() if background else None
        self._calls: list[AgentCall] = []
        self._prune_at = _MIN_PRUNE

    def add(self, call: AgentCall) -> None:
        """Attribute `call` (a call made outside any agent) to this scope."""
        calls = self._calls
        calls.append(call)
        if len(calls) > self._prune_at:
            self._calls = calls = [each for each in calls if not each.settled]
            self._prune_at = max(_MIN_PRUNE, 2 * len(calls))

    @property
    def active_calls(self) -> list[AgentCall]:
        """The calls that are running or whose replies are still streaming."""
        return [call for call in self._calls if not call.settled]

    def cancel(self, spare: Collection[MiniAgent] = ()) -> int:
        """
        Cancel the subtree of every call of this scope still at work (except calls of the agents in
        `spare`): the agents, the calls they made and the streaming of their replies, started or not.
        Returns how many calls were cancelled.
        """
        cancelled = 0
        for call in self.active_calls:
            if not any(call.agent is agent for agent in spare):
                cancelled += call.cancel()
        return cancelled

    def __repr__(self) -> str:
        return f"<RunScope {self.name}: {len(self.active_calls)} active call(s)>"


def _attribute_to_current_scope(call: AgentCall) -> None:
    if call.parent is None:  # nested calls are cancelled with their caller
        scope = current_scope.get()
        if scope is not None:
            scope.add(call)


_scoped_contexts: weakref.WeakSet[MiniAgents] = weakref.WeakSet()


def attribute_calls_to_scopes(context: MiniAgents) -> None:
    """Make every agent call in `context` (and contexts nested in it) join the current RunScope (idempotent)."""
    if context not in _scoped_contexts:
        _scoped_contexts.add(context)
        context.on_agent_call(_attribute_to_current_scope)


def waits_for_user(call: AgentCall) -> bool:
    """
    Whether `call` is a call of an agent standing for a person that now waits for them to type (its agent's
    `is_waiting_for_user` is true): waiting, not working.
    """
    return bool(getattr(call.agent, "is_waiting_for_user", False))


def on_waiting_change(agent: Any, callback: Callable[[], None]) -> bool:
    """
    Have `callback()` called whenever `agent` (one standing for a person, with `on_waiting_change`) may start
    or stop waiting for them. Returns False (and does nothing) for any other agent.
    """
    register = getattr(agent, "on_waiting_change", None)
    if register is None:
        return False
    register(callback)
    return True
