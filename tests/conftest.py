"""Fixtures shared by the LLM tests: the loopback wire-protocol server and real SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from tests.support.llm_agent_testing import SDKClients
from tests.support.llm_wire_server import LLMWireServer


@pytest.fixture
def server() -> Iterator[LLMWireServer]:
    """An LLMWireServer on a free loopback port, stopped after the test."""
    with LLMWireServer() as srv:
        yield srv


@pytest_asyncio.fixture
async def clients(server: LLMWireServer) -> AsyncIterator[SDKClients]:
    """Makes async SDK clients pointed at `server`; closes them inside the test's event loop."""
    made = SDKClients(server)
    yield made
    await made.aclose()
