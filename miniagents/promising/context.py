"""
PromisingContext: where promises and agents run. It owns the root of the task ownership tree, tracks every
task started in it (so `afinalize()` can wait for them) and holds its observers; activated with
`async with` or `activate()`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Coroutine
from contextvars import Token
from typing import TYPE_CHECKING, Any

from miniagents.promising.observers import Observers, describe_handler
from miniagents.promising.ownership import TaskDoneCallback, TaskOwner, current_owner_var
from miniagents.promising.promise_typing import PromiseResolvedHandler, T

if TYPE_CHECKING:
    from miniagents.promising.promising import Promise

logger = logging.getLogger("miniagents")

NO_CONTEXT_MESSAGE = (
    "No MiniAgents context is active. Wrap the code that creates promises or calls agents in "
    "`async with MiniAgents():` (or run it with `MiniAgents().run(...)`; in Jupyter, call "
    "`miniagents.notebook.activate()` once)."
)

PROMISE_RESOLVED = "promise_resolved"


class PromisingContext:
    """
    Tracks every task started for promises and agents, owns them (cancel the root and everything stops),
    and dispatches the observers. Activate it with `async with`, or `activate()` + `await afinalize()`.
    """

    def __init__(
        self,
        start_everything_asap_by_default: bool = True,
        appenders_capture_errors_by_default: bool = False,
        longer_hash_keys: bool = False,
        log_level_for_errors: int = logging.ERROR,
        on_promise_resolved: PromiseResolvedHandler | Any = (),
    ) -> None:
        self.parent: PromisingContext | None = None
        self.start_everything_asap_by_default = start_everything_asap_by_default
        self.appenders_capture_errors_by_default = appenders_capture_errors_by_default
        self.longer_hash_keys = longer_hash_keys
        self.log_level_for_errors = log_level_for_errors
        self.logger = logger
        self.observers = Observers(logger)
        self.observers.add_all(PROMISE_RESOLVED, on_promise_resolved, must_be_async=True)
        self.root_owner: TaskOwner = TaskOwner(self, None)
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop this context's tasks run on
        # every task started in this context that has not ended -> the owner its end is handed to (None: nobody);
        # read-only for all but `track_task()`, `count_task()` and `forget_task()`
        self.tasks_in_flight: dict[asyncio.Task[Any], TaskOwner | None] = {}
        self._task_done_callback = self._task_done  # every task's done callback: one bound method, not one per task
        self._activation_token: Token[TaskOwner | None] | None = None
        self.callback_context: contextvars.Context | None = None  # set when activated
        self._active = False

    # ------------------------------------------------------------- activation

    @classmethod
    def get_current(cls) -> PromisingContext:
        """
        The active context. Raises RuntimeError when none is active, TypeError when the active one is not
        an instance of `cls`.
        """
        owner = current_owner_var.get()
        if owner is None:
            raise RuntimeError(NO_CONTEXT_MESSAGE)
        context = owner.context
        if not isinstance(context, cls):
            raise TypeError(f"the active context is a {type(context).__name__}, not a {cls.__name__}")
        return context

    @staticmethod
    def get_current_or_none() -> PromisingContext | None:
        """The active context, or None."""
        owner = current_owner_var.get()
        return None if owner is None else owner.context

    @property
    def is_active(self) -> bool:
        """Whether this context has been activated and not finalized yet."""
        return self._active

    def activate(self) -> PromisingContext:
        """Make this context the current one (synchronously). Raises RuntimeError if already active."""
        if self._active:
            raise RuntimeError(f"this {type(self).__name__} is already active; contexts are not re-entrant")
        parent_owner = current_owner_var.get()
        self.parent = None if parent_owner is None else parent_owner.context
        self.observers.attach_to(None if self.parent is None else self.parent.observers)
        self.root_owner = TaskOwner(self, None)
        self._activation_token = current_owner_var.set(self.root_owner)
        # what the done callbacks of this context's tasks run in (the root owner current): one shared context
        # instead of a copy per task, which asyncio would make
        self.callback_context = contextvars.copy_context()
        self._active = True
        return self

    def make_current(self) -> None:
        """
        Make this already active context current in this execution context too (e.g. a notebook cell that
        runs in a fresh contextvars context). Raises RuntimeError if it is not active.
        """
        if not self._active:
            raise RuntimeError(f"this {type(self).__name__} is not active: activate() it first")
        current_owner_var.set(self.root_owner)

    def deactivate(self) -> None:
        """Stop being active without waiting for the tasks (`afinalize()` waits, then deactivates)."""
        if not self._active:
            return
        self._active = False
        token, self._activation_token = self._activation_token, None
        try:
            if token is not None:
                current_owner_var.reset(token)
        except ValueError:  # activated in another contextvars.Context (e.g. a different notebook cell)
            current_owner_var.set(None if self.parent is None else self.parent.root_owner)

    async def afinalize(self) -> None:
        """Wait for every task this context started (including ones started meanwhile), then deactivate."""
        try:
            await self.aflush_tasks()
        finally:
            self.deactivate()

    async def aflush_tasks(self) -> None:
        """Wait until every task this context started has finished, without deactivating it."""
        current = asyncio.current_task()
        while True:
            tasks = self.tasks_in_flight
            if not tasks or (len(tasks) == 1 and current in tasks):
                return
            pending = [task for task in tasks if not task.done() and task is not current]
            if pending:
                await asyncio.wait(pending)
                continue
            ended = list(tasks)  # their done callbacks (which forget them) have not run yet: let them run
            await asyncio.sleep(0)
            for task in ended:  # still there: counted tasks whose end nobody reported (see count_task())
                if task in self.tasks_in_flight and task is not current:
                    self._task_done(task)

    async def __aenter__(self) -> PromisingContext:
        return self.activate()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            # an error, a cancellation or an interrupt left the body: stop what is still running (every open
            # stream ends with PromiseCancelledError, so no consumer waits forever); observers still finish
            self.cancel_all()
        await self.afinalize()

    def cancel_all(self) -> bool:
        """Cancel every agent, stream and flattening task of this context (observer tasks still finish)."""
        return self.root_owner.cancel()

    async def acancel_tasks(self) -> None:
        """Cancel everything this context runs (see `cancel_all()`), then wait until every task has ended."""
        self.cancel_all()
        await self.aflush_tasks()

    # ------------------------------------------------------------------ tasks

    def track_task(self, task: asyncio.Task[Any], owner: TaskOwner | None = None) -> None:
        """
        Count `task` among this context's tasks until it ends (`aflush_tasks()` waits for it); then, however it
        ended, `owner.task_ended(task)` is called (in the context's callback context).
        """
        if self.loop is None:
            self.loop = task.get_loop()
        self.tasks_in_flight[task] = owner
        task.add_done_callback(self._task_done_callback, context=self.callback_context)

    def count_task(self, task: asyncio.Task[Any], owner: TaskOwner) -> None:
        """
        Count `task` among this context's tasks without a done callback (each costs a loop turn): `owner` says
        when it ends, with `forget_task()`. For a task whose coroutine reports its own end, and whose owner calls
        `track_task()` on it when it could end otherwise (cancelled before its first step, when its body never
        runs). If it ends unreported anyway, `aflush_tasks()` hands it to `owner.task_ended()`.
        """
        if self.loop is None:
            self.loop = task.get_loop()
        self.tasks_in_flight[task] = owner

    def forget_task(self, task: asyncio.Task[Any]) -> None:
        """`task`, counted by `count_task()`, has ended (its coroutine is returning now)."""
        self.tasks_in_flight.pop(task, None)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        owner = self.tasks_in_flight.pop(task, None)
        if owner is not None:
            owner.task_ended(task)

    def create_task(
        self, coroutine: Coroutine[Any, Any, T], on_done: TaskDoneCallback | None = None
    ) -> asyncio.Task[T]:
        """
        Run one of the framework's own coroutines as a task owned by the current owner (the agent call
        running now, or this context's root), so cancelling that owner cancels it. `on_done(task)` runs
        however the task ends.
        """
        owner = current_owner_var.get()
        if owner is None or owner.context is not self:
            owner = self.root_owner
        return owner.start(coroutine, on_done)

    def start_asap(
        self,
        awaitable: Awaitable[T],
        suppress_errors: bool = False,
        log_level_for_errors: int = logging.DEBUG,
    ) -> asyncio.Task[T | None]:
        """
        Schedule `awaitable` as a tracked task that starts at the next task switch. It belongs to the
        context, not to an agent call: cancelling calls leaves it running (`afinalize()` waits for it).

        An error is logged at `log_level_for_errors`, then re-raised from the task unless suppressed.
        """

        async def run() -> T | None:
            try:
                return await awaitable
            except Exception as exc:
                self.logger.log(log_level_for_errors, "error in a background task: %r", exc, exc_info=exc)
                if suppress_errors:
                    return None
                raise

        task = asyncio.get_running_loop().create_task(run())
        self.track_task(task)
        task.add_done_callback(_retrieve_exception)
        return task

    def start_soon(
        self, awaitable: Awaitable[T], suppress_errors: bool = False, log_level_for_errors: int = logging.DEBUG
    ) -> asyncio.Task[T | None]:
        """`start_asap()` under its MiniAgents 0.0.35 name."""
        return self.start_asap(awaitable, suppress_errors=suppress_errors, log_level_for_errors=log_level_for_errors)

    # -------------------------------------------------------------- observers

    def on_promise_resolved(self, handler: PromiseResolvedHandler) -> PromiseResolvedHandler:
        """Register `async handler(promise, result)`, scheduled whenever a promise resolves (a decorator too)."""
        self.observers.add(PROMISE_RESOLVED, handler, must_be_async=True)
        return handler

    def promise_resolved(self, promise: Promise[Any], result: Any) -> None:
        """Schedule the resolution observers (this context's, then its parents'). Called by promises."""
        handlers = self.observers.merged.get(PROMISE_RESOLVED)
        if handlers:
            for handler in handlers:
                self.schedule_observer(PROMISE_RESOLVED, handler, promise, result)

    def schedule_observer(self, kind: str, handler: Any, *args: Any) -> None:
        """Run `await handler(*args)` in a context-level task; an error is logged with the handler's name."""
        try:
            coroutine = handler(*args)
        except Exception as exc:
            self.observers.log_failure(kind, handler, exc)
            return
        if not asyncio.iscoroutine(coroutine):
            self.observers.log_failure(
                kind,
                handler,
                TypeError(f"{describe_handler(handler)} returned {type(coroutine).__name__}, not a coroutine"),
            )
            return
        task = asyncio.get_running_loop().create_task(self._aobserve(kind, handler, coroutine))
        self.track_task(task)

    async def _aobserve(self, kind: str, handler: Any, coroutine: Coroutine[Any, Any, Any]) -> None:
        try:
            await coroutine
        except Exception as exc:
            self.observers.log_failure(kind, handler, exc)


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # logged by start_asap() already; awaiting the task still re-raises it
