"""
MiniAgents: the context agents run in (`async with MiniAgents():` or `MiniAgents().run(coroutine)`), with the
hooks that observe a run: message persistence, promise resolution and agent calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from miniagents.messages import Message, MessageSequencePromise
from miniagents.promising.context import _as_handler_list
from miniagents.promising.promising import Promise, PromisingContext

if TYPE_CHECKING:
    from miniagents.agent_call import AgentCall

T = TypeVar("T")
PersistMessageHandler = Callable[[Promise[Any], Message], Awaitable[None]]
AgentCallHandler = Callable[["AgentCall"], None]


class MiniAgents(PromisingContext):
    """
    The context agents run in: `async with MiniAgents(): ...` or `MiniAgents().run(coroutine)`.

    `on_persist_message` handlers receive every Message resolved anywhere, once per instance, nested
    messages before the message that holds them.
    """

    def __init__(
        self,
        stream_llm_tokens_by_default: bool = True,
        on_promise_resolved: Any = (),
        on_persist_message: PersistMessageHandler | Iterable[PersistMessageHandler] = (),
        on_agent_call: AgentCallHandler | Iterable[AgentCallHandler] = (),
        **context_kwargs: Any,
    ) -> None:
        super().__init__(on_promise_resolved=on_promise_resolved, **context_kwargs)
        self.stream_llm_tokens_by_default = stream_llm_tokens_by_default
        self._persist_handlers: list[PersistMessageHandler] = _as_handler_list(on_persist_message)
        self._agent_call_handlers: list[AgentCallHandler] = _as_handler_list(on_agent_call)
        self._last_call_id = 0
        self._interrupted = False  # set by Ctrl-C in run(): leftover agents get cancelled on exit
        self._open_inputs: set[AgentCall] = set()  # calls from initiate_inquiry() whose input is not finished
        self._empty_sequence_promise: MessageSequencePromise | None = None

    @classmethod
    def get_current(cls) -> MiniAgents:
        return super().get_current()  # type: ignore[return-value]

    def run(self, awaitable: Awaitable[T]) -> T:
        """
        Run `awaitable` inside this context and return its result (blocking).

        Inside an already running event loop (a Jupyter cell) it runs on a private event loop in a
        worker thread, so script-style code works unchanged without patching the running loop.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._arun_interruptible(awaitable))
        return self._run_in_worker_thread(awaitable)

    def _run_in_worker_thread(self, awaitable: Awaitable[T]) -> T:
        """
        Run on a private event loop in a worker thread; an interrupt here cancels the run there. The run
        starts from an empty contextvars context: it is independent of any context active in the caller
        (whose handlers and widgets live on the caller's loop and must not be driven from another one).
        """
        _refuse_promise_of_running_loop(awaitable)
        loop = asyncio.new_event_loop()
        main_task: asyncio.Task[T] = contextvars.Context().run(loop.create_task, self.arun(awaitable))
        outcome: concurrent.futures.Future[T] = concurrent.futures.Future()

        def worker() -> None:
            try:
                outcome.set_result(loop.run_until_complete(main_task))
            except BaseException as exc:
                outcome.set_exception(exc)
            finally:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()

        thread = threading.Thread(target=worker, name="miniagents-run", daemon=True)
        thread.start()
        try:
            return outcome.result()
        except KeyboardInterrupt:  # e.g. a Jupyter kernel interrupt: stop the agents, then re-raise
            loop.call_soon_threadsafe(main_task.cancel)
            thread.join()
            raise

    async def _arun_interruptible(self, awaitable: Awaitable[T]) -> T:
        """
        `arun` for scripts: Ctrl-C raises KeyboardInterrupt *inside* the running coroutine, where it is
        waiting (so `except KeyboardInterrupt:` in user code works, as in the seeds), and every agent
        still running is cancelled when the context exits.
        """
        main_task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        interrupted = False

        def on_sigint(attempts_left: int = 100) -> None:
            nonlocal interrupted
            interrupted = True
            self._interrupted = True
            if main_task is None or main_task.done():
                return
            waiter = getattr(main_task, "_fut_waiter", None)  # the future the main coroutine waits on
            if isinstance(waiter, asyncio.Future) and not isinstance(waiter, asyncio.Task) and not waiter.done():
                waiter.set_exception(KeyboardInterrupt())
            elif waiter is None and attempts_left:
                loop.call_soon(on_sigint, attempts_left - 1)  # about to run, not waiting yet: try next turn
            else:
                main_task.cancel()  # run() then raises KeyboardInterrupt itself

        # A Python-level handler, not loop.add_signal_handler(): libraries such as prompt_toolkit add and
        # then remove their own loop handler for SIGINT (which drops ours), but restore this level.
        previous_handler = None
        if threading.current_thread() is threading.main_thread():
            previous_handler = signal.signal(signal.SIGINT, lambda *_: loop.call_soon_threadsafe(on_sigint))
        try:
            return await self.arun(awaitable)
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)

    async def arun(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` inside this context, then wait for every task it started."""
        async with self:
            return await awaitable

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """
        Waits for every agent to finish (also when the body raised: what they produce is not lost). When
        cancelled or interrupted (Ctrl-C, even one user code handled), agents still running are cancelled
        instead; handler tasks (persistence...) still finish.
        """
        if self._interrupted or (exc is not None and not isinstance(exc, Exception)):
            await self.acancel_tasks()
        self._interrupted = False
        await super().__aexit__(exc_type, exc, tb)

    async def afinalize(self) -> None:
        """Finish the input of calls nobody finished (so their agents can't wait forever), then wait for all."""
        while self._open_inputs:
            self._open_inputs.pop().finish()
        await super().afinalize()

    def _empty_sequence(self) -> MessageSequencePromise:
        """One finished, empty MessageSequencePromise shared by every call without input (it is immutable)."""
        empty = self._empty_sequence_promise
        if empty is None:
            empty = self._empty_sequence_promise = MessageSequencePromise(prefill_pieces=(), start_asap=False)
        return empty

    def on_persist_message(self, handler: PersistMessageHandler) -> PersistMessageHandler:
        """Register `async handler(promise, message)`; usable as a decorator."""
        self._persist_handlers.append(handler)
        return handler

    def on_agent_call(self, handler: AgentCallHandler) -> AgentCallHandler:
        """
        Register `handler(agent_call)`, called synchronously whenever an agent is called in this context
        (or a nested one), before the agent starts. For live views: the AgentCall exposes its input and
        reply sequences (replayable), `status`, timing and `add_done_callback()`. It must not block.
        """
        self._agent_call_handlers.append(handler)
        return handler

    def _notify_agent_call(self, call: AgentCall) -> None:
        context: PromisingContext | None = self
        while context is not None:
            for handler in getattr(context, "_agent_call_handlers", ()):
                handler(call)
            context = context.parent

    def _promise_resolved(self, promise: Promise[Any], result: Any) -> None:
        super()._promise_resolved(promise, result)
        if isinstance(result, Message):
            handlers = self._all_persist_handlers()
            if handlers:
                self._schedule_persistence(promise, result, handlers)

    def _all_persist_handlers(self) -> list[PersistMessageHandler]:
        handlers: list[PersistMessageHandler] = []
        context: PromisingContext | None = self
        while context is not None:
            handlers.extend(getattr(context, "_persist_handlers", ()))
            context = context.parent
        return handlers

    def _schedule_persistence(
        self, promise: Promise[Any], message: Message, handlers: list[PersistMessageHandler]
    ) -> None:
        for each in (*message.sub_messages(), message):
            if not each._mark_persisted(self):
                continue
            for handler in handlers:
                self.start_asap(handler(promise, each), log_level_for_errors=self.log_level_for_errors)

    def _observes_interactions(self) -> bool:
        """Whether anyone can see the interaction graph (so it is worth building)."""
        context: PromisingContext | None = self
        while context is not None:
            if context._resolved_handlers or getattr(context, "_persist_handlers", None):
                return True
            context = context.parent
        return False


def _refuse_promise_of_running_loop(awaitable: Awaitable[Any]) -> None:
    """
    `run()` inside a running loop runs on another loop while the caller's loop is blocked: a promise made
    on the caller's loop could never be fed there, so waiting for it would hang. Refuse it clearly.
    """
    owner = getattr(getattr(awaitable, "cr_frame", None), "f_locals", {}).get("self")
    promise = awaitable if isinstance(awaitable, Promise) else owner if isinstance(owner, Promise) else None
    if promise is not None:
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never awaited: close it so no warning follows
        raise RuntimeError(
            f"MiniAgents().run() was given a {type(promise).__name__} made on the event loop that is already running "
            "here (e.g. a notebook's): run() executes on its own loop in a worker thread, where that promise could "
            "never complete. `await` it directly instead, or pass run() a coroutine that makes its own agent calls "
            "(`MiniAgents().run(main())`)."
        )
