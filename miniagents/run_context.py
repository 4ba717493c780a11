"""
MiniAgents: the context agents run in (`async with MiniAgents():` or `MiniAgents().run(coroutine)`), with the
hooks that observe a run: message persistence, promise resolution and agent calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import signal
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from miniagents.interrupts import Interrupter
from miniagents.messages import Message, MessageSequencePromise
from miniagents.promising.context import PROMISE_RESOLVED
from miniagents.promising.observers import describe_handler
from miniagents.promising.promising import Promise, PromisingContext
from miniagents.usage import TokenUsage

if TYPE_CHECKING:
    from miniagents.agent_call import AgentCall

T = TypeVar("T")
PersistMessageHandler = Callable[[Promise[Any], Message], Awaitable[None]]
AgentCallHandler = Callable[["AgentCall"], None]

PERSIST_MESSAGE = "persist_message"
AGENT_CALL = "agent_call"


class MiniAgents(PromisingContext):
    """
    The context agents run in: `async with MiniAgents(): ...` or `MiniAgents().run(coroutine)`.

    `on_persist_message` handlers receive every Message resolved anywhere, once per instance and context,
    nested messages before the message that holds them.
    """

    def __init__(
        self,
        stream_llm_tokens_by_default: bool = True,
        on_promise_resolved: Any = (),
        on_persist_message: PersistMessageHandler | Iterable[PersistMessageHandler] = (),
        on_agent_call: AgentCallHandler | Iterable[AgentCallHandler] = (),
        errors_as_messages: bool = False,
        **context_kwargs: Any,
    ) -> None:
        super().__init__(on_promise_resolved=on_promise_resolved, **context_kwargs)
        self.stream_llm_tokens_by_default = stream_llm_tokens_by_default
        self.errors_as_messages = errors_as_messages  # agents' exceptions become ErrorMessages (agents may override)
        self.observers.add_all(PERSIST_MESSAGE, on_persist_message, must_be_async=True)
        self.observers.add_all(AGENT_CALL, on_agent_call, must_be_async=False)
        self._last_call_id = 0
        self._interrupted = False  # set by Ctrl-C in run(): leftover agents get cancelled on exit
        self._open_inputs: set[AgentCall] = set()  # calls from initiate_inquiry() whose input is not finished
        self._empty_sequence_promise: MessageSequencePromise | None = None
        self._persist_scope = object()  # what messages are marked with once handed to this context's handlers
        self._token_usage = TokenUsage()

    @classmethod
    def get_current(cls) -> MiniAgents:
        return super().get_current()  # type: ignore[return-value]

    # ------------------------------------------------------------------ running

    def run(self, awaitable: Awaitable[T]) -> T:
        """
        Run `awaitable` inside this context and return its result (blocking).

        Ctrl-C raises KeyboardInterrupt inside the coroutine where it waits (the second Ctrl-C at once), and
        every agent still running is cancelled when the context exits. Inside an already running event loop
        (a Jupyter cell, or `asyncio.run` around this call) it runs on a private loop in a worker thread; an
        interrupt there is delivered the same way.
        """
        interrupter = Interrupter(on_interrupt=self._note_interrupt)
        main = interrupter.wrap(self._aenter_and_await(awaitable))
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            loop_running = False
        else:
            loop_running = True
        if loop_running:
            return _run_in_worker_thread(main, interrupter)
        with interrupter.sigint_installed():
            return asyncio.run(main)

    def _note_interrupt(self) -> None:
        self._interrupted = True

    async def _aenter_and_await(self, awaitable: Awaitable[T]) -> T:
        async with self:
            return await awaitable

    async def arun(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` inside this context, then wait for every task it started."""
        return await self._aenter_and_await(awaitable)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """
        Waits for every agent to finish. When the body raised, was cancelled or interrupted (Ctrl-C, even one
        user code handled), what still runs is cancelled instead; observer tasks (persistence...) still finish.
        """
        if self._interrupted:
            self.cancel_all()
        self._interrupted = False
        await super().__aexit__(exc_type, exc, tb)

    async def afinalize(self) -> None:
        """Finish the input of calls nobody finished (so their agents can't wait forever), then wait for all."""
        while self._open_inputs:
            self._open_inputs.pop().finish()
        await super().afinalize()

    @property
    def token_usage(self) -> TokenUsage:
        """The providers' token usage of the LLM replies of this run, by model (each added when it resolves)."""
        return self._token_usage

    # ------------------------------------------------------- for agent calls

    def next_call_id(self) -> int:
        """A new call id: calls are numbered in the order they are made in this context."""
        self._last_call_id += 1
        return self._last_call_id

    def track_open_input(self, call: AgentCall) -> None:
        """Remember a call whose input is still open (`initiate_inquiry()`): it is finished at exit."""
        self._open_inputs.add(call)

    def forget_open_input(self, call: AgentCall) -> None:
        """The input of `call` was finished."""
        self._open_inputs.discard(call)

    def empty_sequence(self) -> MessageSequencePromise:
        """One finished, empty MessageSequencePromise shared by every call without input (it is immutable)."""
        empty = self._empty_sequence_promise
        if empty is None:
            empty = self._empty_sequence_promise = MessageSequencePromise(prefill_pieces=(), start_asap=False)
        return empty

    # -------------------------------------------------------------- observers

    def on_persist_message(self, handler: PersistMessageHandler) -> PersistMessageHandler:
        """Register `async handler(promise, message)`; usable as a decorator. Raises TypeError if not async."""
        self.observers.add(PERSIST_MESSAGE, handler, must_be_async=True)
        return handler

    def on_agent_call(self, handler: AgentCallHandler) -> AgentCallHandler:
        """
        Register `handler(agent_call)`, called synchronously whenever an agent is called in this context
        (or a nested one), before the agent starts. For live views: the AgentCall exposes its input and
        reply sequences (replayable), `status`, timing and `add_done_callback()`. It must not block; if it
        raises, the error is logged with its name and the call goes on.
        """
        self.observers.add(AGENT_CALL, handler, must_be_async=False)
        return handler

    def notify_agent_call(self, call: AgentCall) -> None:
        """Tell the agent-call observers (this context's and its parents') about a new call."""
        if self.observers.merged:
            self.observers.notify(AGENT_CALL, call)

    def promise_resolved(self, promise: Promise[Any], result: Any) -> None:
        merged = self.observers.merged  # (read directly: this runs for every promise)
        if merged:
            handlers = merged.get(PROMISE_RESOLVED)
            if handlers:
                for handler in handlers:
                    self.schedule_observer(PROMISE_RESOLVED, handler, promise, result)
            if isinstance(result, Message):
                handlers = merged.get(PERSIST_MESSAGE)
                if handlers:
                    self._schedule_persistence(promise, result, handlers)

    def _schedule_persistence(self, promise: Promise[Any], message: Message, handlers: tuple[Any, ...]) -> None:
        scope = self._persist_scope
        # a message already persisted in this context was persisted after everything below it: skip that subtree
        # (so persisting a long reference chain link by link stays linear)
        if message.holds_models():  # most messages hold none: no walk for them
            for each in message.sub_messages(skip=lambda nested: not nested.mark_persisted(scope)):
                for handler in handlers:
                    self._persist(handler, promise, each)
        if message.mark_persisted(scope):
            for handler in handlers:
                self._persist(handler, promise, message)

    def _persist(self, handler: PersistMessageHandler, promise: Promise[Any], message: Message) -> None:
        """
        Run `await handler(promise, message)` right here until it first waits for something (a store that
        only queues the message never does, and then costs no task); what is left runs in a context-level
        task. It runs in a copy of the current contextvars context, as it would in a task of its own, and
        an error is logged with the handler's name.
        """
        try:
            coroutine = handler(promise, message)
        except Exception as exc:
            self.observers.log_failure(PERSIST_MESSAGE, handler, exc)
            return
        if not asyncio.iscoroutine(coroutine):
            error = TypeError(f"{describe_handler(handler)} returned {type(coroutine).__name__}, not a coroutine")
            self.observers.log_failure(PERSIST_MESSAGE, handler, error)
            return
        context = contextvars.copy_context()
        try:
            awaited = context.run(coroutine.send, None)
        except StopIteration:
            return
        except Exception as exc:
            self.observers.log_failure(PERSIST_MESSAGE, handler, exc)
            return
        except BaseException:
            coroutine.close()
            raise
        task = context.run(
            asyncio.get_running_loop().create_task, self._afinish_persisting(handler, coroutine, awaited)
        )
        self.track_task(task)

    async def _afinish_persisting(
        self, handler: PersistMessageHandler, coroutine: Coroutine[Any, Any, Any], awaited: Any
    ) -> None:
        try:
            await _resumed(coroutine, awaited)
        except Exception as exc:
            self.observers.log_failure(PERSIST_MESSAGE, handler, exc)

    def observes_interactions(self) -> bool:
        """Whether anyone can see the interaction graph (so it is worth building)."""
        merged = self.observers.merged
        return bool(merged and (merged.get(PROMISE_RESOLVED) or merged.get(PERSIST_MESSAGE)))


@types.coroutine
def _resumed(coroutine: Coroutine[Any, Any, Any], awaited: Any) -> Generator[Any, Any, None]:
    """Go on with `coroutine`, which was run by hand until it yielded `awaited` (what it waits for)."""
    while True:
        try:
            sent = yield awaited
        except BaseException as exc:  # e.g. the task is cancelled: the coroutine gets it where it waits
            try:
                awaited = coroutine.throw(exc)
            except StopIteration:
                return
        else:
            try:
                awaited = coroutine.send(sent)
            except StopIteration:
                return


def _run_in_worker_thread(main: Coroutine[Any, Any, T], interrupter: Interrupter) -> T:
    """
    Run `main` on a private event loop in a worker thread while the caller's loop is blocked. The run starts
    from an empty contextvars context: it is independent of any context active in the caller. An interrupt
    of the waiting thread is delivered to the run (its agents are cancelled), then re-raised here.
    """
    outcome: concurrent.futures.Future[T] = concurrent.futures.Future()

    def worker() -> None:
        if hasattr(signal, "pthread_sigmask"):  # SIGINT is for the waiting thread, which delivers it to the run
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            outcome.set_result(asyncio.run(main))
        except BaseException as exc:
            outcome.set_exception(exc)

    thread = threading.Thread(target=worker, name="miniagents-run", daemon=True)
    # our SIGINT handler while we block (asyncio.Runner's would only cancel the blocked caller's task)
    with interrupter.sigint_installed(early_ok=True):
        thread.start()
        try:
            return _await_outcome(outcome)
        except KeyboardInterrupt:  # not through our handler (e.g. another thread's): deliver it to the run
            interrupter.interrupt_threadsafe(early_ok=True)
    thread.join()
    return outcome.result()  # the run's KeyboardInterrupt, or its result if the coroutine handled it


def _await_outcome(outcome: concurrent.futures.Future[T]) -> T:
    """
    Block until `outcome` is set. The wait wakes up now and then because a signal delivered to another thread
    does not interrupt this one's lock wait, and Python runs signal handlers only in the main thread.
    """
    while True:
        try:
            return outcome.result(timeout=_SIGNAL_CHECK_SECONDS)
        except concurrent.futures.TimeoutError:
            continue


_SIGNAL_CHECK_SECONDS = 0.1
