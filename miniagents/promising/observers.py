"""
Observers: the handlers a context calls when something happens (a promise resolved, a message to
persist, an agent called...). One object per context, merged with its parents' at activation, and one
dispatch policy for all of them: an observer that raises is logged with its name and never breaks the
caller, the agent or the other observers.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def describe_handler(handler: Any) -> str:
    """A readable name for a handler (its qualified name, or its repr)."""
    name = getattr(handler, "__qualname__", None) or getattr(handler, "__name__", None)
    if name is None:
        func = getattr(handler, "func", None)  # functools.partial
        name = getattr(func, "__qualname__", None)
    return str(name) if name is not None else repr(handler)


def is_async_callable(handler: Any) -> bool:
    """Whether calling `handler` gives a coroutine (async functions, bound methods, partials, async __call__)."""
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - an object with `async def __call__`
    return call is not None and inspect.iscoroutinefunction(call)


class Observers:
    """
    The observers of one context by kind (`"promise_resolved"`, `"persist_message"`, ...).

    `add()` validates and registers; `of(kind)` gives this context's observers followed by its parents'
    (merged once, when the context is activated under its parent).
    """

    __slots__ = ("_own", "_parent", "logger", "merged")

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._own: dict[str, list[Callable[..., Any]]] = {}
        # kind -> this context's observers, then its parents' (read-only for callers; hot paths read it directly)
        self.merged: dict[str, tuple[Callable[..., Any], ...]] = {}
        self._parent: Observers | None = None

    def add(self, kind: str, handler: Any, *, must_be_async: bool) -> None:
        """
        Register `handler` for `kind`. Raises TypeError when it is not callable, or not async where an
        async handler is required (naming the handler and the kind).
        """
        if not callable(handler):
            raise TypeError(f"a {kind} handler must be callable, got {type(handler).__name__}: {handler!r:.80}")
        if must_be_async and not is_async_callable(handler):
            raise TypeError(
                f"a {kind} handler must be an async function (`async def handler(...)`); "
                f"{describe_handler(handler)} is not"
            )
        self._own.setdefault(kind, []).append(handler)
        self._merge()

    def add_all(self, kind: str, handlers: Any, *, must_be_async: bool) -> None:
        """Register one handler or an iterable of them."""
        for handler in [handlers] if callable(handlers) else list(_as_iterable(handlers, kind)):
            self.add(kind, handler, must_be_async=must_be_async)

    def attach_to(self, parent: Observers | None) -> None:
        """Observe under `parent` from now on: its observers of each kind run after this context's own."""
        self._parent = parent
        self._merge()

    def _merge(self) -> None:
        parent_merged = self._parent.merged if self._parent is not None else {}
        kinds = set(self._own) | set(parent_merged)
        self.merged = {kind: (*self._own.get(kind, ()), *parent_merged.get(kind, ())) for kind in kinds}

    def of(self, kind: str) -> tuple[Callable[..., Any], ...]:
        """This context's observers of `kind`, then its parents' (empty tuple if none)."""
        return self.merged.get(kind, ())

    def notify(self, kind: str, *args: Any) -> None:
        """Call every synchronous observer of `kind`; one that raises is logged with its name, nothing else."""
        for handler in self.merged.get(kind, ()):
            try:
                handler(*args)
            except Exception as exc:
                self.log_failure(kind, handler, exc)

    def log_failure(self, kind: str, handler: Any, exc: BaseException) -> None:
        """Log an observer's error with its name (message truncated: a huge one is not written whole)."""
        text = repr(exc)
        if len(text) > 2000:
            text = f"{text[:2000]}... ({len(text)} characters)"
        self.logger.error("%s observer %s failed: %s", kind, describe_handler(handler), text, exc_info=exc)


def _as_iterable(handlers: Any, kind: str) -> Iterable[Any]:
    # (a string, bytes or a mapping is iterable, but never a collection of handlers)
    if isinstance(handlers, Iterable) and not isinstance(handlers, (str, bytes, bytearray, Mapping)):
        return handlers
    raise TypeError(f"{kind} handlers must be a callable or an iterable of callables, got {type(handlers).__name__}")
