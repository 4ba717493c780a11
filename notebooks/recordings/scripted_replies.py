"""
The replies the local stand-in server gives while `record_llm_responses.py` records the notebooks' LLM calls.

They are written by hand, by the authors of the notebooks: NOT the output of a real model. A request without a
scripted reply gets an HTTP 404 (and so no recording), which is how notebook 06 shows a missing recording.
"""

from __future__ import annotations

import re
from typing import Any

# notebook 06: (provider, last user message) -> reply
CONVERSATION_REPLIES: dict[tuple[str, str], str] = {
    ("openai", "In one sentence, what is a promise in asynchronous programming?"): (
        "A promise is a placeholder for a result that is not ready yet: you can pass it around at once "
        "and await it when you need the value."
    ),
    ("openai", "Describe token streaming."): "Words arrive incrementally.",
    ("openai", "What is my name?"): "Your name is Ada.",
    ("anthropic", "Continue the story\n\nin one sentence."): (
        "The promise waited patiently in the event loop until, one bright tick, its value arrived and every "
        "coroutine awaiting it woke up at once."
    ),
    ("openai", "Name one benefit of immutable messages."): (
        "Many agents can read the same messages at the same time without any locks."
    ),
    ("anthropic", "Name one benefit of immutable messages."): (
        "Their hash keys are derived from their content, so equal messages get equal keys, which makes caching "
        "and deduplication trivial."
    ),
}

# notebook 09: module -> the documentation section "drafted" for it
MODULE_DRAFTS: dict[str, str] = {
    "miniagents.promising.errors": """\
## `miniagents.promising.errors`

The errors of the promising layer, in one small hierarchy, so that you can catch all of them with
`except PromisingError`.

- **`PromisingError`**: the base class of every error raised by the promise machinery.
- **`FunctionNotProvidedError`**: a promise needs a streamer or a resolver, and got neither (as an argument or
  as a method of a subclass).
- **`AppenderNotOpenError`**: `append()` on a `StreamAppender` that was not opened yet (use `with appender:`).
- **`AppenderClosedError`**: `append()` on a `StreamAppender` that is already closed.
- **`PromiseCancelledError`**: what consumers receive, at the point where it was cut, when a promise's
  resolution or stream (or the agent producing it) was cancelled.""",
    "miniagents.promising.ext.frozen": """\
## `miniagents.promising.ext.frozen`

`Frozen` is the immutable base of every message: a pydantic model that accepts arbitrary extra fields, freezes
them recursively (dicts become `Frozen` models, lists become tuples) and carries a git-style `hash_key`
computed from its content.

- **`Frozen`**: assigning to a field raises; `serialize()` gives plain data, `serialized` the canonical JSON that
  `hash_key` (SHA-256, 40 characters by default) is computed from; equal content means an equal key.
- **`freeze_value(value, ...)`**: the freezing step on its own: dicts to models, lists and tuples to tuples, and
  a clear error naming the field for anything that cannot be frozen (sets, arbitrary objects).""",
    "miniagents.promising.promise_typing": """\
## `miniagents.promising.promise_typing`

The type variables and callable protocols the rest of the layer is typed with. Nothing here runs; it documents
the shapes of the functions you pass in.

- **`PromiseResolver`**: `async resolver(promise) -> value`, computes a promise's whole value.
- **`PromiseStreamer`**: `streamer(promise) -> async iterator of pieces`, produces a streamed promise's pieces.
- **`PromiseResolvedHandler`**: `async handler(promise, result)`, called whenever a promise resolves.
- **`T`, `PIECE`, `WHOLE`, `IN`, `OUT`**: the type variables (a value, a piece of a stream, the whole of it, and
  the items going into and out of a flattener).""",
    "miniagents.promising.appender": """\
## `miniagents.promising.appender`

`StreamAppender`, a streamer fed by hand: open it with `with appender:`, `append(piece)` inside, and pass it as
the `streamer` of a `StreamedPromise` so that any number of consumers can replay what was appended.

- **`StreamAppender`**: `append()` before opening raises `AppenderNotOpenError`, after closing
  `AppenderClosedError`; with `capture_errors=True` an exception raised in the `with` block becomes a piece
  that consumers receive in order, and a cancelled block ends the stream with `PromiseCancelledError`.""",
    "miniagents.promising.context": """\
## `miniagents.promising.context`

`PromisingContext`, where promises run: it records every background task started for them and the handlers
to call when a promise resolves, and it is what `MiniAgents` builds on.

- **`PromisingContext`**: activate it with `async with` (or `activate()` and `await afinalize()`); schedule work
  with `start_asap(...)`; `on_promise_resolved` registers handlers; on exit it waits for every task it
  started, and when cancelled or interrupted it cancels its own tasks first.""",
    "miniagents.promising.observers": """\
## `miniagents.promising.observers`

The observers of a context (a promise resolved, a message to persist, an agent called), kept in one object per
context and merged with the parent context's once, when it is activated.

- **`Observers`**: `add(kind, handler)` validates what it is given (an async callable where one is needed);
  `notify(kind, ...)` calls every synchronous observer, and one that raises is logged with its name without
  breaking the caller or the other observers.""",
    "miniagents.promising.ownership": """\
## `miniagents.promising.ownership`

Who owns which task: every task the framework starts belongs to a `TaskOwner`, and owners form a tree whose root
belongs to the active context (an agent call is an owner one level down).

- **`TaskOwner`**: `start(coroutine)` runs a task it owns; `cancel()` cancels its whole subtree, whether or not
  the tasks have taken their first step; cleanup that must always happen runs in the task's done callback.""",
    "miniagents.promising.promising": """\
## `miniagents.promising.promising`

The heart of MiniAgents: promises, and streamed promises that every consumer can replay from the start. This
module is also where the context and the appender are imported from (`PromisingContext`, `StreamAppender`).

- **`Promise`**: a value computed at most once by `async resolver(promise)`; every awaiter gets the very same
  result, or the very same exception.
- **`StreamedPromise`**: a whole value whose pieces can be consumed with `async for` while they are produced;
  every consumer sees every piece from the first one, and errors arrive at their position.
- **`remember_origin(error)`**: keeps the traceback an error had when it entered a stream, so that replays
  re-raise it with its original traceback.""",
    "miniagents.promising.sentinels": """\
## `miniagents.promising.sentinels`

Unique marker values for "no value", "use the default", "failed" and friends, which cannot be confused with
`None` or `False`: a sentinel refuses to be used as a boolean, so `if value:` never misreads one.

- **`Sentinel`**: a named unique marker; `bool(sentinel)` raises.
- **`NO_VALUE`, `DEFAULT`, `FAILED`, `END_OF_QUEUE`**: markers used by the promise machinery itself.
- **`AWAIT`, `CLEAR`**: the steps of `achain_loop` that wait for everything so far, or drop the previous
  replies.""",
    "miniagents.promising.sequence": """\
## `miniagents.promising.sequence`

Flattening: `FlatSequence` turns a stream of incoming items into a flat, replayable stream of output items. It
is what lets an agent reply with strings, lists, other agents' replies, nested to any depth, and have its
consumers see one flat sequence of messages in order.

- **`FlatSequence`**: each incoming item becomes zero or more output items via `flattener(self, item)`, in
  order; `.sequence_promise` is the resulting streamed promise.
- **`acollect_pieces(promise)`**: every piece of a streamed promise as a tuple, raising the first error piece.""",
}

EDITOR_INTRO = """\
# `miniagents.promising`: the promise machinery

Everything asynchronous in MiniAgents rests on this package, and it knows nothing about messages or agents.
Its central idea is the **replayable streamed promise**: a value that is produced piece by piece, that any
number of consumers can read from the beginning while it is still being produced, and that is computed only
once. A `PromisingContext` tracks every background task those promises start, so nothing is left running
when it exits. The sections below cover the module that implements promises and streams, the flattening of
nested sequences, the immutable `Frozen` models that messages are built on, and the small modules of errors,
sentinels and types around them."""

_MODULE = re.compile(r"^Module: (\S+)$", re.MULTILINE)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content or () if isinstance(block, dict))


def scripted_reply(provider: str, body: dict[str, Any]) -> str | None:
    """The scripted reply to a request body of `provider` ("openai" or "anthropic"), or None if there is none."""
    messages = [message for message in body.get("messages") or () if message.get("role") != "system"]
    if not messages:
        return None
    last = _text(messages[-1].get("content"))
    system = _text(body.get("system")) or " ".join(
        _text(message.get("content")) for message in body.get("messages") or () if message.get("role") == "system"
    )
    if "technical writer" in system:  # notebook 09: a module's section
        module = _MODULE.search(last)
        return MODULE_DRAFTS.get(module.group(1)) if module else None
    if "documentation editor" in system:  # notebook 09: the introduction of the page
        return EDITOR_INTRO
    return CONVERSATION_REPLIES.get((provider, last))
