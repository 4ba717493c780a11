"""
MessageTree: the live, collapsible tree of the agent calls of a run.

Built from the core's `on_agent_call` observer and each call's done callback: every call with its input
messages, its replies (streamed), the calls it made nested inside, its status (running / finished /
failed with the error, and how many calls failed inside it), hash keys and metadata of the resolved
messages, start and end times, the providers' token usage and the stream chunk counts.

A message shows in full once, at its home (`tree_export.home_placements`): a reply where it was produced,
an input where it first came in; every other place shows a reference to it ("forwarded from AGENT").

The window is bounded: past `max_calls` calls, the oldest finished subtrees are folded into a summary line
of their parent (or of the tree) with their counts, and forgotten (the store, when one is given, still has
them: `aload_folded()`). One widget model holds the whole tree (never a widget per node); updates are
coalesced like the stream widget's. Static forms (text, HTML, Mermaid) are in `tree_export`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from typing import TYPE_CHECKING, Any

from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.miniagents import AgentCall, MiniAgents
from miniagents.notebook import assets
from miniagents.notebook.live_widget import IdList, LiveWidget
from miniagents.notebook.message_record import apieces
from miniagents.notebook.rendering import describe_error
from miniagents.notebook.run_scope import RunScope, current_scope, on_waiting_change, waits_for_user
from miniagents.notebook.tree_export import (
    FoldedCalls,
    MermaidDiagram,
    TreeParts,
    tree_html,
    tree_mermaid,
    tree_text,
)
from miniagents.promising.ext.frozen import Frozen
from miniagents.usage import ModelUsage, TokenUsage, usage_of

if TYPE_CHECKING:
    from miniagents.ext.sqlite_store import SQLiteMessageStore
    from miniagents.notebook.stored_run import StoredRunTree

DEFAULT_MAX_CALLS = 2000
_FOLD_TO = 0.75  # a fold keeps this share of max_calls (so folding is amortised O(1) per call)

# a call's status as the tree shows it: 'waiting' is a call standing for a person, waiting for them to type
_OPEN = ("pending", "running", "waiting")
_ID_LISTS = ("inputs", "replies", "children")
_NO_USAGE = ModelUsage()  # (immutable: shared by every call that has none)
_JSON_AS_IS = frozenset({str, int, bool, type(None)})  # kwarg values whose JSON reads back as the very same value


class CallRecord:
    """One agent call as the tree shows it; `changed` holds the fields the front end has not seen."""

    __slots__ = (
        "call",
        "changed",
        "children",
        "depth",
        "error",
        "failed_inside",
        "folded",
        "following",
        "id",
        "inputs",
        "kwargs",
        "observed",
        "own_usage",
        "parent",
        "replies",
        "replies_done_at",
        "status",
        "subtree_usage",
        "tree",
    )

    def __init__(self, tree: MessageTree, record_id: str, call: AgentCall, parent: CallRecord | None) -> None:
        self.tree = tree
        self.id = record_id
        self.call = call
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1
        self.children: list[str] = []
        self.inputs: list[str] = []
        self.replies: list[str] = []
        self.status = call.status
        self.error: str | None = None
        self.observed = False
        self.following = 0  # sequences (inputs, replies) still being read
        self.failed_inside = 0  # calls below this one that failed (folded ones included)
        self.own_usage = _NO_USAGE  # the providers' usage of the replies this call produced
        self.subtree_usage = _NO_USAGE  # ... and of every call below it
        self.folded: FoldedCalls | None = None  # its calls folded away by the bounded window
        # an agent function may return while its replies still stream (an LLM call does exactly that):
        # the call shows as running until every reply has resolved
        self.replies_done_at: float | None = None
        self.kwargs = _jsonable_kwargs(call)
        self.changed: dict[str, Any] = {
            "agent": call.agent.alias,
            "parent": self.parent_id,
            "status": self.status,
            "kwargs": self.kwargs,
            "started": self.started,
        }

    @property
    def agent(self) -> str:
        return self.call.agent.alias

    @property
    def parent_id(self) -> str | None:
        return None if self.parent is None else self.parent.id

    @property
    def started(self) -> float | None:
        """Seconds from the tree's creation to the start of the agent function (None: not started)."""
        return self.tree.seconds_since_start(self.call.started_at)

    @property
    def ended(self) -> float | None:
        """Seconds from the tree's creation until the function and all its replies were done (None: not yet)."""
        finished = self.call.finished_at
        if finished is None or self.status in _OPEN:
            return None
        return self.tree.seconds_since_start(max(finished, self.replies_done_at or finished))

    @property
    def duration(self) -> float | None:
        """Seconds from the start of the agent function until it and all its replies were done."""
        started, ended = self.started, self.ended
        return None if started is None or ended is None else round(ended - started, 6)

    @property
    def is_done(self) -> bool:
        """Finished or failed, its replies all resolved and its sequences read (nothing about it can change)."""
        return self.status not in _OPEN and self.following == 0 and self.observed

    def refresh_status(self) -> None:
        status = self.call.status
        if status == "finished" and self.replies_done_at is None:
            status = "running"  # replies still streaming
        if status == "running" and waits_for_user(self.call):
            status = "waiting"
        if status != self.status:
            self.status = status
            self.changed["status"] = status
        if self.call.error is not None and self.error is None:
            self.error = describe_error(self.call.error)
            self.changed["error"] = self.error
        if "started" not in self.changed and self.call.started_at is not None:
            self.changed["started"] = self.started
        if self.status not in _OPEN:
            self.changed.update(ended=self.ended, duration=self.duration)

    def append(self, part: str, record_id: str) -> None:
        """Add a message / error record id to `inputs` or `replies`, or a call id to `children`."""
        ids = getattr(self, part)
        ids.append(record_id)
        self.changed[part] = ids  # (copied when the events are taken: a list growing by thousands is copied once)

    def usage_fields(self) -> dict[str, Any]:
        own, subtree = self.own_usage, self.subtree_usage
        return {
            "usage": [own.input_tokens, own.output_tokens],
            "subtree_usage": [subtree.input_tokens, subtree.output_tokens],
        }

    def take_events(self) -> list[list[Any]]:
        changed = self.changed
        if not changed:
            return []
        self.changed = {}
        for part in _ID_LISTS:
            ids = changed.get(part)
            if ids is not None:
                changed[part] = list(ids)
        return [["call", self.id, changed]]

    def snapshot(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "parent": self.parent_id,
            "status": self.status,
            "error": self.error,
            "started": self.started,
            "ended": self.ended,
            "duration": self.duration,
            "kwargs": self.kwargs,
            "inputs": list(self.inputs),
            "replies": list(self.replies),
            "children": list(self.children),
            "failed_inside": self.failed_inside,
            "folded": None if self.folded is None else self.folded.as_dict(),
            **self.usage_fields(),
        }


class _Homes:
    """Where each message shows in full (its home call and part), as one entity: `["homes", "homes", {id: home}]`."""

    __slots__ = ("changed", "homes", "id")

    def __init__(self) -> None:
        self.id = "homes"
        self.homes: dict[str, tuple[CallRecord, str]] = {}
        self.changed: dict[str, Any] = {}

    def set(self, message_id: str, record: CallRecord, part: str) -> None:
        self.homes[message_id] = (record, part)
        self.changed[message_id] = [record.id, part]

    def forget(self, message_id: str) -> None:
        if self.homes.pop(message_id, None) is not None:
            self.changed[message_id] = None

    def as_dict(self) -> dict[str, list[str]]:
        return {message_id: [record.id, part] for message_id, (record, part) in self.homes.items()}

    def take_events(self) -> list[list[Any]]:
        changed, self.changed = self.changed, {}
        return [["homes", "homes", changed]] if changed else []


class _Summary:
    """The tree's own line: calls seen, failed, token usage by model, what was folded at the top level."""

    __slots__ = ("calls", "failed", "folded", "forgotten", "id", "usage")

    def __init__(self) -> None:
        self.id = "summary"
        self.calls = 0
        self.failed = 0
        self.usage = TokenUsage()
        self.folded: FoldedCalls | None = None  # root calls folded away
        self.forgotten: dict[str, list[str]] = {"calls": [], "messages": []}  # what the front end may drop

    def fields(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failed": self.failed,
            "usage": self.usage.as_dict(),
            "folded": None if self.folded is None else self.folded.as_dict(),
        }

    def take_events(self) -> list[list[Any]]:
        events: list[list[Any]] = [["summary", "summary", self.fields()]]
        if self.forgotten["calls"] or self.forgotten["messages"]:
            events.append(["forget", "forget", self.forgotten])
            self.forgotten = {"calls": [], "messages": []}
        return events


class MessageTree(LiveWidget):
    """
    The tree of agent calls made in `context` (default: the current one, e.g. the notebook's) from now
    on, filled live. Display it, run agents, and it grows; `to_text()`, `to_html()` and `to_mermaid()`
    export it. `detach()` stops following new calls.

    `max_calls` bounds the calls kept in full (default 2,000): past it, the oldest finished subtrees are
    folded into a summary line with their counts (calls, failed, tokens), so a tree shown once in a
    long-lived kernel stays small. With `store` (the SQLiteMessageStore persisting this context), folded
    calls can be read back with `await tree.aload_folded()`.

    In a notebook, calls of a chat started in another cell are not shown (they belong to that chat), and a
    call waiting for the user to type shows as 'waiting' and does not keep the tree live.
    """

    _esm = f"{assets.widget_module('waterfall.js')}\n{assets.read_widget_file('tree.js')}"  # with the Timeline tab

    def __init__(
        self,
        context: MiniAgents | None = None,
        *,
        max_calls: int = DEFAULT_MAX_CALLS,
        store: SQLiteMessageStore | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 1:
            raise ValueError(f"MessageTree: max_calls must be a whole number >= 1, got {max_calls!r:.40}")
        super().__init__(**kwargs)
        self.context = context if context is not None else MiniAgents.get_current()
        self.max_calls = max_calls
        self.store = store
        self._epoch = time.perf_counter()
        self._scope: RunScope | None = current_scope.get()  # the cell the tree was made in
        self._calls: dict[str, CallRecord] = {}  # kept calls by record id, in the order they were made
        self._by_call: dict[int, CallRecord] = {}  # the same, by id() of the AgentCall (the record keeps it alive)
        self._open: dict[str, CallRecord] = {}  # kept calls not done yet
        self._calls_made = 0
        self._roots = IdList("roots")
        self._homes = _Homes()
        self._placements: dict[str, list[tuple[CallRecord, str]]] = {}  # message record id -> where kept calls show it
        self._fold_when_done = 0  # how many done calls to wait for before folding again (after a fold fell short)
        self._promise_keys: dict[str, int] = {}  # message record id -> its key in `_records` (to forget it)
        self._counted: dict[str, ModelUsage] = {}  # message record id -> its usage, credited to its home
        self._summary = _Summary()
        self._folded_call_ids: list[int] = []  # AgentCall.call_id of every folded call (to load them from a store)
        self._watched_people: set[int] = set()  # id() of the agents standing for a person we get news from
        self._call_done = self._on_call_done  # (one bound method for every call's done callback)
        self._attached = True
        _observers_of(self.context).add(self)
        self._mark_changed(self._summary)
        self._flush()

    def seconds_since_start(self, perf_counter_time: float | None) -> float | None:
        """A `time.perf_counter()` value as seconds since this tree was made (None stays None)."""
        return None if perf_counter_time is None else round(perf_counter_time - self._epoch, 6)

    # ------------------------------------------------------------ following calls

    def detach(self) -> None:
        """Stop adding new calls to this tree (the calls already in it keep updating)."""
        self._attached = False
        context = getattr(self, "context", None)  # (None when __init__ refused its arguments)
        if context is not None:
            _observers_of(context).discard(self)

    def close(self) -> None:
        self.detach()
        super().close()

    def observe_call(self, call: AgentCall) -> None:
        scope = current_scope.get()  # the caller's: tasks inherit it, so calls deep in a chat's loop see the chat's
        if scope is not None and scope.background and self._scope not in (scope, scope.origin):
            return  # a chat (or other background work) started in another cell: not this tree's
        parent = self._by_call.get(id(call.parent)) if call.parent is not None else None
        self._calls_made += 1
        record = CallRecord(self, f"c{self._calls_made}", call, parent)
        self._calls[record.id] = record
        self._by_call[id(call)] = record
        self._open[record.id] = record
        self._summary.calls += 1
        self._mark_changed(self._summary)
        if parent is not None:
            parent.append("children", record.id)
            self._mark_changed(parent)
        else:
            self._roots.ids.append(record.id)
            self._mark_changed(self._roots)
        self._mark_changed(record)
        self._watch_person(call)
        call.add_done_callback(self._call_done)
        try:
            asyncio.get_running_loop().call_soon(self._observe_if_started, record)
        except RuntimeError:  # pragma: no cover - agent calls need a running loop
            pass
        self._maybe_fold()

    def _maybe_fold(self) -> None:
        excess = len(self._calls) - int(self.max_calls * _FOLD_TO)
        if len(self._calls) > self.max_calls and len(self._calls) - len(self._open) >= max(
            excess, self._fold_when_done
        ):
            self._fold()
            done = len(self._calls) - len(self._open)
            # fell short (running calls hold their subtrees): wait for a quarter of the window to finish first
            self._fold_when_done = done + self.max_calls // 4 if len(self._calls) > self.max_calls else 0

    def _watch_person(self, call: AgentCall) -> None:
        agent = call.agent
        if id(agent) in self._watched_people:
            return
        me = weakref.ref(self)

        def recheck() -> None:
            tree = me()
            if tree is not None:
                tree._recheck_waiting()

        if on_waiting_change(agent, recheck):
            self._watched_people.add(id(agent))

    def _recheck_waiting(self) -> None:
        for record in list(self._open.values()):
            if record.call.status == "running":
                record.refresh_status()
                if record.changed:
                    self._mark_changed(record)
        self._request_flush()

    def _observe_if_started(self, record: CallRecord) -> None:
        # an eager call has started by now (its task ran first); a lazy one is observed when it is done,
        # because consuming its replies earlier would start it
        record.refresh_status()
        self._mark_changed(record)
        if record.status != "pending":
            self._observe(record)

    def _on_call_done(self, call: AgentCall) -> None:
        record = self._by_call.get(id(call))
        if record is not None and record.call is call:  # (a folded call is done already)
            self._refresh(record)
            self._observe(record)

    def _refresh(self, record: CallRecord) -> None:
        was = record.status
        record.refresh_status()
        if record.status == "failed" and was != "failed":
            self._summary.failed += 1
            self._mark_changed(self._summary)
            ancestor = record.parent
            while ancestor is not None:
                ancestor.failed_inside += 1
                ancestor.changed["failed_inside"] = ancestor.failed_inside
                self._mark_changed(ancestor)
                ancestor = ancestor.parent
        self._mark_changed(record)
        if record.is_done and self._open.pop(record.id, None) is not None:
            self._maybe_fold()  # (after marking it: a fold drops what it folds from the pending events)

    def _observe(self, record: CallRecord) -> None:
        if record.observed:
            return
        record.observed = True
        record.following = 2
        call = record.call
        self._follow(record, "inputs", call.input_sequence)
        self._follow(record, "replies", call.replies)

    def _follow(self, record: CallRecord, part: str, sequence: MessageSequencePromise) -> None:
        """Take the pieces of a call's `part` (inputs, replies) as they come: at once if complete, else in a task."""
        pieces = sequence.pieces_if_done()
        # inputs complete already are taken at once; replies always through a task, whose turn dates the end of
        # the call's replies (`replies_done_at`), as the timeline shows it
        if part == "inputs" and pieces is not None:
            promises: list[tuple[MessagePromise, str]] = []
            for piece in pieces:
                self._take_piece(record, part, piece, promises)
            self._sequence_ended(record, part, promises)
            return
        self._start(self._afollow(record, part, sequence))

    async def _afollow(self, record: CallRecord, part: str, sequence: MessageSequencePromise) -> None:
        """Take the pieces of a sequence still being produced, as they come."""
        promises: list[tuple[MessagePromise, str]] = []
        ended = False
        try:
            async for piece in apieces(sequence):
                self._take_piece(record, part, piece, promises)
            ended = True
        finally:
            if ended:
                self._sequence_ended(record, part, promises)
            else:
                self._followed(record, part)

    def _take_piece(
        self, record: CallRecord, part: str, piece: Any, promises: list[tuple[MessagePromise, str]]
    ) -> None:
        if isinstance(piece, MessagePromise):
            message_record, _ = self._record_for(piece)
            message_id = message_record.id
            self._promise_keys[message_id] = id(piece)
            promises.append((piece, message_id))
            record.append(part, message_id)
            self._place(message_id, record, part)
        elif part == "inputs" or piece is not record.call.error:  # the call's own error shows on it
            error_record = self._error_record(piece)
            record.append(part, error_record.id)
            self._place(error_record.id, record, part)
        self._mark_changed(record)

    def _sequence_ended(self, record: CallRecord, part: str, promises: list[tuple[MessagePromise, str]]) -> None:
        """Every piece of a followed sequence was taken: count the replies' usage once they resolve, then done."""
        if part == "replies" and promises:
            if not all(promise.done() for promise, _ in promises):
                self._start(self._acount_usage(record, promises))
                return
            for promise, message_id in promises:
                try:
                    message = promise.result_nowait()
                except Exception:  # a failed reply shows as an error record already
                    continue
                except BaseException:  # (a cancelled reply: as when awaiting it, nothing after it is counted)
                    break
                self._count_usage(message_id, message)
        self._followed(record, part)

    async def _acount_usage(self, record: CallRecord, promises: list[tuple[MessagePromise, str]]) -> None:
        try:
            for message_promise, message_id in promises:
                with contextlib.suppress(Exception):  # a failed reply shows as an error record already
                    self._count_usage(message_id, await message_promise)
        finally:
            self._followed(record, "replies")

    def _followed(self, record: CallRecord, part: str) -> None:
        if part == "replies":
            record.replies_done_at = time.perf_counter()
        record.following -= 1
        # (the end of the inputs changes nothing shown while the replies are still followed)
        if (part == "replies" or record.following == 0) and record.id in self._calls:
            self._refresh(record)

    # ------------------------------------------------------------ homes and usage

    def _place(self, message_id: str, record: CallRecord, part: str) -> None:
        """`message_id` is shown in `record`'s `part`: make that its home if it is a better one."""
        self._placements.setdefault(message_id, []).append((record, part))
        home = self._homes.homes.get(message_id)
        if home is None:
            self._homes.set(message_id, record, part)
        elif part == "replies" and (home[1] == "inputs" or record.depth > home[0].depth):
            # a reply lives where it was produced: the deepest call replying it (forwarders are above it)
            self._move_home(message_id, home[0], record, part)
        elif part == "inputs" and home[1] == "inputs" and record.depth < home[0].depth:
            self._homes.set(message_id, record, part)  # an input lives where it came in first: the outermost call
        else:
            return
        self._mark_changed(self._homes)

    def _move_home(self, message_id: str, old: CallRecord, new: CallRecord, part: str) -> None:
        usage = self._counted.get(message_id)
        if usage is not None and self._homes.homes[message_id][1] == "replies":
            self._credit(old, usage, -1)
        self._homes.set(message_id, new, part)
        if usage is not None:
            self._credit(new, usage, 1)

    def _count_usage(self, message_id: str, message: Message) -> None:
        if message_id in self._counted or not isinstance(message, Message):
            return
        usage = usage_of(message.get("usage"))
        if usage is None:
            return
        self._counted[message_id] = usage
        self._summary.usage.add(str(message.get("model") or ""), message.get("usage"))
        self._mark_changed(self._summary)
        home = self._homes.homes.get(message_id)
        if home is not None and home[1] == "replies":
            self._credit(home[0], usage, 1)

    def _credit(self, record: CallRecord, usage: ModelUsage, sign: int) -> None:
        signed = ModelUsage(sign * usage.input_tokens, sign * usage.output_tokens, sign * usage.replies)
        record.own_usage = record.own_usage + signed
        current: CallRecord | None = record
        while current is not None:
            current.subtree_usage = current.subtree_usage + signed
            current.changed.update(current.usage_fields())
            self._mark_changed(current)
            current = current.parent

    # ------------------------------------------------------------ the bounded window

    def _fold(self) -> None:
        """Fold the oldest finished subtrees until `_FOLD_TO` of `max_calls` calls are kept."""
        keep = int(self.max_calls * _FOLD_TO)
        shrunk: dict[str, CallRecord] = {}  # kept parents some of whose children were folded, by id
        folded_roots: set[str] = set()
        for record in list(self._calls.values()):
            if len(self._calls) <= keep:
                break
            if record.id not in self._calls or not record.is_done:
                continue
            subtree = self._subtree(record)
            if subtree is None:
                continue  # something below it still runs
            self._fold_subtree(record, subtree, shrunk, folded_roots)
        for parent in shrunk.values():  # each shrunk list is rebuilt once, however many calls left it
            if parent.id in self._calls:
                parent.children = [child for child in parent.children if child in self._calls]
                parent.changed["children"] = parent.children
                self._mark_changed(parent)
        if folded_roots:
            self._roots.ids = [root for root in self._roots.ids if root not in folded_roots]
            self._mark_changed(self._roots)
        self._mark_changed(self._summary)

    def _subtree(self, record: CallRecord) -> list[CallRecord] | None:
        """The record and every kept call below it, if they are all done (else None)."""
        found, pending = [], [record]
        while pending:
            current = pending.pop()
            if not current.is_done:
                return None
            found.append(current)
            pending.extend(self._calls[child] for child in current.children if child in self._calls)
        return found

    def _fold_subtree(
        self, record: CallRecord, subtree: list[CallRecord], shrunk: dict[str, CallRecord], folded_roots: set[str]
    ) -> None:
        folded = FoldedCalls(
            calls=len(subtree) + sum(r.folded.calls for r in subtree if r.folded is not None),
            failed=(record.status == "failed") + record.failed_inside,
            input_tokens=record.subtree_usage.input_tokens,
            output_tokens=record.subtree_usage.output_tokens,
        )
        parent = record.parent
        if parent is not None and parent.id in self._calls:
            parent.folded = folded if parent.folded is None else parent.folded + folded
            parent.changed["folded"] = parent.folded.as_dict()
            shrunk[parent.id] = parent  # (its `children` are rebuilt once the fold is over)
        else:
            self._summary.folded = folded if self._summary.folded is None else self._summary.folded + folded
            folded_roots.add(record.id)
        forgotten = self._summary.forgotten
        dirty = self._dirty
        for each in subtree:
            del self._calls[each.id]
            self._by_call.pop(id(each.call), None)
            self._open.pop(each.id, None)
            self._folded_call_ids.append(each.call.call_id)
            dirty.pop(each.id, None)
            forgotten["calls"].append(each.id)
            for part in ("inputs", "replies"):
                for message_id in getattr(each, part):
                    if self._unplace(message_id, each, part):
                        forgotten["messages"].append(message_id)

    def _unplace(self, message_id: str, record: CallRecord, part: str) -> bool:
        """One place of `message_id` was folded away; forget the message if it was the last. True if forgotten."""
        places = self._placements.get(message_id)
        if places is not None:
            with contextlib.suppress(ValueError):
                places.remove((record, part))
            if places:
                home = self._homes.homes.get(message_id)
                if home is not None and home[0] is record:  # it still shows elsewhere: that place becomes its home
                    self._homes.set(message_id, *places[0])
                    self._mark_changed(self._homes)
                return False
        self._placements.pop(message_id, None)
        self._homes.forget(message_id)
        self._counted.pop(message_id, None)
        self._forget_message(message_id)
        self._mark_changed(self._homes)
        return True

    def _forget_message(self, message_id: str) -> None:
        self._errors.pop(message_id, None)
        self._growing.pop(message_id, None)
        self._dirty.pop(message_id, None)
        key = self._promise_keys.pop(message_id, None)
        if key is not None:
            self._records.pop(key, None)

    async def aload_folded(self) -> StoredRunTree:
        """
        The folded calls, read back from `store` (flushed first) as a StoredRunTree. Raises ValueError when the
        tree has no store, LookupError when the store has no run holding them.
        """
        from miniagents.notebook.stored_run import StoredRunTree

        if self.store is None:
            raise ValueError("this MessageTree has no store: make it with MessageTree(store=...) to load folded calls")
        await self.store.aflush()
        wanted = set(self._folded_call_ids)
        for run in reversed(self.store.runs()):
            graph = self.store.load_run(run.id)
            if wanted <= set(graph.calls):
                return StoredRunTree(graph, call_ids=wanted)
        raise LookupError(f"no run in {self.store.path} holds the {len(wanted)} folded call(s) of this tree")

    # ------------------------------------------------------------ reading

    def _is_live(self) -> bool:
        if any(record.status != "waiting" for record in self._open.values()):
            return True
        return super()._is_live()

    def _snapshot(self) -> dict[str, Any]:
        snapshot = super()._snapshot()
        snapshot["calls"] = {record.id: record.snapshot() for record in self._calls.values()}
        snapshot["roots"] = list(self._roots.ids)
        snapshot["homes"] = self._homes.as_dict()
        snapshot["summary"] = self._summary.fields()
        return snapshot

    @property
    def calls(self) -> list[CallRecord]:
        """Every call kept in the tree (folded ones are not), in the order they were made."""
        return list(self._calls.values())

    @property
    def token_usage(self) -> TokenUsage:
        """The providers' token usage of the replies shown in this tree (folded ones included), by model."""
        return self._summary.usage

    @property
    def folded(self) -> FoldedCalls | None:
        """What was folded at the top level (whole root calls), or None."""
        return self._summary.folded

    def _tree_parts(self) -> TreeParts:
        messages: dict[str, Any] = {record.id: record for record in self._records.values()}
        messages.update(self._errors)
        return TreeParts(
            roots=[self._calls[root] for root in self._roots.ids if root in self._calls],
            calls=self._calls,
            messages=messages,
            folded=self._summary.folded,
            usage=self._summary.usage,
        )

    def to_text(self) -> str:
        return tree_text(self._tree_parts())

    def to_html(self) -> str:
        return tree_html(self._tree_parts())

    def to_mermaid(self) -> MermaidDiagram:
        """The call graph as a Mermaid flowchart (a str that Jupyter displays as the diagram)."""
        return MermaidDiagram(tree_mermaid(self._tree_parts()))

    def _static_forms(self) -> dict[str, str]:
        return {**super()._static_forms(), "text/vnd.mermaid": str(self.to_mermaid())}

    def __repr__(self) -> str:
        state = "running" if self._is_live() else "idle"
        folded = f", {self._summary.folded.calls} folded" if self._summary.folded else ""
        return f"<MessageTree: {self._summary.calls} call(s), {self._summary.failed} failed{folded}, {state}>"


def show_tree(context: MiniAgents | None = None, **kwargs: Any) -> MessageTree:
    """
    Display a new MessageTree of `context` (default: the current one) in this cell and return it. As the
    last line of a cell it still shows once. `kwargs` go to MessageTree (`max_calls`, `store`).
    """
    tree = MessageTree(context, **kwargs)
    tree.show()
    return tree


def _jsonable_kwargs(call: AgentCall) -> dict[str, Any]:
    kwargs = call.function_kwargs
    if all(type(value) in _JSON_AS_IS and (type(value) is not str or value.isascii()) for value in kwargs.values()):
        # what the JSON of their Frozen reads back as, without making it: the same values, keys sorted
        return {key: kwargs[key] for key in sorted(kwargs) if key != "class_"}
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
