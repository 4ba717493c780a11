"""
Fixtures of the browser suite: the built wheel in a fresh (cached) venv, one JupyterLab server and one
headless Debian Chromium for the package (stopped right after its last test, even inside a whole-suite run),
and a fresh browser page per test opening notebooks in that server.

Policy when the browser is missing: skip, saying why, on a developer's machine; fail when CI is set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .lab_server import LabServer
from .processes import descendant_processes
from .wheel_venv import LabVenv, build_wheel, ensure_lab_venv

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ViewportSize

    from .notebook_page import NotebookPage

CHROMIUM = Path(os.environ.get("MINIAGENTS_CHROMIUM", "/usr/bin/chromium"))
# How Chromium runs on these machines: no sandbox (root), no GPU, and nothing that reaches for the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 1024}
DEFAULT_TIMEOUT_MS = 20_000

_skip_reasons: list[str] = []
_session_notes: list[str] = []


def _browser_unavailable_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (install Debian's `chromium` package, or set MINIAGENTS_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the `playwright` Python package is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="package")
def no_stray_processes() -> Iterator[None]:
    """Torn down last: fails the session if a browser, server or kernel process outlived its fixture."""
    before = set(descendant_processes())
    yield
    stray = {pid: cmd for pid, cmd in descendant_processes().items() if pid not in before}
    if stray:
        pytest.fail(f"processes left behind by the browser suite: {stray}", pytrace=False)


@pytest.fixture(scope="package")
def chromium_path(no_stray_processes: None) -> Path:
    """The Chromium binary; skips the suite without one, except under CI where that is a failure."""
    reason = _browser_unavailable_reason()
    if reason is None:
        return CHROMIUM
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"browser tests are mandatory in CI, but {reason}", pytrace=False)
    _skip_reasons.append(reason)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="package")
def lab_venv(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabVenv]:
    """The project's wheel, built now, installed with JupyterLab into a venv of its own (cached per wheel)."""
    started = time.monotonic()
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    venv = ensure_lab_venv(wheel)
    _session_notes.append(
        f"browser tests ran JupyterLab from {venv.path} ({venv.how}, wheel {wheel.name} #{venv.wheel_digest}, "
        f"ready in {time.monotonic() - started:.1f}s)"
    )
    try:
        yield venv
    finally:
        venv.release()


@pytest.fixture(scope="package")
def lab_server(lab_venv: LabVenv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    server = LabServer(lab_venv, tmp_path_factory.mktemp("jupyterlab"))
    server.start()
    try:
        yield server
    finally:
        forced = server.stop()
        if forced:
            pytest.fail(f"JupyterLab did not stop cleanly: {forced}\n{server.log_tail()}", pytrace=False)


@pytest.fixture(scope="package")
def browser(chromium_path: Path) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_notebook(
    browser: Browser, lab_server: LabServer, request: pytest.FixtureRequest
) -> Iterator[Callable[..., NotebookPage]]:
    """
    `open_notebook(cells, ui="lab")` writes a notebook named after the test, opens it in a fresh page (in
    JupyterLab, or with ui="notebook" in Notebook 7) and returns a NotebookPage. At the end the page closes
    and the notebook's kernel is shut down; a failing test leaves a screenshot `<test>-failed.png` and prints
    the browser console.
    """
    from .notebook_page import NotebookPage

    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"[{message.type}] {message.text}"))
    page.on("pageerror", lambda error: console.append(f"[pageerror] {error}"))
    opened: list[NotebookPage] = []

    def open_(cells: list[str], ui: str = "lab") -> NotebookPage:
        notebook = NotebookPage.open(page, lab_server, request.node.name, cells, ui)
        opened.append(notebook)
        return notebook

    yield open_

    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and opened:
        opened[-1].screenshot("failed")
        print("browser console:\n" + "\n".join(console[-80:]))
    context.close()
    lab_server.shut_down_sessions()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for reason in dict.fromkeys(_skip_reasons):
        terminalreporter.write_line(f"NOTE: browser tests skipped: {reason}", yellow=True, bold=True)
    for note in _session_notes:
        terminalreporter.write_line(note)
