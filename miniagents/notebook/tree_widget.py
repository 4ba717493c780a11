"""
MessageTree: the live, collapsible tree of the agent calls of a run.

Built from the core's `on_agent_call` observer and each call's done callback: every call with its input
messages, its replies (streamed), the calls it made nested inside, its status (running / finished /
failed with the error), hash keys and metadata of the resolved messages, timing and token counts.
One widget model holds the whole tree (never a widget per node); updates are coalesced like the stream
widget's. Static forms (text, HTML, Mermaid) are in `tree_export`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from typing import Any

from miniagents.messages import MessagePromise, MessageSequencePromise
from miniagents.miniagents import AgentCall, MiniAgents
from miniagents.notebook import assets
from miniagents.notebook.live_widget import IdList, LiveWidget
from miniagents.notebook.message_record import apieces
from miniagents.notebook.rendering import describe_error
from miniagents.notebook.tree_export import MermaidDiagram, tree_html, tree_mermaid, tree_text
from miniagents.promising.ext.frozen import Frozen


class CallRecord:
    """One agent call as the tree shows it; `changed` holds the fields the front end has not seen."""

    __slots__ = (
        "call",
        "changed",
        "children",
        "error",
        "id",
        "inputs",
        "observed",
        "parent_id",
        "replies",
        "replies_done_at",
        "status",
    )

    def __init__(self, record_id: str, call: AgentCall, parent_id: str | None) -> None:
        self.id = record_id
        self.call = call
        self.parent_id = parent_id
        self.children: list[str] = []
        self.inputs: list[str] = []
        self.replies: list[str] = []
        self.status = call.status
        self.error: str | None = None
        self.observed = False
        # an agent function may return while its replies still stream (an LLM call does exactly that):
        # the call shows as running until every reply has resolved
        self.replies_done_at: float | None = None
        self.changed: dict[str, Any] = {
            "agent": call.agent.alias,
            "parent": parent_id,
            "status": self.status,
            "kwargs": _jsonable_kwargs(call),
        }

    @property
    def agent(self) -> str:
        return self.call.agent.alias

    @property
    def duration(self) -> float | None:
        """Seconds from the start of the agent function until it and all its replies were done."""
        started, finished = self.call.started_at, self.call.finished_at
        if started is None or finished is None:
            return None
        return round(max(finished, self.replies_done_at or finished) - started, 3)

    def refresh_status(self) -> None:
        status = self.call.status
        if status == "finished" and self.replies_done_at is None:
            status = "running"  # replies still streaming
        if status != self.status:
            self.status = status
            self.changed["status"] = status
        if self.call.error is not None and self.error is None:
            self.error = describe_error(self.call.error)
            self.changed["error"] = self.error
        if self.call.finished_at is not None and self.status != "running":
            self.changed["duration"] = self.duration

    def append(self, part: str, record_id: str) -> None:
        """Add a message / error record id to `inputs` or `replies`, or a call id to `children`."""
        ids = getattr(self, part)
        ids.append(record_id)
        self.changed[part] = list(ids)

    def take_events(self) -> list[list[Any]]:
        if not self.changed:
            return []
        changed, self.changed = self.changed, {}
        return [["call", self.id, changed]]

    def snapshot(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "parent": self.parent_id,
            "status": self.status,
            "error": self.error,
            "duration": self.duration,
            "kwargs": _jsonable_kwargs(self.call),
            "inputs": list(self.inputs),
            "replies": list(self.replies),
            "children": list(self.children),
        }


class MessageTree(LiveWidget):
    """
    The tree of agent calls made in `context` (default: the current one, e.g. the notebook's) from now
    on, filled live. Display it, run agents, and it grows; `to_text()`, `to_html()` and `to_mermaid()`
    export it. `detach()` stops following new calls.
    """

    _esm = assets.widget_module("tree.js")

    def __init__(self, context: MiniAgents | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context if context is not None else MiniAgents.get_current()
        self._calls: dict[int, CallRecord] = {}  # by id() of the AgentCall (the record keeps it alive)
        self._roots = IdList("roots")
        self._following = 0  # sequences (inputs, replies) still being read
        self._attached = True
        _observers_of(self.context).add(self)
        self._flush()

    # ------------------------------------------------------------ following calls

    def detach(self) -> None:
        """Stop adding new calls to this tree (the calls already in it keep updating)."""
        self._attached = False
        _observers_of(self.context).discard(self)

    def close(self) -> None:
        self.detach()
        super().close()

    def observe_call(self, call: AgentCall) -> None:
        parent = self._calls.get(id(call.parent)) if call.parent is not None else None
        record = CallRecord(f"c{len(self._calls) + 1}", call, parent.id if parent is not None else None)
        self._calls[id(call)] = record
        if parent is not None:
            parent.append("children", record.id)
            self._mark_changed(parent)
        else:
            self._roots.ids.append(record.id)
            self._mark_changed(self._roots)
        self._mark_changed(record)
        call.add_done_callback(lambda _: self._on_call_done(record))
        try:
            asyncio.get_running_loop().call_soon(self._observe_if_started, record)
        except RuntimeError:  # pragma: no cover - agent calls need a running loop
            pass

    def _observe_if_started(self, record: CallRecord) -> None:
        # an eager call has started by now (its task ran first); a lazy one is observed when it is done,
        # because consuming its replies earlier would start it
        record.refresh_status()
        self._mark_changed(record)
        if record.status != "pending":
            self._observe(record)

    def _on_call_done(self, record: CallRecord) -> None:
        record.refresh_status()
        self._mark_changed(record)
        self._observe(record)

    def _observe(self, record: CallRecord) -> None:
        if record.observed:
            return
        record.observed = True
        self._following += 2
        self._start(self._afollow(record, "inputs", record.call.input_sequence))
        self._start(self._afollow(record, "replies", record.call.replies))

    async def _afollow(self, record: CallRecord, part: str, sequence: MessageSequencePromise) -> None:
        message_promises = []
        try:
            async for piece in apieces(sequence):
                if isinstance(piece, MessagePromise):
                    message_promises.append(piece)
                    message_record, _ = self._record_for(piece)
                    record.append(part, message_record.id)
                elif part == "inputs" or piece is not record.call.error:  # the call's own error shows on it
                    record.append(part, self._error_record(piece).id)
                self._mark_changed(record)
            if part == "replies":
                for message_promise in message_promises:
                    with contextlib.suppress(Exception):  # a failed reply shows as an error record already
                        await message_promise
        finally:
            if part == "replies":
                record.replies_done_at = time.perf_counter()
                record.refresh_status()
            self._following -= 1
            self._mark_changed(record)

    # ------------------------------------------------------------ reading

    def _is_live(self) -> bool:
        return (
            self._following > 0
            or super()._is_live()
            or any(record.status in ("pending", "running") for record in self._calls.values())
        )

    def _snapshot(self) -> dict[str, Any]:
        snapshot = super()._snapshot()
        snapshot["calls"] = {record.id: record.snapshot() for record in self._calls.values()}
        snapshot["roots"] = list(self._roots.ids)
        return snapshot

    @property
    def calls(self) -> list[CallRecord]:
        """Every call in the tree, in the order they were made."""
        return list(self._calls.values())

    def _tree_parts(self) -> tuple[list[CallRecord], dict[str, CallRecord], dict[str, Any]]:
        by_id = {record.id: record for record in self._calls.values()}
        messages: dict[str, Any] = {record.id: record for record in self._records.values()}
        messages.update(self._errors)
        return [by_id[root] for root in self._roots.ids], by_id, messages

    def to_text(self) -> str:
        return tree_text(*self._tree_parts())

    def to_html(self) -> str:
        return tree_html(*self._tree_parts())

    def to_mermaid(self) -> MermaidDiagram:
        """The call graph as a Mermaid flowchart (a str that Jupyter displays as the diagram)."""
        return MermaidDiagram(tree_mermaid(*self._tree_parts()))

    def _static_forms(self) -> dict[str, str]:
        return {**super()._static_forms(), "text/vnd.mermaid": str(self.to_mermaid())}

    def __repr__(self) -> str:
        failed = sum(record.status == "failed" for record in self._calls.values())
        state = "running" if self._is_live() else "idle"
        return f"<MessageTree: {len(self._calls)} call(s), {failed} failed, {state}>"


def show_tree(context: MiniAgents | None = None) -> MessageTree:
    """
    Display a new MessageTree of `context` (default: the current one) in this cell and return it. As the
    last line of a cell it still shows once.
    """
    tree = MessageTree(context)
    tree.show()
    return tree


def _jsonable_kwargs(call: AgentCall) -> dict[str, Any]:
    try:
        return {k: v for k, v in json.loads(Frozen(**call.function_kwargs).serialized).items() if k != "class_"}
    except Exception:  # kwargs are validated as freezable by the core; this is only a safety net
        return {k: repr(v) for k, v in call.function_kwargs.items()}


class _CallObservers:
    """The trees following one context: one core handler per context, dispatching to live trees."""

    def __init__(self, context: MiniAgents) -> None:
        self.trees: weakref.WeakSet[MessageTree] = weakref.WeakSet()
        context.on_agent_call(self.dispatch)

    def add(self, tree: MessageTree) -> None:
        self.trees.add(tree)

    def discard(self, tree: MessageTree) -> None:
        self.trees.discard(tree)

    def dispatch(self, call: AgentCall) -> None:
        for tree in list(self.trees):
            tree.observe_call(call)


_observers: weakref.WeakKeyDictionary[MiniAgents, _CallObservers] = weakref.WeakKeyDictionary()


def _observers_of(context: MiniAgents) -> _CallObservers:
    observers = _observers.get(context)
    if observers is None:
        observers = _observers[context] = _CallObservers(context)
    return observers
