"""
One agent call: its input and reply sequences, the task that runs the agent function, cancellation and
timeouts, and the interaction-graph nodes (AgentCallNode / AgentReplyNode) it resolves when it completes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from miniagents.message_sequence import MessageAppender
from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.miniagent_typing import MessageType
from miniagents.promising.context import NO_CONTEXT_MESSAGE, PROMISE_RESOLVED
from miniagents.promising.errors import AppenderClosedError, PromiseCancelledError
from miniagents.promising.ext.frozen import freeze_value
from miniagents.promising.ownership import TaskOwner, current_owner_var
from miniagents.promising.promising import PromisingContext, StreamedPromise
from miniagents.promising.sentinels import DEFAULT, Sentinel
from miniagents.run_context import PERSIST_MESSAGE, MiniAgents

if TYPE_CHECKING:
    from miniagents.miniagents import MiniAgent


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


class ErrorMessage(Message):
    """
    An agent's exception as a message (with `errors_as_messages=True`): `error_class`, the error text, and
    the chain of agents it came through (`agent_trace`, outermost first). It takes the error's position in
    the reply sequence, so a chain or an LLM can see and handle it.
    """

    error_class: str
    agent_trace: tuple[str, ...] = ()

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorMessage:
        """The message standing for `exc` (its text is `str(exc)`, or the class name when that is empty)."""
        return cls(
            text=str(exc) or type(exc).__name__,
            error_class=type(exc).__name__,
            agent_trace=tuple(getattr(exc, "agent_trace", ()) or ()),
        )


class InteractionContext:
    """What an agent function receives first: its input `messages` and the means to `reply`."""

    __slots__ = ("_replies", "messages", "this_agent")

    def __init__(self, this_agent: MiniAgent, messages: MessageSequencePromise, replies: MessageAppender) -> None:
        self.this_agent = this_agent
        self.messages = messages
        self._replies = replies

    @property
    def message_promises(self) -> MessageSequencePromise:
        """The input messages (the MiniAgents 0.0.35 name of `messages`)."""
        return self.messages

    def _closed_error(self, messages: Any) -> AppenderClosedError:
        return AppenderClosedError(
            f"{self.this_agent.alias} cannot reply any more: its reply sequence is finished "
            f"(finish_early() was called or the agent returned); the reply was {messages!r:.80}"
        )

    def reply(self, messages: MessageType) -> None:
        """Add any MessageType to the reply sequence, in order (non-blocking; nested agent calls keep running)."""
        try:
            self._replies.append(messages)
        except AppenderClosedError:
            raise self._closed_error(messages) from None

    def reply_out_of_order(self, messages: MessageType) -> None:
        """
        Add any MessageType to the reply sequence; each of its messages is delivered as soon as it is
        available (a fast nested call overtakes a slow one, and replies made in order with `reply()` that
        are still being awaited), its tokens still streaming. The sequence ends when they have all arrived.
        """
        if self._replies.is_closed:
            raise self._closed_error(messages)
        self._replies.append_out_of_order(messages)

    def finish_early(self) -> None:
        """End the reply sequence now; a later `reply()` raises AppenderClosedError."""
        self._replies.close()


_NO_INPUT = object()
_SMALL_INT = 1 << 62


class AgentCall(TaskOwner):
    """
    One call of an agent: send input messages to it, then take its `reply_sequence()`.

    It owns the task running the agent function, the tasks that stream the messages it replied and the
    calls it made: `cancel()` cancels that whole subtree.
    """

    __slots__ = (
        "_done_callbacks",
        "_function_kwargs",
        "_input",
        "_replies",
        "_reply_promise",
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
        caller = current_owner_var.get()  # (the active context, read inline: this runs for every call)
        if caller is None:
            raise RuntimeError(NO_CONTEXT_MESSAGE)
        context = caller.context
        if not isinstance(context, MiniAgents):
            raise TypeError(f"agents run in a MiniAgents context; the active one is a {type(context).__name__}")
        if start_asap is DEFAULT:
            start_asap = context.start_everything_asap_by_default
        if function_kwargs:
            check_function_kwargs(agent, function_kwargs)
        # (TaskOwner.__init__(self, context, caller), inlined: this runs for every call)
        self.context = context
        self.parent_owner = caller
        self.cancel_requested = False
        self.releasable = False  # not before the function has finished
        self._tasks = None
        self._children = None
        caller.adopt(self)  # (it sets `attached`)
        self.agent = agent
        self.parent: AgentCall | None = caller if isinstance(caller, AgentCall) else None  # the calling agent's call
        self._function_kwargs = function_kwargs
        self.error: BaseException | None = None
        self.started_at: float | None = None  # time.perf_counter() when the agent function started
        self.finished_at: float | None = None
        self._done_callbacks: list[Callable[[AgentCall], None]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.call_id = context.next_call_id()
        if messages is None:  # the common `inquire()` without input: the context's empty, finished sequence
            self._input: MessageAppender | MessageSequencePromise = context.empty_sequence()
        else:
            self._input = MessageAppender(capture_errors=True, start_asap=start_asap).open()
            if messages is _NO_INPUT:
                context.track_open_input(self)
            else:
                self._input.append(messages)
                self._input.close()
        # the reply sequence; its writer and appender are made when first needed (most calls wait for their turn
        # a while, and in the meantime are the fewer objects)
        self._reply_promise: MessageSequencePromise = MessageSequencePromise.fed_later(self, context)
        self._replies: MessageAppender | None = None
        if start_asap:  # (self._start_function(), inlined: this runs for every call)
            self._task = task = asyncio.get_running_loop().create_task(self._arun())
            context.count_task(task, self)  # (no done callback: `_arun()` reports its end itself)
        else:  # lazy: the first consumer to wait for a reply starts the function
            replies = self._replies = MessageAppender(True, False, sequence_promise=self._reply_promise).open()
            replies.on_first_demand(self._start_on_demand)
        if context.observers.merged:
            context.notify_agent_call(self)

    @property
    def _mini_agents(self) -> MiniAgents:
        return cast(MiniAgents, self.context)

    @property
    def status(self) -> str:
        """'pending' (not started yet), 'running', 'finished' or 'failed'."""
        if self.finished_at is not None:
            return "failed" if self.error is not None else "finished"
        return "pending" if self.started_at is None else "running"

    @property
    def settled(self) -> bool:
        """Whether the function has finished and nothing this call owns still runs (its reply streams ended)."""
        return self.finished_at is not None and self.is_idle()

    @property
    def function_kwargs(self) -> dict[str, Any]:
        """The kwargs this call passed to the agent function (bound partial kwargs not included)."""
        return dict(self._function_kwargs)

    @property
    def input_sequence(self) -> MessageSequencePromise:
        """The input messages of this call (replayable)."""
        source = self._input
        return source.sequence_promise if isinstance(source, MessageAppender) else source

    @property
    def replies(self) -> MessageSequencePromise:
        """The reply sequence, without finishing the input (unlike `reply_sequence()`)."""
        return self._reply_promise

    def provide_writer(self, promise: StreamedPromise[Any, Any]) -> None:
        """The reply sequence is first needed: make its appender (called by the sequence; see `fed_later()`)."""
        self._open_replies()

    def _open_replies(self) -> MessageAppender:
        replies = self._replies
        if replies is None:
            replies = self._replies = MessageAppender(True, True, sequence_promise=self._reply_promise).open()
        return replies

    def add_done_callback(self, callback: Callable[[AgentCall], None]) -> None:
        """
        Call `callback(self)` when the agent function has returned, failed or been cancelled (at once if it
        has). A callback that raises is logged with its name and changes nothing else.
        """
        if self.finished_at is not None:
            self._run_done_callback(callback)
        elif self._done_callbacks is None:
            self._done_callbacks = [callback]
        else:
            self._done_callbacks.append(callback)

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
            self._mini_agents.forget_open_input(self)
        return self

    def reply_sequence(self) -> MessageSequencePromise:
        """Finish the input and return the agent's reply sequence."""
        self.finish()
        return self._reply_promise

    def _start_on_demand(self) -> None:
        if self._task is None and self.finished_at is None:
            self._start_function()

    def _start_function(self) -> None:
        # the function task is held apart from the owned-task set (the call's own lifetime is `finished_at`)
        self._task = task = asyncio.get_running_loop().create_task(self._arun())
        self.context.count_task(task, self)  # (also inlined above)

    def cancel(self, sparing: asyncio.Task[Any] | None = None) -> bool:
        """
        Cancel this call's subtree: the agent function (it sees CancelledError; its `finally` runs if it had
        started), the streams of the messages it replied and the calls it made. Every consumer of an affected
        stream gets PromiseCancelledError at the cut. Returns False if nothing was running any more.
        """
        if self._task is None and self.finished_at is None:  # a lazy call nobody has consumed yet
            self._open_replies().on_first_demand(None)
            self.cancel_requested = True
            self._end_cancelled()
            self._finish_function()
            return True
        task = self._task
        if task is not None and task is not sparing and self.started_at is None:
            # cancelled before its first step, the function's body never runs: the task's end ends the call
            self.context.track_task(task, self)
        cancelled = task is not None and task is not sparing and task.cancel()
        return super().cancel(sparing) or cancelled

    async def _arun(self) -> None:
        agent = self.agent
        replies = self._replies or self._open_replies()
        current_owner_var.set(self)  # this task's own context: whatever starts from here is owned by this call
        self.started_at = time.perf_counter()
        try:
            kwargs = self._function_kwargs
            bound = agent.partial_kwargs
            if bound:  # call-time kwargs override the ones bound to the agent
                kwargs = {**bound, **kwargs}
            if agent.non_freezable_kwargs:
                kwargs = {**agent.non_freezable_kwargs, **kwargs}
            inputs = self._input
            input_sequence = inputs.sequence_promise if isinstance(inputs, MessageAppender) else inputs
            running = agent.func(InteractionContext(agent, input_sequence, replies), **kwargs)
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
            if attach_agent_trace(exc, self):
                _log_agent_error(self.context, agent, exc)
            if self._errors_as_messages():
                if not replies.is_closed:
                    replies.append(ErrorMessage.from_exception(exc))
            else:
                replies.fail(exc)
        except asyncio.CancelledError:  # consumers get a clear error at the cut, never a hang
            super().cancel(sparing=asyncio.current_task())  # structured: what it started goes with it
            self._end_cancelled()
            raise
        except BaseException as exc:  # KeyboardInterrupt / SystemExit raised by the agent itself
            # delivered to the consumers (e.g. a dialog loop's `except KeyboardInterrupt`) rather than
            # escaping the event loop from a background task
            self.error = exc
            attach_agent_trace(exc, self)
            replies.fail(exc)
        finally:
            self._finish_function()
            task, self._task = self._task, None  # (the task's context holds this call: no cycle left behind)
            if task is not None:
                self.context.forget_task(task)

    def _errors_as_messages(self) -> bool:
        setting = self.agent.errors_as_messages
        return self._mini_agents.errors_as_messages if setting is None else setting

    def _end_cancelled(self) -> None:
        if self.error is None:
            cancelled = PromiseCancelledError(f"agent {self.agent.alias} was cancelled")
            attach_agent_trace(cancelled, self)
            self.error = cancelled
        self._open_replies().fail(self.error)

    def task_ended(self, task: asyncio.Task[Any]) -> None:
        """The function task ended without `_arun()` running (cancelled before its first step): the call's end."""
        if task is not self._task:  # a task this call owns (see TaskOwner.start())
            super().task_ended(task)
            return
        self._task = None  # the task's context holds this call (as the current owner): no cycle left behind
        if self.finished_at is None:
            if task.cancelled():
                self._end_cancelled()
            self._finish_function()

    def _finish_function(self) -> None:
        if self.finished_at is not None:
            return
        (self._replies or self._open_replies()).close()
        if type(self._input) is MessageAppender:
            self.finish()  # the agent is done: later input would go unread
        self.finished_at = time.perf_counter()
        callbacks, self._done_callbacks = self._done_callbacks, None
        for callback in callbacks or ():
            self._run_done_callback(callback)
        context = self.context
        merged = context.observers.merged  # (read directly: this runs for every call)
        if merged and (merged.get(PROMISE_RESOLVED) or merged.get(PERSIST_MESSAGE)):  # the graph is observed
            self._start_recording_interaction()
        self.releasable = True  # the call leaves its caller's subtree once nothing it owns still runs
        if not self._tasks and not self._children:  # (release_if_idle(), inlined)
            owner = self.parent_owner
            if owner is not None:
                owner.release(self)

    def _run_done_callback(self, callback: Callable[[AgentCall], None]) -> None:
        try:
            callback(self)
        except Exception as exc:  # an observer's bug must not break the agent: make it loud
            self.context.observers.log_failure("agent call done", callback, exc)

    def _start_recording_interaction(self) -> None:
        """
        Resolve the AgentCallNode / AgentReplyNode of this call, so they reach the handlers: right now if the
        input and the replies are all there (most calls), else in a context-level task once they are.
        """
        context = self.context
        inputs = _resolved_messages_now(self.input_sequence)
        replies = None if inputs is None else _resolved_messages_now(self._reply_promise)
        if inputs is None or replies is None:
            context.start_asap(self._arecord_interaction(), log_level_for_errors=context.log_level_for_errors)
            return
        try:
            self._record_interaction(inputs, replies)
        except Exception as exc:  # logged as the task would have logged it
            context.logger.log(context.log_level_for_errors, "error in a background task: %r", exc, exc_info=exc)

    async def _arecord_interaction(self) -> None:
        inputs = await _aresolved_messages(self.input_sequence)
        self._record_interaction(inputs, await _aresolved_messages(self._reply_promise))

    def _record_interaction(self, inputs: tuple[Message, ...], replies: tuple[Message, ...]) -> None:
        metadata = dict(self.agent.interaction_metadata.frozen_fields_and_values())
        non_freezable = self.agent.non_freezable_kwargs
        for name, value in self._function_kwargs.items():
            if name not in non_freezable:
                metadata[f"kwarg_{name}" if name in _RESERVED_NODE_FIELDS else name] = value
        call_node = AgentCallNode(
            agent_alias=self.agent.alias,
            messages=inputs,
            call_id=self.call_id,
            parent_call_id=self.parent.call_id if self.parent is not None else None,
            **metadata,
        )
        reply_node = AgentReplyNode(
            agent_alias=self.agent.alias,
            agent_call=call_node,
            replies=replies,
            error=None if self.error is None else f"{type(self.error).__name__}: {self.error}",
        )
        # resolved promises of the nodes are what the resolution and persistence handlers observe
        call_node.as_promise  # noqa: B018
        reply_node.as_promise  # noqa: B018


def _resolved_messages_now(sequence: MessageSequencePromise) -> tuple[Message, ...] | None:
    """What `_aresolved_messages()` gives, if it can be had without waiting (the sequence and its messages are done)."""
    pieces = sequence.pieces_if_done()
    if pieces is None:
        return None
    messages = []
    for piece in pieces:
        if isinstance(piece, MessagePromise):
            if not piece.done():
                return None
            try:
                messages.append(piece.result_nowait())
            except Exception:
                continue
    return tuple(messages)


async def _aresolved_messages(sequence: MessageSequencePromise) -> tuple[Message, ...]:
    """The messages of a sequence that resolved; failed ones are left out (their errors went elsewhere)."""
    messages = []
    async for piece in sequence.raw_pieces():
        if isinstance(piece, MessagePromise):
            try:
                messages.append(await piece)
            except Exception:
                continue
    return tuple(messages)


def check_function_kwargs(agent: MiniAgent, function_kwargs: dict[str, Any]) -> None:
    """
    ValueError naming the kwarg unless every one is freezable or declared in the agent's `non_freezable_kwargs`
    (those are passed through as they are, kept out of hashes and the interaction graph).
    """
    non_freezable = agent.non_freezable_kwargs
    for name, value in function_kwargs.items():
        value_type = type(value)
        if (value_type is int and -_SMALL_INT < value < _SMALL_INT) or (value_type is str and value.isascii()):
            continue  # (frozen as they are: the common kwargs, checked without a call)
        if name in non_freezable:
            continue
        try:
            freeze_value(value, name)
        except ValueError as exc:
            raise ValueError(
                f"{agent.alias}: function kwargs must be freezable (or declared in the agent's "
                f"non_freezable_kwargs): {exc}"
            ) from None


def attach_agent_trace(exc: BaseException, call: AgentCall) -> bool:
    """
    Record, once, the chain of agent calls an error came up through, outermost first, as `exc.agent_trace`
    and as a traceback note (`agent trace: WRITER <- RESEARCHER <- SEARCH`). Returns whether it was
    attached now (False if the error already carried a trace, or refuses attributes).
    """
    if hasattr(exc, "agent_trace"):
        return False
    chain = []
    current: AgentCall | None = call
    while current is not None:
        chain.append(current.agent.alias)
        current = current.parent
    trace = tuple(reversed(chain))
    try:
        exc.agent_trace = trace  # type: ignore[attr-defined]
    except AttributeError:
        return False
    add_note = getattr(exc, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(f"agent trace: {' <- '.join(trace)}")
    return True


def _log_agent_error(context: PromisingContext, agent: MiniAgent, exc: BaseException) -> None:
    trace = " <- ".join(getattr(exc, "agent_trace", ()) or (agent.alias,))
    text = repr(exc)
    if len(text) > 2000:  # the traceback below carries the whole message once
        text = f"{text[:2000]}... ({len(text)} characters)"
    context.logger.log(
        context.log_level_for_errors, "agent %s failed (agent trace: %s): %s", agent.alias, trace, text, exc_info=exc
    )
