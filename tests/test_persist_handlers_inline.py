"""
Persistence handlers run inline until they first wait (a store that only queues costs no task), and the rest
in a context-level task: either way every message is handed over, the context waits for what is left, the
handler's context variables stay its own, and errors, before or after it waits, are logged with its name.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import pytest

from miniagents import InteractionContext, Message, MiniAgents, Promise, miniagent

seen_in_handler: contextvars.ContextVar[str] = contextvars.ContextVar("seen_in_handler", default="outside")


@miniagent
async def replier(ctx: InteractionContext, n: int) -> None:
    for i in range(n):
        ctx.reply(f"reply {i}")


async def test_a_handler_that_waits_still_persists_everything_before_the_context_ends() -> None:
    persisted: list[str] = []

    async def slow_store(promise: Promise[Any], message: Message) -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        persisted.append(str(message))

    async with MiniAgents(on_persist_message=slow_store):
        replies = await replier.inquire(n=20).aresolve_messages()

    assert {str(reply) for reply in replies} <= set(persisted)
    assert len(persisted) == len(set(persisted)) + persisted.count("")  # each text persisted once (empty aside)


async def test_a_handler_that_never_waits_sees_nested_messages_before_their_holder() -> None:
    order: list[str] = []

    async def store(promise: Promise[Any], message: Message) -> None:
        order.append(type(message).__name__)

    async with MiniAgents(on_persist_message=store):
        await replier.inquire(n=3).aresolve_messages()

    assert order.count("Message") >= 3
    assert order.index("AgentReplyNode") > order.index("AgentCallNode")
    assert order.index("AgentReplyNode") > order.index("Message")


async def test_context_variables_set_by_a_handler_do_not_leak_into_the_run() -> None:
    seen: list[str] = []

    async def store(promise: Promise[Any], message: Message) -> None:
        seen.append(seen_in_handler.get())
        seen_in_handler.set("set by the handler")

    async with MiniAgents(on_persist_message=store):
        await replier.inquire(n=2).aresolve_messages()
        assert seen_in_handler.get() == "outside"

    assert seen and set(seen) == {"outside"}


@pytest.mark.parametrize("waits_first", [False, True])
async def test_a_failing_handler_is_logged_by_name_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture, waits_first: bool
) -> None:
    caplog.set_level(logging.ERROR, logger="miniagents")
    persisted: list[str] = []

    async def failing_store(promise: Promise[Any], message: Message) -> None:
        if waits_first:
            await asyncio.sleep(0)
        raise RuntimeError("the disk is full")

    async def store(promise: Promise[Any], message: Message) -> None:
        persisted.append(str(message))

    async with MiniAgents(on_persist_message=[failing_store, store]):
        await replier.inquire(n=2).aresolve_messages()

    assert {"reply 0", "reply 1"} <= set(persisted)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "failing_store" in logged and "the disk is full" in logged


async def test_a_handler_that_waits_gets_what_it_waited_for() -> None:
    results: list[Any] = []
    loop = asyncio.get_running_loop()

    async def store(promise: Promise[Any], message: Message) -> None:
        future = loop.create_future()
        loop.call_soon(future.set_result, str(message))
        results.append(await future)
        failing = loop.create_future()
        loop.call_soon(failing.set_exception, LookupError("no such row"))
        try:
            await failing
        except LookupError as exc:
            results.append(str(exc))

    async with MiniAgents(on_persist_message=store):
        await replier.inquire(n=1).aresolve_messages()

    assert "reply 0" in results
    assert results.count("no such row") == len(results) // 2
