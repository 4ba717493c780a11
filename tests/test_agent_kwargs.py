"""Kwargs bound to an agent (`@miniagent(x=...)`, `fork(x=...)`) versus kwargs given at call time."""

from __future__ import annotations

import asyncio

from miniagents import InteractionContext, MiniAgents, miniagent


@miniagent(model="bound")
async def echo_model(ctx: InteractionContext, model: str) -> None:
    ctx.reply(model)


async def texts(agent_replies: object) -> list[str]:
    return [m.text for m in await asyncio.wait_for(agent_replies.aresolve_messages(), 5)]  # type: ignore[attr-defined]


async def test_call_time_kwarg_overrides_bound_kwarg_when_both_given() -> None:
    async with MiniAgents():
        assert await texts(echo_model.inquire(model="call time")) == ["call time"]


async def test_bound_kwarg_applies_when_call_gives_none() -> None:
    async with MiniAgents():
        assert await texts(echo_model.inquire()) == ["bound"]


async def test_call_time_kwarg_overrides_forked_kwarg_when_both_given() -> None:
    async with MiniAgents():
        forked = echo_model.fork(model="forked")
        assert await texts(forked.inquire()) == ["forked"]
        assert await texts(forked.inquire(model="call time")) == ["call time"]
