"""
Observers (on_agent_call, call done callbacks, on_promise_resolved, on_persist_message) follow one policy: an
observer that raises is logged with its name and never breaks the caller, the agent or the other observers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from miniagents import AgentCall, InteractionContext, Message, MiniAgents, Promise, miniagent


@miniagent
async def echo(ctx: InteractionContext) -> None:
    ctx.reply([f"echo: {message.text}" for message in await ctx.messages.aresolve_messages()])


def broken_call_observer(call: AgentCall) -> None:
    raise RuntimeError("the call observer is broken")


async def broken_resolution_observer(promise: Promise[Any], result: Any) -> None:
    raise RuntimeError("the resolution observer is broken")


async def broken_persistence_observer(promise: Promise[Any], message: Message) -> None:
    raise RuntimeError("the persistence observer is broken")


async def test_raising_observers_are_logged_by_name_and_change_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    persisted: list[str] = []
    calls: list[str] = []
    done: list[str] = []

    async def persist(promise: Promise[Any], message: Message) -> None:
        persisted.append(str(message))

    async with MiniAgents(
        on_agent_call=[broken_call_observer, lambda call: calls.append(call.agent.alias)],
        on_promise_resolved=broken_resolution_observer,
        on_persist_message=[broken_persistence_observer, persist],
    ):
        call = echo.initiate_inquiry().send_message("hi")
        call.add_done_callback(lambda _: 1 / 0)
        call.add_done_callback(lambda each: done.append(each.status))
        replies = await asyncio.wait_for(call.reply_sequence().aresolve_messages(), 5)

    assert [message.text for message in replies] == ["echo: hi"]
    assert calls == ["ECHO"]
    assert done == ["finished"]
    assert "echo: hi" in persisted and "hi" in persisted
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for name in ("broken_call_observer", "broken_resolution_observer", "broken_persistence_observer", "<lambda>"):
        assert name in logged


async def test_a_shared_message_is_persisted_once_per_context() -> None:
    shared = Message("shared")
    persisted: dict[str, list[Message]] = {"a": [], "b": []}

    def persist_into(name: str) -> Any:
        async def persist(promise: Promise[Any], message: Message) -> None:
            if message is shared:
                persisted[name].append(message)

        return persist

    @miniagent
    async def replies_shared(ctx: InteractionContext) -> None:
        ctx.reply(shared)

    async def arun(name: str) -> None:
        async with MiniAgents(on_persist_message=persist_into(name)):
            await asyncio.gather(*(replies_shared.inquire().aresolve_messages() for _ in range(100)))

    await asyncio.gather(arun("a"), arun("b"))  # two contexts at the same time, one message instance
    assert len(persisted["a"]) == 1
    assert len(persisted["b"]) == 1


@pytest.mark.parametrize("kind", ["on_persist_message", "on_promise_resolved"])
def test_registering_a_synchronous_handler_for_an_async_hook_names_it(kind: str) -> None:
    def sync_handler(promise: Promise[Any], message: Any) -> None: ...

    with pytest.raises(TypeError, match="sync_handler"):
        MiniAgents(**{kind: sync_handler})
    with pytest.raises(TypeError, match="sync_handler"):
        getattr(MiniAgents(), kind)(sync_handler)


def test_registering_a_non_callable_handler_names_its_type() -> None:
    with pytest.raises(TypeError, match="int"):
        MiniAgents(on_agent_call=42)


async def test_a_huge_error_message_is_truncated_in_the_observer_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="miniagents")

    def huge(call: AgentCall) -> None:
        raise ValueError("x" * 100_000)

    async with MiniAgents(on_agent_call=huge):
        await asyncio.wait_for(echo.inquire("hi").aresolve_messages(), 5)
    [record] = [record for record in caplog.records if "huge" in record.getMessage()]
    assert len(record.getMessage()) < 3000


async def test_observers_of_a_parent_context_see_calls_of_a_nested_one() -> None:
    seen: list[str] = []
    async with MiniAgents(on_agent_call=lambda call: seen.append(f"outer:{call.agent.alias}")):
        async with MiniAgents(on_agent_call=lambda call: seen.append(f"inner:{call.agent.alias}")):
            await asyncio.wait_for(echo.inquire("hi").aresolve_messages(), 5)
    assert seen == ["inner:ECHO", "outer:ECHO"]
