"""
Kernel-wide activation: one synchronous call makes a MiniAgents context current for the rest of the
session and teaches IPython to show agents' replies as live widgets.

Why synchronous: in ipykernel a ContextVar set by a plain cell persists into later cells, one set inside
a cell that uses top-level `await` does not. `activate()` also re-asserts the context before and after
every cell, so even an activation done in an awaited cell sticks.

Interrupts: every cell runs in a RunScope. When a cell ends with KeyboardInterrupt (a plain cell) or
CancelledError (an awaited cell interrupted by the kernel), the agent calls it started are cancelled,
together with the streaming of their replies, so the next cell starts from a quiet kernel.

No event loop patching: `MiniAgents().run(...)` already runs on a private loop in a worker thread when
it is called inside a running loop (a cell), and top-level `await` needs nothing.
"""

from __future__ import annotations

import asyncio
import warnings
from collections import OrderedDict
from typing import Any

from miniagents.messages import MessagePromise, MessageSequencePromise
from miniagents.miniagents import AgentCall, MiniAgents
from miniagents.notebook.run_scope import RunScope, attribute_calls_to_scopes, current_scope

_REMEMBERED_SENDERS = 512  # reply sequences whose agent alias is remembered for their widget's headers


class _NotebookSession:
    """The kernel-wide state: the context, the IPython hooks, the reply sequence -> agent alias memo."""

    def __init__(self, context: MiniAgents, ipython: Any) -> None:
        self.context = context
        self.ipython = ipython
        self.senders: OrderedDict[int, tuple[MessageSequencePromise, str]] = OrderedDict()
        self.cell_scope: RunScope | None = None
        self.cells = 0

    # ------------------------------------------------------------ hooks

    def install(self) -> None:
        self.context.on_agent_call(self._remember_sender)
        attribute_calls_to_scopes(self.context)
        if self.ipython is None:
            return
        # a reply displays itself (display_data with a display id), so its output can be updated with its final
        # form when it is complete (an execute_result cannot be updated)
        formatter = self.ipython.display_formatter.ipython_display_formatter
        formatter.for_type(MessagePromise, _show_reply)
        formatter.for_type(MessageSequencePromise, _show_reply)
        self.ipython.events.register("pre_run_cell", self._pre_run_cell)
        self.ipython.events.register("post_run_cell", self._post_run_cell)

    def uninstall(self) -> None:
        if self.ipython is None:
            return
        formatter = self.ipython.display_formatter.ipython_display_formatter
        for cls in (MessagePromise, MessageSequencePromise):
            formatter.type_printers.pop(cls, None)
        for event, callback in (("pre_run_cell", self._pre_run_cell), ("post_run_cell", self._post_run_cell)):
            try:
                self.ipython.events.unregister(event, callback)
            except ValueError:
                pass

    def _remember_sender(self, call: AgentCall) -> None:
        replies = call.replies
        self.senders[id(replies)] = (replies, call.agent.alias)
        if len(self.senders) > _REMEMBERED_SENDERS:
            self.senders.popitem(last=False)

    def sender_of(self, replies: MessageSequencePromise) -> str | None:
        remembered = self.senders.get(id(replies))
        return remembered[1] if remembered is not None and remembered[0] is replies else None

    def _pre_run_cell(self, *_: Any) -> None:
        self.ensure_current()
        self.cells += 1
        self.cell_scope = RunScope(f"cell {self.cells}")
        current_scope.set(self.cell_scope)

    def _post_run_cell(self, result: Any = None) -> None:
        self.ensure_current()
        error = getattr(result, "error_in_exec", None)
        if self.cell_scope is not None and isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)):
            self.cell_scope.cancel()
        current_scope.set(None)

    def ensure_current(self) -> None:
        """Make the kernel-wide context current again if no context is current here (it was lost)."""
        if MiniAgents.get_current_or_none() is None:
            self.context.make_current()


_session: _NotebookSession | None = None


def _get_ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipykernel brings IPython
        return None
    return get_ipython()


def activate(**miniagents_kwargs: Any) -> MiniAgents:
    """
    Make one MiniAgents context current for the whole notebook session and install the display hooks.

    Call it once, in a plain (synchronous) cell, or use `%load_ext miniagents.notebook`. Afterwards
    agents can be called in any cell, `await` works on every promise at top level, and a reply (a
    MessagePromise or MessageSequencePromise) as the value of a cell renders as a live widget.
    Idempotent: later calls return the same context (their kwargs are ignored, with a warning).
    `miniagents_kwargs` go to `MiniAgents(...)`.
    """
    global _session
    if _session is not None:
        if miniagents_kwargs:
            warnings.warn(
                "miniagents.notebook.activate(): a context is already active; the new kwargs are ignored "
                "(call deactivate() first to start a new one)",
                stacklevel=2,
            )
        _session.ensure_current()
        return _session.context
    context = MiniAgents(**miniagents_kwargs)
    context.activate()
    _session = _NotebookSession(context, _get_ipython())
    _session.install()
    return context


def deactivate() -> None:
    """Undo `activate()`: remove the display hooks and make no context current (running agents go on)."""
    global _session
    session, _session = _session, None
    if session is None:
        return
    session.uninstall()
    session.context.deactivate()


def active_context() -> MiniAgents | None:
    """The kernel-wide context made current by `activate()`, or None."""
    return None if _session is None else _session.context


def sender_of(replies: MessageSequencePromise) -> str | None:
    """The alias of the agent whose reply sequence this is, when known (for message headers)."""
    return None if _session is None else _session.sender_of(replies)


def _show_reply(promise: MessagePromise | MessageSequencePromise) -> None:
    from miniagents.notebook.stream_widget import show_reply

    show_reply(promise, sender=sender_of(promise) if isinstance(promise, MessageSequencePromise) else None)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext miniagents.notebook`: the same as `activate()`."""
    activate()


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext miniagents.notebook`: the same as `deactivate()`."""
    deactivate()
