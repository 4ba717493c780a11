"""
Ctrl-C for `MiniAgents().run()`, the way `asyncio.Runner` does it, plus one courtesy: the runner owns
interrupt delivery. SIGINT sets a flag and cancels the main task (nothing writes into asyncio's futures);
the main coroutine is driven through `InterruptibleCoroutine`, which turns that cancellation into a
`KeyboardInterrupt` raised where the coroutine waits, so `except KeyboardInterrupt:` in user code works
as in a synchronous script. A second Ctrl-C while the first is handled raises at once.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Generator, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Interrupter:
    """Delivers interrupts (Ctrl-C, a kernel interrupt) to one main task on one loop."""

    __slots__ = ("_early", "_lock", "_loop", "_main_task", "_pending", "count", "on_interrupt")

    def __init__(self, on_interrupt: Callable[[], None] | None = None) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main_task: asyncio.Task[Any] | None = None
        self._pending = False
        self._early = False  # an interrupt asked for before the main task started
        self._lock = threading.Lock()
        self.count = 0
        self.on_interrupt = on_interrupt  # called on the loop when an interrupt is delivered

    def wrap(self, coroutine: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
        """The main coroutine, made interruptible (run it as the main task)."""
        return _adrive(self, coroutine)

    def attach(self) -> None:
        """Called from inside the main task: remember it and its loop (and deliver an early interrupt)."""
        with self._lock:
            self._main_task = asyncio.current_task()
            self._loop = asyncio.get_running_loop()
            early, self._early = self._early, False
        if early:
            self._loop.call_soon(self._deliver)

    def interrupt_threadsafe(self, early_ok: bool = False) -> bool:
        """
        Ask for an interrupt from any thread (or a signal handler). With `early_ok`, an interrupt asked for
        before the main task started is delivered when it starts. False if there is nothing to interrupt.
        """
        with self._lock:
            loop, task = self._loop, self._main_task
            if loop is None or task is None:
                self._early = early_ok
                if early_ok:
                    self.count += 1
                return early_ok
            if task.done() or loop.is_closed():
                return False
            self.count += 1
        loop.call_soon_threadsafe(self._deliver)
        return True

    def _deliver(self) -> None:
        task = self._main_task
        if task is None or task.done():
            return
        if self.on_interrupt is not None:
            self.on_interrupt()
        self._pending = True
        task.cancel()

    def take_pending(self) -> bool:
        """Whether the cancellation being handled now is an interrupt (and consume it)."""
        pending, self._pending = self._pending, False
        if pending and sys.version_info >= (3, 11):
            task = self._main_task
            if task is not None:
                task.uncancel()  # it becomes a KeyboardInterrupt, not a cancellation of the task
        return pending

    @contextmanager
    def sigint_installed(self, early_ok: bool = False) -> Iterator[None]:
        """
        While inside: Ctrl-C interrupts the main task (the second one, or one with no main task to interrupt,
        raises KeyboardInterrupt right there). `early_ok`: see `interrupt_threadsafe()`.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigint(signum: int, frame: Any) -> None:
            if self.count >= 1 or not self.interrupt_threadsafe(early_ok):
                raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


async def _adrive(interrupter: Interrupter, coroutine: Coroutine[Any, Any, T]) -> T:
    interrupter.attach()
    return await InterruptibleCoroutine(interrupter, coroutine)


class InterruptibleCoroutine(Generic[T]):
    """
    Drives `coroutine` step by step on behalf of the task awaiting it; when the task is cancelled for an
    interrupt, `KeyboardInterrupt` is thrown into the coroutine where it waits, instead of CancelledError.
    """

    __slots__ = ("_coroutine", "_interrupter")

    def __init__(self, interrupter: Interrupter, coroutine: Coroutine[Any, Any, T]) -> None:
        self._interrupter = interrupter
        self._coroutine = coroutine

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine = self._coroutine
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = coroutine.send(value) if error is None else coroutine.throw(error)
            except StopIteration as stop:
                return stop.value
            try:
                value, error = (yield yielded), None
            except asyncio.CancelledError as exc:
                value, error = None, (KeyboardInterrupt() if self._interrupter.take_pending() else exc)
            except BaseException as exc:
                value, error = None, exc
