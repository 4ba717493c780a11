"""
Who owns which task. Every task the framework starts belongs to a `TaskOwner`; owners form a tree whose
root belongs to the active context (an agent call is an owner too, one level down). Cancelling an owner
cancels its whole subtree. Cleanup that must happen however a task ends (also when it is cancelled before
its first step, when its body never runs) is done in the task's done callback, never in its body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from miniagents.promising.context import PromisingContext

T = TypeVar("T")
TaskDoneCallback = Callable[["asyncio.Task[Any]"], None]

# public so that the context can set it with a token and reset it; read it through current_owner()
current_owner_var: ContextVar[TaskOwner | None] = ContextVar("miniagents_task_owner", default=None)


def current_owner() -> TaskOwner | None:
    """The owner of the tasks started in this execution context (None when no context is active)."""
    return current_owner_var.get()


class TaskOwner:
    """
    A node of the ownership tree: the tasks started on its behalf and its child owners.

    `start()` runs a coroutine as an owned task; `cancel()` cancels every owned task and child owner,
    whether or not the tasks have taken their first step yet.
    """

    __slots__ = ("_children", "_tasks", "attached", "cancel_requested", "context", "parent_owner", "releasable")

    def __init__(self, context: PromisingContext, parent_owner: TaskOwner | None) -> None:
        self.context = context
        self.parent_owner = parent_owner
        self.cancel_requested = False
        self.attached = parent_owner is None  # whether the parent holds this owner among its children now
        self.releasable = True  # may leave its parent once idle (an agent call: only once its function finished)
        self._tasks: dict[asyncio.Task[Any], TaskDoneCallback | None] | None = None  # running task -> its on_done
        self._children: set[TaskOwner] | None = None
        if parent_owner is not None:
            parent_owner.adopt(self)

    def start(self, coroutine: Coroutine[Any, Any, T], on_done: TaskDoneCallback | None = None) -> asyncio.Task[T]:
        """
        Run `coroutine` as a task owned by this owner (and tracked by its context until it ends).

        `on_done(task)` runs however the task ends, cancelled before its first step included.
        """
        task = asyncio.get_running_loop().create_task(coroutine)
        if not self.attached:
            self._attach()
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = {}
        tasks[task] = on_done
        self.context.track_task(task, self)  # (one done callback per task: each costs a call_soon)
        return task

    def task_ended(self, task: asyncio.Task[Any]) -> None:
        """`task`, started by `start()`, has ended: its `on_done`, then this owner leaves its parent if idle."""
        tasks = self._tasks
        if tasks is not None:
            on_done = tasks.pop(task, None)
            if on_done is not None:
                on_done(task)  # what the task produced gets its end before the bookkeeping below
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:  # the framework's own tasks deliver their errors: this one is a bug, make it loud
                self.context.logger.error("internal task failed: %r", exc, exc_info=exc)
        if not tasks and not self._children and self.releasable:  # idle: leave the parent
            parent = self.parent_owner
            if parent is not None:
                parent.release(self)

    def _attach(self) -> None:
        parent = self.parent_owner
        if parent is not None:
            parent.adopt(self)

    def adopt(self, child: TaskOwner) -> None:
        """Make `child` part of this owner's subtree (cancelled with it); this owner joins its own parent again."""
        children = self._children
        if children is None:
            children = self._children = set()
        children.add(child)
        child.attached = True
        if not self.attached:
            self._attach()

    def release(self, child: TaskOwner) -> None:
        """Forget a child that has nothing left running (it joins again if it starts something)."""
        owner: TaskOwner | None = self
        while owner is not None and owner.forget_child(child):  # (a loop: a chain of any length can go idle at once)
            child, owner = owner, owner.parent_owner  # idle in turn: it leaves its own parent

    def forget_child(self, child: TaskOwner) -> bool:
        """Drop `child` from this owner's children; returns whether this owner is now idle and may leave its parent."""
        children = self._children
        if children is None:
            return False
        children.discard(child)
        child.attached = False
        return not children and not self._tasks and self.releasable

    def is_idle(self) -> bool:
        """Whether nothing owned by this owner (or its subtree) is still running."""
        return not self._tasks and not self._children

    def release_if_idle(self) -> None:
        """Detach from the parent once idle (and `releasable`)."""
        if self.parent_owner is not None and self.releasable and self.is_idle():
            self.parent_owner.release(self)

    def cancel(self, sparing: asyncio.Task[Any] | None = None) -> bool:
        """
        Cancel every owned task (but `sparing`, e.g. the task calling this while it handles its own
        cancellation) and child owner. Returns whether anything was still running.
        """
        self.cancel_requested = True
        cancelled = False
        for task in tuple(self._tasks or ()):
            if task is not sparing:
                cancelled = task.cancel() or cancelled
        for child in tuple(self._children or ()):
            cancelled = child.cancel() or cancelled
        return cancelled

    def children(self) -> tuple[TaskOwner, ...]:
        """The child owners that still have something running."""
        return tuple(self._children or ())

    def running_tasks(self) -> tuple[asyncio.Task[Any], ...]:
        """The owned tasks (not the subtree's) that have not ended yet."""
        return tuple(self._tasks or ())
