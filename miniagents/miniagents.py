"""Agents: the MiniAgents context, `@miniagent`, agent calls and the interaction graph they leave."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar, overload

from miniagents.message_sequence import MessageAppender, MessageSequence
from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.miniagent_typing import MessageType
from miniagents.promising.errors import AppenderClosedError, PromiseCancelledError
from miniagents.promising.ext.frozen import Frozen, freeze_value
from miniagents.promising.promising import Promise, PromisingContext, _as_handler_list
from miniagents.promising.sentinels import DEFAULT, Sentinel

T = TypeVar("T")
PersistMessageHandler = Callable[[Promise[Any], Message], Awaitable[None]]
AgentCallHandler = Callable[["AgentCall"], None]

_calling_agent: ContextVar[AgentCall | None] = ContextVar("miniagents_calling_agent", default=None)

__all__ = [
    "AgentCall",
    "AgentCallNode",
    "AgentReplyNode",
    "AgentTimeoutError",
    "InteractionContext",
    "MessageSequence",
    "MiniAgent",
    "MiniAgents",
    "miniagent",
]


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

        def on_sigint() -> None:
            nonlocal interrupted
            interrupted = True
            self._interrupted = True
            waiter = getattr(main_task, "_fut_waiter", None)  # the future the main coroutine waits on
            if isinstance(waiter, asyncio.Future) and not isinstance(waiter, asyncio.Task) and not waiter.done():
                waiter.set_exception(KeyboardInterrupt())
            elif main_task is not None:
                main_task.cancel()

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


class AgentTimeoutError(TimeoutError):
    """An agent function did not finish within its `call_timeout`."""


class AgentCallNode(Message):
    """
    Part of the interaction graph: an agent was called with these messages (plus the agent's
    interaction metadata and the call's function kwargs as extra fields). `call_id` numbers the calls
    of a MiniAgents context in order; `parent_call_id` is the call of the agent that made this call.
    """

    agent_alias: str
    messages: tuple[Message, ...] = ()
    call_id: int | None = None
    parent_call_id: int | None = None


class AgentReplyNode(Message):
    """Part of the interaction graph: the replies an agent call produced (and its error, if it failed)."""

    agent_alias: str
    agent_call: AgentCallNode
    replies: tuple[Message, ...] = ()
    error: str | None = None


_RESERVED_NODE_FIELDS = frozenset(AgentCallNode.model_fields)


class MiniAgent:
    """An agent: an `async def f(ctx, **kwargs)` function with an alias, a description and bound kwargs."""

    def __init__(
        self,
        func: Callable[..., Awaitable[None]],
        alias: str | None = None,
        description: str | None = None,
        uppercase_func_name: bool = True,
        normalize_spaces_in_docstring: bool = True,
        interaction_metadata: dict[str, Any] | None = None,
        call_timeout: float | None = None,
        **partial_kwargs: Any,
    ) -> None:
        """
        `call_timeout`: seconds each call's agent function may run; past it the call fails with
        AgentTimeoutError (in its reply sequence). `partial_kwargs` are bound to the function.
        """
        if inspect.isasyncgenfunction(func):
            raise TypeError(
                f"agent {func.__name__!r} is an async generator (it uses `yield`); an agent replies with "
                "ctx.reply(...) instead: `async def f(ctx, ...): ctx.reply(...)`"
            )
        if not inspect.iscoroutinefunction(func):
            name = getattr(func, "__name__", repr(func))
            raise TypeError(
                f"an agent must be an async function (`async def {name}(ctx, ...)`), got {name!r} "
                f"of type {type(func).__name__}"
            )
        self._func = func
        if alias is None:
            alias = func.__name__.upper() if uppercase_func_name else func.__name__
        if description is None:
            description = inspect.getdoc(func) or ""
            if normalize_spaces_in_docstring:
                description = " ".join(description.split())
        self.alias = alias
        self._description_template = description  # forks with another alias fill `{AGENT_ALIAS}` anew
        self.description = description.replace("{AGENT_ALIAS}", alias)
        self.interaction_metadata = Frozen(**(interaction_metadata or {}))
        if call_timeout is not None and not call_timeout > 0:
            raise ValueError(f"{alias}: call_timeout must be a positive number of seconds, got {call_timeout!r}")
        self.call_timeout = call_timeout
        self._partial_kwargs = partial_kwargs
        self.__name__ = alias
        self.__doc__ = self.description

    def inquire(
        self, messages: MessageType | None = None, start_asap: bool | Sentinel = DEFAULT, **function_kwargs: Any
    ) -> MessageSequencePromise:
        """Call the agent; returns its reply sequence at once (the agent starts in the background)."""
        return AgentCall(self, start_asap, function_kwargs, messages).reply_sequence()

    def initiate_inquiry(self, start_asap: bool | Sentinel = DEFAULT, **function_kwargs: Any) -> AgentCall:
        """Start a call whose input messages are sent afterwards with `send_message()`."""
        return AgentCall(self, start_asap, function_kwargs)

    def fork(
        self,
        alias: str | None = None,
        description: str | None = None,
        call_timeout: float | Sentinel | None = DEFAULT,
        **partial_kwargs: Any,
    ) -> MiniAgent:
        """The same function as a new agent with more bound kwargs (later values override earlier ones)."""
        return MiniAgent(
            self._func,
            alias=alias or self.alias,
            description=description if description is not None else self._description_template,
            interaction_metadata=dict(self.interaction_metadata.frozen_fields_and_values()),
            call_timeout=self.call_timeout if call_timeout is DEFAULT else call_timeout,
            **{**self._partial_kwargs, **partial_kwargs},
        )

    def __repr__(self) -> str:
        return f"MiniAgent({self.alias!r})"


@overload
def miniagent(func: Callable[..., Awaitable[None]], /, **kwargs: Any) -> MiniAgent: ...
@overload
def miniagent(func: None = None, /, **kwargs: Any) -> Callable[[Callable[..., Awaitable[None]]], MiniAgent]: ...
def miniagent(func: Any = None, /, **kwargs: Any) -> Any:
    """Turn `async def f(ctx, **kwargs)` into a MiniAgent: `@miniagent` or `@miniagent(alias=...)`."""
    if func is None:
        return lambda actual_func: MiniAgent(actual_func, **kwargs)
    return MiniAgent(func, **kwargs)


class InteractionContext:
    """What an agent function receives first: its input `messages` and the means to `reply`."""

    __slots__ = ("_replies", "messages", "this_agent")

    def __init__(self, this_agent: MiniAgent, messages: MessageSequencePromise, replies: MessageAppender) -> None:
        self.this_agent = this_agent
        self.messages = messages
        self._replies = replies

    def reply(self, messages: MessageType) -> None:
        """Add any MessageType to the reply sequence (non-blocking; nested agent calls keep running)."""
        if self._replies.is_closed:
            raise AppenderClosedError(
                f"{self.this_agent.alias} cannot reply any more: its reply sequence is finished "
                f"(finish_early() was called or the agent returned); the reply was {messages!r:.80}"
            )
        self._replies.append(messages)

    def finish_early(self) -> None:
        """End the reply sequence now; a later `reply()` raises AppenderClosedError."""
        self._replies.close()


_NO_INPUT = object()


class AgentCall:
    """One call of an agent: send input messages to it, then take its `reply_sequence()`."""

    __slots__ = (
        "_cancel_requested",
        "_children",
        "_context",
        "_done_callbacks",
        "_function_kwargs",
        "_input",
        "_replies",
        "_task",
        "agent",
        "call_id",
        "error",
        "finished_at",
        "parent",
        "started_at",
    )

    def __init__(
        self,
        agent: MiniAgent,
        start_asap: bool | Sentinel,
        function_kwargs: dict[str, Any],
        messages: Any = _NO_INPUT,
    ) -> None:
        context = MiniAgents.get_current()
        if start_asap is DEFAULT:
            start_asap = context.start_everything_asap_by_default
        for name, value in function_kwargs.items():
            try:
                freeze_value(value, name)
            except ValueError as exc:
                raise ValueError(f"{agent.alias}: function kwargs must be freezable: {exc}") from None
        self.agent = agent
        self._context = context
        self._function_kwargs = function_kwargs
        self.error: BaseException | None = None
        self.started_at: float | None = None  # time.perf_counter() when the agent function started
        self.finished_at: float | None = None
        self._done_callbacks: list[Callable[[AgentCall], None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._cancel_requested = False
        context._last_call_id += 1
        self.call_id = context._last_call_id
        self.parent = _calling_agent.get()
        self._children: dict[int, AgentCall] | None = None  # calls this call made that are still running
        if self.parent is not None:
            if self.parent._children is None:
                self.parent._children = {}
            self.parent._children[self.call_id] = self
        if messages is None:  # the common `inquire()` without input: the context's empty, finished sequence
            self._input: MessageAppender | MessageSequencePromise = context._empty_sequence()
        else:
            self._input = MessageAppender(capture_errors=True, start_asap=start_asap).open()
            if messages is _NO_INPUT:
                context._open_inputs.add(self)
            else:
                self._input.append(messages)
                self._input.close()
        self._replies = MessageAppender(capture_errors=True, start_asap=start_asap).open()
        if start_asap:
            self._task = context._track(self._arun())
        else:
            self._replies.on_first_demand = self._start_on_demand
        if context._agent_call_handlers or context.parent is not None:
            context._notify_agent_call(self)

    @property
    def status(self) -> str:
        """'pending' (not started yet), 'running', 'finished' or 'failed'."""
        if self.finished_at is not None:
            return "failed" if self.error is not None else "finished"
        return "pending" if self.started_at is None else "running"

    @property
    def function_kwargs(self) -> dict[str, Any]:
        """The kwargs this call passed to the agent function (bound partial kwargs not included)."""
        return dict(self._function_kwargs)

    @property
    def input_sequence(self) -> MessageSequencePromise:
        """The input messages of this call (replayable)."""
        return self._input_promise

    def add_done_callback(self, callback: Callable[[AgentCall], None]) -> None:
        """Call `callback(self)` when the agent function has returned or failed (at once if it has)."""
        if self.finished_at is not None:
            callback(self)
        elif self._done_callbacks is None:
            self._done_callbacks = [callback]
        else:
            self._done_callbacks.append(callback)

    @property
    def _input_promise(self) -> MessageSequencePromise:
        source = self._input
        return source.sequence_promise if isinstance(source, MessageAppender) else source

    def send_message(self, messages: MessageType) -> AgentCall:
        """Send more input messages (any MessageType); chainable. Raises AppenderClosedError after finish()."""
        if not isinstance(self._input, MessageAppender) or self._input.is_closed:
            raise AppenderClosedError(
                f"cannot send {messages!r:.60} to {self.agent.alias}: the input of this call is already finished "
                "(finish() or reply_sequence() was called, or the agent has returned)"
            )
        self._input.append(messages)
        return self

    def finish(self) -> AgentCall:
        """No more input messages will be sent."""
        if isinstance(self._input, MessageAppender) and not self._input.is_closed:
            self._input.close()
            self._context._open_inputs.discard(self)
        return self

    def reply_sequence(self) -> MessageSequencePromise:
        """Finish the input and return the agent's reply sequence."""
        self.finish()
        return self._replies.sequence_promise

    def _start_on_demand(self) -> None:
        self._task = self._context._track(self._arun())

    def cancel(self) -> bool:
        """
        Cancel the agent function and the calls it made that are still running. Its reply sequence ends
        with PromiseCancelledError after the replies made so far. Returns False if it had already finished.
        """
        if self.finished_at is not None:
            return False
        if self.started_at is None:
            # a task cancelled before its first step never runs, so it could never end its reply
            # sequence: let it start and cancel itself at once instead
            self._cancel_requested = True
            if self._task is None:  # a lazy call nobody has consumed yet
                self._replies.on_first_demand = None
                self._start_on_demand()
            return True
        return self._task.cancel()

    @property
    def replies(self) -> MessageSequencePromise:
        """The reply sequence, without finishing the input (unlike `reply_sequence()`)."""
        return self._replies.sequence_promise

    async def _arun(self) -> None:
        agent = self.agent
        replies = self._replies
        _calling_agent.set(self)  # this task's own context: calls made from here are this call's children
        self.started_at = time.perf_counter()
        try:
            if self._cancel_requested:
                raise asyncio.CancelledError
            kwargs = self._function_kwargs
            if agent._partial_kwargs:  # call-time kwargs override the ones bound to the agent
                kwargs = {**agent._partial_kwargs, **kwargs}
            running = agent._func(InteractionContext(agent, self._input_promise, replies), **kwargs)
            if agent.call_timeout is None:
                await running
            else:
                try:
                    await asyncio.wait_for(running, agent.call_timeout)
                except asyncio.TimeoutError as exc:
                    raise AgentTimeoutError(
                        f"agent {agent.alias} did not finish within its call_timeout of {agent.call_timeout} s"
                    ) from exc
        except Exception as exc:
            self.error = exc
            _attach_agent_trace(exc, self)
            _log_once(self._context, agent, exc)
            if replies.is_open:
                replies._deliver(exc)
        except asyncio.CancelledError:  # consumers get a clear error at the cut, never a hang
            for child in list((self._children or {}).values()):
                child.cancel()  # structured: what a cancelled agent started is cancelled with it
            cancelled = PromiseCancelledError(f"agent {agent.alias} was cancelled")
            self.error = cancelled
            _attach_agent_trace(cancelled, self)
            if replies.is_open:
                replies._deliver(cancelled)
            raise
        except BaseException as exc:  # KeyboardInterrupt / SystemExit raised by the agent itself
            # delivered to the consumers (e.g. a dialog loop's `except KeyboardInterrupt`) rather than
            # escaping the event loop from a background task
            self.error = exc
            _attach_agent_trace(exc, self)
            if replies.is_open:
                replies._deliver(exc)
        finally:
            replies.close()
            self.finish()  # the agent is done: later input would go unread
            self.finished_at = time.perf_counter()
            if self.parent is not None and self.parent._children is not None:
                self.parent._children.pop(self.call_id, None)
            callbacks, self._done_callbacks = self._done_callbacks, None
            for callback in callbacks or ():
                try:
                    callback(self)
                except Exception as exc:  # an observer's bug must not break the agent: make it loud
                    self._context.logger.error("agent call done-callback failed: %r", exc, exc_info=exc)
            if self._context._observes_interactions():
                self._context._track(self._arecord_interaction())

    async def _arecord_interaction(self) -> None:
        """Resolve the AgentCallNode / AgentReplyNode of this call, so they reach the handlers."""
        metadata = dict(self.agent.interaction_metadata.frozen_fields_and_values())
        for name, value in self._function_kwargs.items():
            metadata[f"kwarg_{name}" if name in _RESERVED_NODE_FIELDS else name] = value
        call_node = AgentCallNode(
            agent_alias=self.agent.alias,
            messages=await _aresolved_messages(self._input_promise),
            call_id=self.call_id,
            parent_call_id=self.parent.call_id if self.parent is not None else None,
            **metadata,
        )
        reply_node = AgentReplyNode(
            agent_alias=self.agent.alias,
            agent_call=call_node,
            replies=await _aresolved_messages(self._replies.sequence_promise),
            error=None if self.error is None else f"{type(self.error).__name__}: {self.error}",
        )
        # resolved promises of the nodes are what the resolution and persistence handlers observe
        call_node.as_promise  # noqa: B018
        reply_node.as_promise  # noqa: B018


async def _aresolved_messages(sequence: MessageSequencePromise) -> tuple[Message, ...]:
    """The messages of a sequence that resolved; failed ones are left out (their errors went elsewhere)."""
    messages = []
    async for piece in sequence._raw_pieces():
        if isinstance(piece, MessagePromise):
            try:
                messages.append(await piece)
            except Exception:
                continue
    return tuple(messages)


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


def _attach_agent_trace(exc: BaseException, call: AgentCall) -> None:
    """
    Record, once, the chain of agent calls an error came up through, outermost first, as
    `exc.agent_trace` and as a traceback note (`agent trace: WRITER <- RESEARCHER <- SEARCH`).
    """
    if hasattr(exc, "agent_trace"):
        return
    chain = []
    current: AgentCall | None = call
    while current is not None:
        chain.append(current.agent.alias)
        current = current.parent
    trace = tuple(reversed(chain))
    try:
        exc.agent_trace = trace  # type: ignore[attr-defined]
    except AttributeError:
        return
    if hasattr(exc, "add_note"):
        exc.add_note(f"agent trace: {' <- '.join(trace)}")


def _log_once(context: PromisingContext, agent: MiniAgent, exc: BaseException) -> None:
    if getattr(exc, "_miniagents_logged", False):
        return
    try:
        exc._miniagents_logged = True  # type: ignore[attr-defined]
    except AttributeError:
        pass
    trace = " <- ".join(getattr(exc, "agent_trace", ()) or (agent.alias,))
    context.logger.log(
        context.log_level_for_errors, "agent %s failed (agent trace: %s): %r", agent.alias, trace, exc, exc_info=exc
    )
