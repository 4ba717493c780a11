"""
Rebuilding stored messages, and the call graph of a stored run.

A stored message is its externalised JSON (`Message.serialized`): nested messages appear as
`<field>__hash_key` / `<field>__hash_keys` (or `{"__hash_key": ...}` inside mixed tuples). `MessageLoader`
turns that back into Message objects, fetching the nested ones by hash key; `RunGraph` arranges a
run's AgentCallNode / AgentReplyNode messages into the tree of who called whom.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from miniagents.messages import Message
from miniagents.miniagents import AgentCallNode, AgentReplyNode
from miniagents.promising.ext.frozen import Frozen, from_json_form

__all__ = ["MessageLoader", "RunGraph", "StoredCall", "StoredRun"]

# fetches (class_, serialized) of a hash key, or None when the store does not have it
RowFetcher = Callable[[str], "tuple[str, str] | None"]


class MessageLoader:
    """
    Rebuilds messages from their stored JSON, nested messages included (each loaded once, then shared).

    Classes are looked up by `class_` among the Message (and Frozen) subclasses defined so far; a class
    that is not defined (any more) gives a plain Message with `original_class` set to the stored name.
    Leaf values (datetime, UUID, ...) come back from their JSON forms. Nested messages are loaded children
    first from an explicit stack, so reference chains of any depth load.
    """

    def __init__(self, fetch_row: RowFetcher, source: str = "the store") -> None:
        self._fetch_row = fetch_row
        self._source = source
        self._loaded: dict[str, Message] = {}
        self._classes: dict[tuple[type[Frozen], str], list[type[Frozen]]] = {}

    def load(self, hash_key: str) -> Message:
        """
        The message stored under `hash_key`. Raises KeyError naming the key (and the message referring to
        it) if it is not stored, ValueError if stored messages refer to each other in a cycle.
        """
        message = self._loaded.get(hash_key)
        if message is not None:
            return message
        rows: dict[str, tuple[str, dict[str, Any]]] = {}  # fetched, waiting for the messages they reference
        pending = [(hash_key, "")]  # (key, the key of the message referring to it)
        while pending:
            key, referrer = pending[-1]
            if key in self._loaded:
                pending.pop()
                continue
            if key not in rows:
                rows[key] = self._fetch(key, referrer)
                unloaded = [child for child in _referenced_keys(rows[key][1]) if child not in self._loaded]
                for child in unloaded:
                    if child in rows:  # fetched, not built yet: it is waiting for this one
                        raise ValueError(f"stored messages {key!r} and {child!r} refer to each other in {self._source}")
                pending.extend((child, key) for child in unloaded)
                if unloaded:
                    continue
            pending.pop()
            class_name, stored = rows.pop(key)
            fields = self._rebuild_fields(stored)  # every message it references is loaded by now
            fields.pop("class_", None)
            self._loaded[key] = self._build(class_name, fields, Message)
        return self._loaded[hash_key]

    def _fetch(self, hash_key: str, referrer: str) -> tuple[str, dict[str, Any]]:
        row = self._fetch_row(hash_key)
        if row is None:
            referred = f" (referred to by {referrer!r})" if referrer else ""
            raise KeyError(f"no message with hash_key {hash_key!r} in {self._source}{referred}")
        class_name, serialized = row
        return class_name, json.loads(serialized)

    def _rebuild_fields(self, stored: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name, value in stored.items():
            if name.endswith("__hash_keys") and isinstance(value, list):
                fields[name[: -len("__hash_keys")]] = tuple(self._loaded[key] for key in value)
            elif name.endswith("__hash_key") and name != "__hash_key" and isinstance(value, str):
                fields[name[: -len("__hash_key")]] = self._loaded[value]
            else:
                fields[name] = self._rebuild_value(value)
        return fields

    def _rebuild_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return tuple(self._rebuild_value(item) for item in value)
        if not isinstance(value, dict):
            return value
        if len(value) == 1 and isinstance(value.get("__hash_key"), str):  # a message inside a mixed tuple
            return self._loaded[value["__hash_key"]]
        if "class_" not in value:  # a leaf in its JSON form: {"__datetime": "..."}, ...
            return from_json_form(value)
        fields = self._rebuild_fields(value)
        class_name = fields.pop("class_")
        return self._build(class_name, fields, Frozen)

    def _build(self, class_name: str, fields: dict[str, Any], base: type[Frozen]) -> Any:
        """An instance of the `base` subclass named `class_name` (newest definition first), or a fallback."""
        classes = self._classes.get((base, class_name))
        if classes is None:
            classes = self._classes[base, class_name] = _subclasses_named(base, class_name)
        return _instantiate(classes, class_name, fields, base)


def _referenced_keys(stored: dict[str, Any]) -> list[str]:
    """The hash keys of the messages a stored message refers to, at any depth of its JSON."""
    keys: list[str] = []
    pending: list[Any] = [stored]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, dict):
            if len(value) == 1 and isinstance(value.get("__hash_key"), str):
                keys.append(value["__hash_key"])
                continue
            for name, item in value.items():
                if name.endswith("__hash_keys") and isinstance(item, list):
                    keys.extend(item)
                elif name.endswith("__hash_key") and name != "__hash_key" and isinstance(item, str):
                    keys.append(item)
                else:
                    pending.append(item)
    return keys


def _instantiate(classes: list[type[Frozen]], class_name: str, fields: dict[str, Any], base: type[Frozen]) -> Any:
    for cls in classes:
        try:
            return cls(**fields)
        except (TypeError, ValueError):  # a same-named class with other fields: try the next one
            continue
    if base is Message:
        return Message(**fields, original_class=class_name)
    return Frozen(**{**fields, "original_class": class_name})


def _subclasses_named(base: type[Frozen], class_name: str) -> list[type[Frozen]]:
    found = [base] if base.__name__ == class_name else []
    pending = list(base.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__name__ == class_name and not (base is Frozen and issubclass(cls, Message)):
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found[::-1]


@dataclass(frozen=True)
class StoredRun:
    """One run recorded in a store: each attached MiniAgents context (or each context the hook saw)."""

    id: int
    started_at: float  # time.time() when the run began
    message_count: int  # hash keys linked to the run


@dataclass(eq=False)
class StoredCall:
    """One agent call of a stored run: its AgentCallNode, its AgentReplyNode (if recorded) and its callees."""

    call: AgentCallNode
    reply: AgentReplyNode | None = None
    parent: StoredCall | None = None
    children: list[StoredCall] = field(default_factory=list)

    @property
    def agent_alias(self) -> str:
        return self.call.agent_alias

    @property
    def call_id(self) -> int | None:
        return self.call.call_id

    @property
    def input_messages(self) -> tuple[Message, ...]:
        return self.call.messages

    @property
    def replies(self) -> tuple[Message, ...]:
        return () if self.reply is None else self.reply.replies

    @property
    def error(self) -> str | None:
        """`"ErrorType: message"` if the call failed, else None."""
        return None if self.reply is None else self.reply.error

    def __repr__(self) -> str:
        return f"<StoredCall {self.call_id} {self.agent_alias} ({len(self.children)} callees)>"


@dataclass
class RunGraph:
    """The calls of a stored run, as a tree: `roots` are calls made outside any agent."""

    run: StoredRun
    calls: dict[int | None, StoredCall]  # by call_id (unique within one MiniAgents context)
    roots: list[StoredCall]

    @classmethod
    def from_nodes(cls, run: StoredRun, nodes: list[Message]) -> RunGraph:
        """Link AgentCallNodes to their AgentReplyNodes and to the call that made them."""
        by_call_key: dict[str, StoredCall] = {}
        for node in nodes:
            if isinstance(node, AgentCallNode):
                by_call_key.setdefault(node.hash_key, StoredCall(node))
        for node in nodes:
            if isinstance(node, AgentReplyNode):
                stored = by_call_key.setdefault(node.agent_call.hash_key, StoredCall(node.agent_call))
                stored.reply = node
        ordered = sorted(by_call_key.values(), key=lambda stored: (stored.call_id is None, stored.call_id or 0))
        calls = {stored.call_id: stored for stored in ordered}
        roots = []
        for stored in ordered:
            parent = calls.get(stored.call.parent_call_id) if stored.call.parent_call_id is not None else None
            if parent is None:
                roots.append(stored)
            else:
                stored.parent = parent
                parent.children.append(stored)
        return cls(run=run, calls=calls, roots=roots)

    def walk(self) -> Iterator[tuple[int, StoredCall]]:
        """(depth, call) for every call, depth-first in call order; roots have depth 0."""
        pending = [(0, root) for root in reversed(self.roots)]
        while pending:
            depth, stored = pending.pop()
            yield depth, stored
            pending.extend((depth + 1, child) for child in reversed(stored.children))

    def __len__(self) -> int:
        return len(self.calls)
