"""
A stored run (from `SQLiteMessageStore.load_run`) shown as a message tree: the same static text, HTML and
Mermaid forms as the live MessageTree, built from the persisted AgentCallNode / AgentReplyNode graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from miniagents.ext.stored_graph import RunGraph, StoredCall
from miniagents.messages import Message
from miniagents.notebook.message_record import MessageRecord
from miniagents.notebook.tree_export import MermaidDiagram, TreeParts, tree_html, tree_mermaid, tree_text
from miniagents.promising.promising import PromisingContext


@dataclass
class _StoredCallRecord:
    """What the tree exports read of a call (the live tree's CallRecord has the same attributes)."""

    id: str
    agent: str
    status: str
    error: str | None
    inputs: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


class StoredRunTree:
    """
    The tree of agent calls of a stored run: `StoredRunTree(store.load_run(run_id))` as a cell's value
    shows it (text/plain, sanitised text/html, text/vnd.mermaid). Chunk counts are those of the stored
    messages (a stored message is one piece: its stream was not recorded); token usage is the providers'.
    A message stored once (one hash key) shows in full once, at its home, and as references elsewhere.
    `call_ids`: show only these calls (by AgentCall.call_id; e.g. the ones a bounded MessageTree folded), each
    under its nearest shown ancestor.
    """

    def __init__(self, graph: RunGraph, call_ids: set[int] | None = None) -> None:
        self.graph = graph
        self._call_ids = call_ids
        self._messages: dict[str, MessageRecord] = {}
        self._by_hash: dict[str, str] = {}
        self._calls: dict[str, _StoredCallRecord] = {}
        context = PromisingContext.get_current_or_none()
        scratch = None if context is not None else PromisingContext().activate()  # message promises need one
        try:
            self._roots = [record for root in graph.roots for record in self._add_call(root)]
        finally:
            if scratch is not None:
                scratch.deactivate()

    def _add_call(self, stored: StoredCall) -> list[_StoredCallRecord]:
        """The records of `stored` (one, or when it is left out, those of its shown descendants)."""
        children = [record for child in stored.children for record in self._add_call(child)]
        if self._call_ids is not None and stored.call_id not in self._call_ids:
            return children
        record = _StoredCallRecord(
            id=f"call{stored.call_id if stored.call_id is not None else len(self._calls)}",
            agent=stored.agent_alias,
            status="failed" if stored.error else "finished",
            error=stored.error,
        )
        self._calls[record.id] = record
        record.inputs = [self._add_message(message) for message in stored.input_messages]
        record.replies = [self._add_message(message) for message in stored.replies]
        record.children = [child.id for child in children]
        return [record]

    def _add_message(self, message: Message) -> str:
        known = self._by_hash.get(message.hash_key)
        if known is not None:
            return known
        record = MessageRecord(f"message{len(self._messages)}", message.as_promise)
        record.prime()  # a stored message is complete: take its text and fields at once
        self._messages[record.id] = record
        self._by_hash[message.hash_key] = record.id
        return record.id

    def _parts(self) -> TreeParts:
        return TreeParts(roots=self._roots, calls=self._calls, messages=self._messages)

    def to_text(self) -> str:
        return tree_text(self._parts())

    def to_html(self) -> str:
        return tree_html(self._parts())

    def to_mermaid(self) -> MermaidDiagram:
        return MermaidDiagram(tree_mermaid(self._parts()))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html(), "text/vnd.mermaid": self.to_mermaid()}

    def __repr__(self) -> str:
        failed = sum(record.status == "failed" for record in self._calls.values())
        return f"<StoredRunTree of run {self.graph.run.id}: {len(self._calls)} call(s), {failed} failed>"
