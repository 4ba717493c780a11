"""
A huge exception message is truncated in the log line that reports it and written whole at most once (by the
traceback under it): an agent's error, a persistence handler's error (once per failure, naming the handler), and an
LLM provider's error in the call log (issue 12).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from miniagents import InteractionContext, Message, MiniAgents, miniagent
from miniagents.ext.llm import LLMLogFolder
from miniagents.ext.llm.openai import create_openai_agent
from miniagents.promising.promising import Promise
from tests.support.llm_agent_testing import SDKClients, aread_replies, within
from tests.support.llm_wire_server import Fault, LLMWireServer

HUGE = "y" * 100_000
FORMATTER = logging.Formatter("%(levelname)s %(name)s %(message)s")


def formatted(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Each error record as a log handler writes it: the line and the traceback under it."""
    return [FORMATTER.format(record) for record in caplog.records if record.levelno >= logging.ERROR]


def logged_texts(folder: Path) -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.md"))]


@miniagent(alias="FAILING")
async def failing(ctx: InteractionContext) -> None:
    raise ValueError(HUGE)


@miniagent(alias="CALLER")
async def caller(ctx: InteractionContext) -> None:
    ctx.reply(failing.inquire())


async def test_a_huge_agent_error_is_truncated_in_its_log_line_and_written_whole_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="miniagents")
    async with MiniAgents():
        with pytest.raises(ValueError):
            await asyncio.wait_for(caller.inquire().aresolve_messages(), 10)
    (record,) = [record for record in caplog.records if "FAILING" in record.getMessage()]
    assert len(record.getMessage()) < 3000 and record.getMessage().endswith(" characters)")
    assert sum(text.count(HUGE) for text in formatted(caplog)) == 1  # the traceback's last line, once


async def test_a_huge_persistence_handler_error_is_truncated_and_names_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="miniagents")

    async def full_disk_store(promise: Promise[Any], message: Message) -> None:
        raise OSError(HUGE)

    async with MiniAgents(on_persist_message=full_disk_store):
        Message("persisted").as_promise  # noqa: B018
    records = [record for record in caplog.records if "full_disk_store" in record.getMessage()]
    assert len(records) == 1 and len(records[0].getMessage()) < 3000
    assert [text.count(HUGE) for text in formatted(caplog)] == [1]


async def test_a_huge_provider_error_is_truncated_in_the_llm_call_log(
    server: LLMWireServer, clients: SDKClients, tmp_path: Path
) -> None:
    server.enqueue(Fault.http_status(400, message=HUGE))
    agent = create_openai_agent(clients.openai(max_retries=0), alias="LLM", llm_logger=LLMLogFolder(tmp_path))
    async with MiniAgents():
        _, error = await within(aread_replies(agent.inquire("hi")))
    assert error is not None and HUGE in str(error)  # the caller gets the whole error
    (log,) = logged_texts(tmp_path)
    (status,) = [line for line in log.splitlines() if line.startswith("- status: failed: BadRequestError")]
    assert len(status) < 3000 and HUGE not in log
