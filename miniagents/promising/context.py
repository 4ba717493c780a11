"""
PromisingContext: where promises and agents run. It tracks every background task started for them and
the handlers run when a promise resolves; activated with `async with` or `activate()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from miniagents.promising.promise_typing import PromiseResolvedHandler, T

if TYPE_CHECKING:
    from miniagents.promising.promising import Promise

logger = logging.getLogger("miniagents")

_current_context: ContextVar[PromisingContext | None] = ContextVar("miniagents_context", default=None)

_NO_CONTEXT_MESSAGE = (
    "No MiniAgents context is active. Wrap the code that creates promises or calls agents in "
    "`async with MiniAgents():` (or run it with `MiniAgents().run(...)`; in Jupyter, call "
    "`miniagents.notebook.activate()` once)."
)


class PromisingContext:
    """
    Tracks every background task started for promises and agents, and the resolution handlers.

    Activate it with `async with`, or `activate()` + `await afinalize()`; contexts nest.
    """

    def __init__(
        self,
        start_everything_asap_by_default: bool = True,
        appenders_capture_errors_by_default: bool = False,
        longer_hash_keys: bool = False,
        log_level_for_errors: int = logging.ERROR,
        on_promise_resolved: PromiseResolvedHandler | Iterable[PromiseResolvedHandler] = (),
    ) -> None:
        self.parent: PromisingContext | None = None
        self.start_everything_asap_by_default = start_everything_asap_by_default
        self.appenders_capture_errors_by_default = appenders_capture_errors_by_default
        self.longer_hash_keys = longer_hash_keys
        self.log_level_for_errors = log_level_for_errors
        self.logger = logger
        self._resolved_handlers: list[PromiseResolvedHandler] = _as_handler_list(on_promise_resolved)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._internal_tasks: set[asyncio.Task[Any]] = set()  # the subset started by the framework itself
        self._forget_internal = self._forget_internal_task  # one bound method, not one per task
        self._activation_token: Any = None
        self._active = False

    # ------------------------------------------------------------- activation

    @classmethod
    def get_current(cls) -> PromisingContext:
        """
        The active context. Raises RuntimeError when none is active, TypeError when the active one
        is not an instance of `cls`.
        """
        context = _current_context.get()
        if context is None:
            raise RuntimeError(_NO_CONTEXT_MESSAGE)
        if not isinstance(context, cls):
            raise TypeError(f"the active context is a {type(context).__name__}, not a {cls.__name__}")
        return context

    @staticmethod
    def get_current_or_none() -> PromisingContext | None:
        """The active context, or None."""
        return _current_context.get()

    def activate(self) -> PromisingContext:
        """Make this context the current one (synchronously). Raises RuntimeError if already active."""
        if self._active:
            raise RuntimeError(f"this {type(self).__name__} is already active; contexts are not re-entrant")
        self.parent = _current_context.get()
        self._activation_token = _current_context.set(self)
        self._active = True
        return self

    async def afinalize(self) -> None:
        """Wait for every task this context started (including ones started meanwhile), then deactivate."""
        try:
            await self.aflush_tasks()
        finally:
            self._deactivate()

    async def aflush_tasks(self) -> None:
        """Wait until every task this context started has finished, without deactivating it."""
        current = asyncio.current_task()
        while True:
            pending = [task for task in self._tasks if task is not current]
            if not pending:
                return
            await asyncio.wait(pending)

    def _deactivate(self) -> None:
        if not self._active:
            return
        self._active = False
        try:
            _current_context.reset(self._activation_token)
        except ValueError:
            # activated in another contextvars.Context (e.g. a different notebook cell)
            _current_context.set(self.parent)
        self._activation_token = None

    async def __aenter__(self) -> PromisingContext:
        return self.activate()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None and not isinstance(exc, Exception):
            # cancelled or interrupted (Ctrl-C, kernel interrupt): stop everything this context started
            await self.acancel_tasks()
        await self.afinalize()

    async def acancel_tasks(self) -> None:
        """
        Cancel the framework's own tasks (agents, streams, flattening) and wait until they have ended.
        Tasks scheduled with `start_asap()` (handlers: persistence, logging) are left to finish, so
        what was already produced is not lost; `afinalize()` waits for them.
        """
        current = asyncio.current_task()
        while True:
            pending = [task for task in self._internal_tasks if task is not current and not task.done()]
            if not pending:
                return
            started = [task for task in pending if not _not_started(task)]
            for task in started:
                task.cancel()
            if started:
                await asyncio.wait(started)
            else:
                # a task cancelled before its first step never runs its body (nor its cleanup): let the
                # not-yet-started ones reach their first await, then cancel them
                await asyncio.sleep(0)

    # ------------------------------------------------------------------ tasks

    def start_asap(
        self,
        awaitable: Awaitable[T],
        suppress_errors: bool = False,
        log_level_for_errors: int = logging.DEBUG,
    ) -> asyncio.Task[T | None]:
        """
        Schedule `awaitable` as a tracked task that starts at the next task switch.

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
        self._tasks.add(task)
        task.add_done_callback(self._forget_reported_task)
        return task

    def _forget_reported_task(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # logged by start_asap() already; awaiting the task still re-raises it

    def _track(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run one of the framework's own coroutines as a tracked task (they deliver their errors)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        self._internal_tasks.add(task)
        task.add_done_callback(self._forget_internal)
        return task

    def _forget_internal_task(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._internal_tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if exc is not None:  # a bug in the framework: make it loud rather than lose it
                self.logger.error("internal task failed: %r", exc, exc_info=exc)

    # -------------------------------------------------------------- handlers

    def on_promise_resolved(self, handler: PromiseResolvedHandler) -> PromiseResolvedHandler:
        """Register `async handler(promise, result)`, scheduled whenever a promise resolves."""
        self._resolved_handlers.append(handler)
        return handler

    def _promise_resolved(self, promise: Promise[Any], result: Any) -> None:
        """Schedule the resolution handlers of this context and of its parents."""
        context: PromisingContext | None = self
        while context is not None:
            for handler in context._resolved_handlers:
                self.start_asap(handler(promise, result), log_level_for_errors=self.log_level_for_errors)
            context = context.parent


def _not_started(task: asyncio.Task[Any]) -> bool:
    frame = getattr(task.get_coro(), "cr_frame", None)
    return frame is not None and frame.f_lasti < 0


def _as_handler_list(handlers: Callable[..., Any] | Iterable[Callable[..., Any]]) -> list[Any]:
    return [handlers] if callable(handlers) else list(handlers)
