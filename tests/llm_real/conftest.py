"""
Fixtures of the real-model tier: llama.cpp's OpenAI-compatible server serving SmolLM2-135M-Instruct, started by the
suite itself on free loopback ports (one per session and setting), and real `openai` SDK clients pointed at it.

Without the built server (no compiler on this machine) the tier is skipped with a note; with CI=true it is
mandatory and its tests fail instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.support.llama_server import LlamaClients, LlamaServer, missing_setup

_notes: list[str] = []


def _require_setup() -> None:
    problem = missing_setup()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: the real-model tier is mandatory, but {problem}", pytrace=False)
    if problem not in _notes:
        _notes.append(problem)
    pytest.skip(problem)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for note in _notes:
        terminalreporter.write_line(f"NOTE: real-model LLM tier skipped: {note}", yellow=True, bold=True)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """The server with its default request interruption on (a new request cuts a streaming one short)."""
    _require_setup()
    server = LlamaServer.start(interrupt_requests=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server_serial() -> Iterator[LlamaServer]:
    """The server with `--interrupt_requests False`: parallel requests wait for each other."""
    _require_setup()
    server = LlamaServer.start(interrupt_requests=False)
    yield server
    server.stop()


@pytest.fixture
def private_llama_server() -> Iterator[LlamaServer]:
    """A server of the test's own, which the test may stop."""
    _require_setup()
    server = LlamaServer.start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def llama_client() -> AsyncIterator[LlamaClients]:
    """`llama_client(server)` makes a real `openai.AsyncOpenAI` client for that server."""
    made = LlamaClients()
    yield made
    await made.aclose()
