"""
WidgetOutputs: the notebook outputs a widget is displayed in, kept holding its current static form, so a
saved notebook reads without a kernel (SPEC 5.7).

A widget is displayed with a display id. Each time it goes quiet, `update()` replaces the data of every
output showing it (an `update_display_data` message) with its static forms: text/plain and text/html, plus
the widget view only while the widget can still change or be used. An output without the widget view is
what a reader with no kernel sees: GitHub, nbconvert, and a reopened notebook (no "model not found").

Each front end applies an update only to outputs it can find, so one update may be sent twice:
- JupyterLab and Notebook 7 apply it in the output area of the cell its parent header names (where the
  widget was displayed), so it is sent parented to that cell;
- nbclient (`nbconvert --execute`, which makes the saved outputs of executed notebooks) only reads the
  messages of the cell it is running, so it is also sent parented to the running cell, or, when no cell
  runs, again when the next cell starts.
Outside an IPython kernel (a script, a test) nothing is sent and nothing fails.
"""

from __future__ import annotations

import contextvars
import uuid
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class WidgetOutputs:
    """The outputs one widget is displayed in: its display id and the cells (parent headers) showing it."""

    __slots__ = ("_last_update", "_parents", "display_id")

    def __init__(self) -> None:
        self.display_id = uuid.uuid4().hex
        self._parents: list[dict[str, Any]] = []  # the parent header of each cell the widget is shown in
        self._last_update: dict[str, Any] | None = None

    @property
    def displayed(self) -> bool:
        """Whether the widget has been displayed in a kernel's output at least once."""
        return bool(self._parents)

    @property
    def shows_view(self) -> bool:
        """Whether the outputs hold the live widget view (False once they hold only the static forms)."""
        return self._last_update is not None and WIDGET_VIEW in self._last_update

    def display(self, bundle: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        """Display `bundle` (a mimebundle) as a new output of the current cell, under this display id."""
        from IPython.display import display

        display(bundle, metadata=metadata or {}, raw=True, display_id=self.display_id)
        self._last_update = bundle
        parent = _current_parent()
        if parent is not None and all(parent.get("msg_id") != known.get("msg_id") for known in self._parents):
            self._parents.append(parent)
        _cells.watch()

    def update(self, bundle: dict[str, Any]) -> None:
        """Replace the data of every output showing the widget by `bundle` (skipped when unchanged)."""
        if not self._parents or bundle == self._last_update:
            return
        self._last_update = bundle
        for parent in self._parents:
            _publish_update(bundle, self.display_id, parent)
        running = _cells.running_parent
        if running is None:
            _cells.resend_later(self.display_id, bundle)
        elif all(running.get("msg_id") != parent.get("msg_id") for parent in self._parents):
            _publish_update(bundle, self.display_id, running)


class _CellWatch:
    """
    Which cell the kernel is running (IPython's pre/post_run_cell events), and the updates made while none
    ran, sent again parented to the next cell when it starts (for nbclient).
    """

    def __init__(self) -> None:
        self.running_parent: dict[str, Any] | None = None
        self._pending: dict[str, dict[str, Any]] = {}  # display id -> its latest update
        self._shell: Any = None

    def watch(self) -> None:
        """Follow the cells of the current IPython shell (idempotent)."""
        shell = _shell()
        if shell is None or shell is self._shell:
            return
        if self._shell is not None:
            self._unwatch()
        self._shell = shell
        shell.events.register("pre_run_cell", self._pre_run_cell)
        shell.events.register("post_run_cell", self._post_run_cell)
        self.running_parent = _current_parent()  # displayed from a running cell

    def _unwatch(self) -> None:
        for event, callback in (("pre_run_cell", self._pre_run_cell), ("post_run_cell", self._post_run_cell)):
            try:
                self._shell.events.unregister(event, callback)
            except ValueError:  # already gone
                pass

    def resend_later(self, display_id: str, bundle: dict[str, Any]) -> None:
        self._pending[display_id] = bundle

    def _pre_run_cell(self, *_: Any) -> None:
        self.running_parent = _current_parent()
        pending, self._pending = self._pending, {}
        if self.running_parent is not None:
            for display_id, bundle in pending.items():
                _publish_update(bundle, display_id, self.running_parent)

    def _post_run_cell(self, *_: Any) -> None:
        self.running_parent = None


_cells = _CellWatch()


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipykernel brings IPython
        return None
    shell = get_ipython()
    return shell if shell is not None and hasattr(shell, "display_pub") else None


def _current_parent() -> dict[str, Any] | None:
    """The header of the request the current code runs for (a kernel's display publisher knows it)."""
    shell = _shell()
    header = getattr(shell.display_pub, "parent_header", None) if shell is not None else None
    return dict(header) if header else None


def _publish_update(bundle: dict[str, Any], display_id: str, parent: dict[str, Any]) -> None:
    """Send `update_display_data` for `display_id`, parented to the request whose header is `parent`."""
    shell = _shell()
    if shell is None:
        return
    publisher = shell.display_pub
    # ipykernel keeps the parent header in a ContextVar: set it in a copy of the context, for this message only
    contextvars.copy_context().run(_publish_in_context, publisher, bundle, display_id, parent)


def _publish_in_context(publisher: Any, bundle: dict[str, Any], display_id: str, parent: dict[str, Any]) -> None:
    set_parent = getattr(publisher, "set_thread_parent", None)
    token = set_parent(parent) if set_parent is not None else None
    try:
        publisher.publish(data=bundle, metadata={}, transient={"display_id": display_id}, update=True)
    finally:
        reset = getattr(publisher, "reset_thread_parent", None)
        if token is not None and reset is not None:
            reset(token)
