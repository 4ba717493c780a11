"""
LiveWidget: the base of the MiniAgents widgets, a live document kept in sync with the page cheaply.

Sync protocol (the front-end half is `widgets/live.js`):

- `state` (a synced trait) holds the whole document. It is only assigned at quiet points (nothing is
  streaming any more: the end of a stream, a chat waiting for the user, a tree whose calls all finished),
  because ipywidgets resends a trait's whole value on every change. It is what a page reload and a saved
  notebook show.
- While things stream, changes go out as custom messages `{"type": "events", "events": [...]}`, at most
  `max_updates_per_second` per widget (so per view): token deltas are buffered here and flushed by a
  timer (`loop.call_later`), never one message per token. Events: `["text", id, seq, chunk]` appends
  text delta number `seq` to message `id`; `["message", id, fields]` and other `[kind, id, fields]`
  upsert an entity. Applying an event twice is harmless, so views can merge freely.
- A view that renders while the document is live asks for `{"type": "snapshot-request", "request": r}`
  and gets `{"type": "snapshot", "request": r, "state": {...}}`, the document as the events sent so far
  describe it, which then continues with the next deltas.
- A streaming message is shown as markdown while it grows, rendered here by the same renderer as its final
  form: `["message", id, {"html": h, "html_upto": n}]` says `h` renders the first `n` UTF-16 code units of
  its text (the rest shows as plain text until the next render). Rendering is throttled by its cost.

Saved notebooks (SPEC 5.7): the widget is displayed with a display id, and every output showing it is
updated with its static forms each time it goes quiet (see `widget_outputs`); the live widget view stays in
those outputs only while the widget can still change (`_shows_view()`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, ClassVar

import anywidget
import traitlets

from miniagents.notebook import assets
from miniagents.notebook.message_record import ErrorRecord, MessageRecord
from miniagents.notebook.rendering import GrowingMarkdown
from miniagents.notebook.widget_outputs import WIDGET_VIEW, WidgetOutputs


class LiveWidget(anywidget.AnyWidget):
    """A widget whose document streams to the page as coalesced deltas, with its quiet state in a trait."""

    _css = assets.stylesheet()
    state = traitlets.Dict().tag(sync=True)

    max_updates_per_second: ClassVar[float] = 25.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._records: dict[int, MessageRecord] = {}  # by id() of the promise (the record keeps it alive)
        self._errors: dict[str, ErrorRecord] = {}  # errors met at positions of sequences, by record id
        self._made = {"m": 0, "e": 0}  # numbers record ids (records may be forgotten: a tree's bounded window)
        self._dirty: dict[str, Any] = {}  # entities with events to send, in the order they changed
        self._flush_handle: asyncio.TimerHandle | None = None
        self._last_flush = -1e9
        self._state_stale = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._quiet = asyncio.Event()  # set by a flush that finds the document quiet
        self._growing: dict[str, GrowingMarkdown] = {}  # the markdown of each streaming message, by record id
        self._outputs = WidgetOutputs()
        self._shown_in_cell: int | None = None
        self._loop = _running_loop()  # where the widget's tasks and timers run
        self.on_msg(self._on_front_end_message)

    # ------------------------------------------------------- the document

    def _snapshot(self) -> dict[str, Any]:
        """The whole document as the front end knows it (subclasses add their own parts)."""
        messages = {record.id: record.snapshot() for record in self._records.values()}
        for record_id, growing in self._growing.items():  # the markdown sent so far of the streaming ones
            if messages[record_id]["status"] == "streaming":
                messages[record_id].update(growing.fields())
        messages.update((record.id, record.snapshot()) for record in self._errors.values())
        return {"live": self._is_live(), "messages": messages}

    def _is_live(self) -> bool:
        """Whether the document is still changing on its own (subclasses refine)."""
        return any(record.is_streaming for record in self._records.values())

    def _record_for(self, promise: Any, fallback_sender: str | None = None) -> tuple[MessageRecord, bool]:
        """The record of a message promise (created, primed and followed on first use); True if new."""
        record = self._records.get(id(promise))
        if record is not None:
            return record, False
        self._made["m"] += 1
        record = MessageRecord(f"m{self._made['m']}", promise, fallback_sender)
        self._records[id(promise)] = record
        record.prime()
        self._mark_changed(record)
        if record.is_streaming:
            self._start(record.afollow(self._mark_changed))
        return record, True

    def _entries(self, ids: list[str]) -> list[MessageRecord | ErrorRecord]:
        """The message and error records with these ids, in that order."""
        by_id: dict[str, MessageRecord | ErrorRecord] = {record.id: record for record in self._records.values()}
        by_id.update(self._errors)
        return [by_id[record_id] for record_id in ids]

    def _error_record(self, error: BaseException) -> ErrorRecord:
        """A new record showing `error` as a failed block."""
        self._made["e"] += 1
        record = ErrorRecord(f"e{self._made['e']}", error)
        self._errors[record.id] = record
        self._mark_changed(record)
        return record

    def _mark_changed(self, entity: Any) -> None:
        """`entity` (with `id` and `take_events()`) has something new for the front end: flush it soon."""
        self._dirty[entity.id] = entity
        self._state_stale = True
        if self._flush_handle is None:
            self._request_flush()

    def _start(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run a coroutine that feeds this widget as a task the widget owns (cancelled by `close()`)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ flushing

    def _request_flush(self) -> None:
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # changed outside the event loop (e.g. before it runs): send at once
            self._flush()
            return
        delay = max(0.0, self._last_flush + 1.0 / self.max_updates_per_second - time.monotonic())
        self._flush_handle = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        """Send everything the front end lacks as one message; assign `state` if the document is quiet."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._last_flush = time.monotonic()
        dirty, self._dirty = self._dirty, {}
        events = [event for entity in dirty.values() for event in entity.take_events()]
        events.extend(self._markdown_events(dirty.values()))
        if events and self.comm is not None:
            self.send({"type": "events", "events": events})
        if self._is_live():
            if self._outputs.displayed and not self._outputs.shows_view:
                self._outputs.update(self._display_bundle())  # live again (e.g. a tree's next run): the view
        else:
            if self._state_stale:
                self._state_stale = False
                self.state = self._snapshot()
                if self._outputs.displayed:
                    self._outputs.update(self._display_bundle())
            self._quiet.set()

    def _markdown_events(self, entities: Any) -> list[list[Any]]:
        """The markdown of the streaming messages whose text grew, where its cost allows rendering now."""
        events: list[list[Any]] = []
        now = time.monotonic()
        for entity in entities:
            if not isinstance(entity, MessageRecord):
                continue
            if not entity.is_streaming:
                self._growing.pop(entity.id, None)  # complete: its final html went out with its status
                continue
            growing = self._growing.setdefault(entity.id, GrowingMarkdown())
            if growing.render(entity.text, now):
                events.append(["message", entity.id, growing.fields()])
        return events

    async def aquiet(self) -> None:
        """Wait until nothing in this widget streams or runs any more; its `state` then holds everything."""
        while self._is_live() or self._state_stale:
            self._quiet.clear()
            self._request_flush()
            await self._quiet.wait()

    def _on_front_end_message(self, _: Any, content: dict[str, Any], buffers: list[bytes]) -> None:
        # JupyterLab (4.4+, with ipywidgets 8) sends widget messages to a kernel subshell: they arrive on another
        # thread, with its own event loop. Everything a widget does happens on the loop it was made on.
        loop = self._loop
        if loop is not None and not loop.is_closed() and _running_loop() is not loop:
            loop.call_soon_threadsafe(self._on_front_end_content, content)
        else:
            self._on_front_end_content(content)

    def _on_front_end_content(self, content: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "snapshot-request":
            self._flush()
            self.send({"type": "snapshot", "request": content.get("request"), "state": self._snapshot()})
        else:
            self._on_custom_message(content)

    def _on_custom_message(self, content: dict[str, Any]) -> None:
        """A message from the front end other than a snapshot request (subclasses handle theirs)."""

    def close(self) -> None:
        """Stop feeding this widget and close it in the page."""
        if "_tasks" not in self.__dict__:
            return  # (a subclass's __init__ refused its arguments before this one ran: nothing to stop)
        for task in list(self._tasks):
            task.cancel()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        super().close()
        if self._outputs.displayed:
            self._outputs.update(self._display_bundle())  # without a model the view can only fail: static

    # ------------------------------------------------------- static forms

    def to_text(self) -> str:
        """The current content as plain text (deterministic: no ids, no timings)."""
        raise NotImplementedError

    def to_html(self) -> str:
        """The current content as static, sanitised HTML (deterministic: no ids, no timings)."""
        raise NotImplementedError

    def _static_forms(self) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}

    def _is_interactive(self) -> bool:
        """Whether the user can still act through the widget view (a chat not stopped); subclasses refine."""
        return False

    def _shows_view(self) -> bool:
        """Whether outputs should hold the widget view: while the widget changes or can be used."""
        return self.comm is not None and (self._is_live() or self._is_interactive())

    def _display_bundle(self) -> dict[str, Any]:
        """What an output of this widget holds now: the static forms, plus the widget view when it is useful."""
        data: dict[str, Any] = self._static_forms()
        if self._shows_view():
            view = super()._repr_mimebundle_()
            if view is not None:
                data[WIDGET_VIEW] = view[0][WIDGET_VIEW]
        return data

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return self._display_bundle(), {}

    # ------------------------------------------------------------ display

    def show(self) -> None:
        """
        Display this widget in the current cell output. Showing it again in the same cell (e.g. because
        the call that showed it is also the cell's value) is skipped, so `show_tree()` or `chat(agent)` as
        the last line of a cell shows one widget, not two.
        """
        self._outputs.display(self._display_bundle())
        self._shown_in_cell = _execution_count()

    def _ipython_display_(self) -> None:
        if self._shown_in_cell is not None and self._shown_in_cell == _execution_count():
            return
        self._outputs.display(self._display_bundle())


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _execution_count() -> int | None:
    """The number of the cell being run, or None outside IPython."""
    from IPython import get_ipython

    shell = get_ipython()
    return None if shell is None else shell.execution_count


class IdList:
    """An ordered list of ids (the blocks of a stream or chat, the roots of a tree) as an entity whose one
    event, `[name, name, ids]`, is the whole list."""

    __slots__ = ("id", "ids")

    def __init__(self, name: str) -> None:
        self.id = name
        self.ids: list[str] = []

    def take_events(self) -> list[list[Any]]:
        return [[self.id, self.id, list(self.ids)]]
