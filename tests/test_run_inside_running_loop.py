"""`MiniAgents().run()` called while an event loop is already running (a Jupyter cell, an async app)."""

from __future__ import annotations

import asyncio

import pytest

from miniagents import InteractionContext, MiniAgents, miniagent


@miniagent
async def hello(ctx: InteractionContext) -> None:
    ctx.reply("hello")


async def test_script_style_run_works_when_a_loop_is_already_running() -> None:
    async def main() -> list[str]:
        return [message.text for message in await hello.inquire().aresolve_messages()]

    async with MiniAgents():  # like an activated notebook: a context on the running loop
        assert MiniAgents().run(main()) == ["hello"]


async def test_run_refuses_a_promise_of_the_running_loop_instead_of_hanging() -> None:
    async with MiniAgents():
        replies = hello.inquire()
        with pytest.raises(RuntimeError, match="`await` it directly"):
            MiniAgents().run(replies.aresolve_messages())
        with pytest.raises(RuntimeError, match="MessageSequencePromise"):
            MiniAgents().run(replies)
        assert [m.text for m in await asyncio.wait_for(replies.aresolve_messages(), 5)] == ["hello"]


async def test_the_readme_one_liner_works_in_a_running_loop_without_a_context() -> None:
    # a notebook cell that was never activated: `MiniAgents().run(agent.inquire(...).aresolve_messages())`,
    # the agent called before any context is active (the call is made inside run()'s context)
    assert [message.text for message in MiniAgents().run(hello.inquire().aresolve_messages())] == ["hello"]
