"""
Every task has an owner: cancelling a call (or leaving a context after an error or an interrupt) ends every
stream it owns with PromiseCancelledError, started or not, on every supported Python. Each scenario is
looped REPEAT times: the bugs these guard against were races on when a task takes its first step.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from typing import Any

import pytest

from miniagents import InteractionContext, MessageSequencePromise, MiniAgents, PromiseCancelledError, miniagent
from miniagents.ext.llm.offline import create_offline_agent
from miniagents.promising.ownership import TaskOwner

REPEAT = 100
TIMEOUT = 5


async def within(awaitable: Any, seconds: float = TIMEOUT) -> Any:
    """Fail instead of hanging."""
    return await asyncio.wait_for(awaitable, seconds)


async def aread_until_error(sequence: MessageSequencePromise) -> tuple[list[str], BaseException | None]:
    texts = []
    try:
        async for message_promise in sequence:
            texts.append((await message_promise).text)
    except Exception as exc:
        return texts, exc
    return texts, None


@miniagent
async def worker(ctx: InteractionContext, started: list[bool]) -> None:
    started.append(True)
    ctx.reply("work")


async def test_cancel_before_first_step_ends_the_reply_sequence_with_promise_cancelled_error() -> None:
    for _ in range(REPEAT):
        started: list[bool] = []
        async with MiniAgents():
            call = worker.fork(started=started).initiate_inquiry()
            replies = call.reply_sequence()
            assert call.status == "pending"
            assert call.cancel()
            texts, error = await within(aread_until_error(replies))
        assert texts == []
        assert isinstance(error, PromiseCancelledError)
        assert started == []  # the function never ran
        assert call.status == "failed"


async def test_an_agent_task_cancelled_from_outside_before_its_first_step_still_ends_its_call() -> None:
    # an agent's task reports its own end from its body (no done callback per call); one cancelled by somebody
    # else before its body ran (e.g. asyncio.run() shutting down) is ended by the context's exit, which never hangs

    async def one_run() -> None:
        started: list[bool] = []
        async with MiniAgents() as context:
            call = worker.fork(started=started).initiate_inquiry()
            replies = call.reply_sequence()
            (task,) = [task for task, owner in context.tasks_in_flight.items() if owner is call]
            assert task.cancel()  # not through the call: nothing of ours sees it happen
        assert started == []  # the function never ran
        assert call.status == "failed" and not context.tasks_in_flight
        texts, error = await aread_until_error(replies)
        assert texts == [] and isinstance(error, PromiseCancelledError)

    for _ in range(REPEAT):
        await within(one_run())


async def test_agent_tasks_leave_the_context_s_count_as_they_end() -> None:
    async with MiniAgents() as context:
        calls = [worker.fork(started=[]).initiate_inquiry().finish() for _ in range(50)]
        assert len(context.tasks_in_flight) >= 50
        for call in calls:
            await within(call.replies.aresolve_messages())
        await asyncio.sleep(0)
        assert all(call.status == "finished" for call in calls)
        assert not [owner for owner in context.tasks_in_flight.values() if owner in calls]


async def test_cancel_of_a_lazy_call_nobody_consumed_ends_its_replies() -> None:
    for _ in range(REPEAT):
        started: list[bool] = []
        async with MiniAgents():
            call = worker.fork(started=started).initiate_inquiry(start_asap=False)
            replies = call.reply_sequence()
            assert call.cancel()
            texts, error = await within(aread_until_error(replies))
        assert (texts, started) == ([], [])
        assert isinstance(error, PromiseCancelledError)


async def test_keyboard_interrupt_before_agents_start_leaves_no_sequence_open() -> None:
    for _ in range(REPEAT):
        started: list[bool] = []
        made: list[MessageSequencePromise] = []
        with pytest.raises(KeyboardInterrupt):
            async with MiniAgents():
                made.append(worker.fork(started=started).inquire())
                made.append(worker.fork(started=started).inquire("with input"))
                raise KeyboardInterrupt
        assert started == []
        async with MiniAgents():  # read in a new context, as the reproduction does
            for replies in made:
                with pytest.raises(PromiseCancelledError):
                    await within(replies.aresolve_messages())


async def acancel_llm_after_ten_tokens(llm: Any) -> tuple[list[str], BaseException | None]:
    tokens: list[str] = []
    async with MiniAgents():
        call = llm.initiate_inquiry().send_message("go")
        async for message_promise in call.reply_sequence():
            try:
                async for token in message_promise:
                    tokens.append(token)
                    if len(tokens) == 10:
                        call.cancel()
            except PromiseCancelledError as exc:
                return tokens, exc
    return tokens, None


async def test_cancel_of_an_llm_call_mid_stream_stops_its_stream_within_a_few_tokens() -> None:
    llm = create_offline_agent(reply_function=lambda _: " ".join(f"w{i}" for i in range(400)), token_delay=0.0005)
    for _ in range(REPEAT):
        tokens, error = await within(acancel_llm_after_ten_tokens(llm))
        assert isinstance(error, PromiseCancelledError)
        assert 10 <= len(tokens) <= 13  # the stream was cut right there, not after all 400


async def acancel_parent_once() -> None:
    cleaned_up: list[str] = []
    child_running = asyncio.Event()

    @miniagent
    async def child(ctx: InteractionContext) -> None:
        ctx.reply("child started")
        child_running.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.append("child")

    @miniagent
    async def parent(ctx: InteractionContext) -> None:
        ctx.reply(child.inquire())  # the parent returns at once; its child keeps streaming into its replies

    async with MiniAgents():
        call = parent.initiate_inquiry()
        replies = call.reply_sequence()
        await within(child_running.wait())
        assert call.cancel()
        texts, error = await within(aread_until_error(replies))
    assert texts == ["child started"]
    assert isinstance(error, PromiseCancelledError)
    assert cleaned_up == ["child"]


async def test_cancelling_a_call_cancels_the_calls_it_made_and_their_streams() -> None:
    for _ in range(REPEAT):
        await acancel_parent_once()


def _interrupt_main_thread_when(event: threading.Event) -> threading.Thread:
    def interrupt() -> None:
        if event.wait(TIMEOUT):
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    return thread


def interrupt_run_once() -> None:
    agent_started = threading.Event()
    cleaned_up: list[bool] = []

    @miniagent
    async def forever(ctx: InteractionContext) -> None:
        ctx.reply("started")
        agent_started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned_up.append(True)

    async def main() -> None:
        await forever.inquire().aresolve_messages()

    interrupter = _interrupt_main_thread_when(agent_started)
    with pytest.raises(KeyboardInterrupt):
        MiniAgents().run(main())  # blocks this (running) loop: it runs on its own loop in a worker thread
    interrupter.join(TIMEOUT)
    assert cleaned_up == [True]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_interrupting_run_inside_a_running_loop_cancels_its_agents(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")
    for _ in range(REPEAT):
        interrupt_run_once()
    gc.collect()
    assert not [record for record in caplog.records if "destroyed but it is pending" in record.getMessage()]


async def anested_run_once(slow: Any) -> None:
    async with MiniAgents():
        outer = slow.inquire("go")

        async def main() -> Any:
            return await outer.aresolve_messages()

        @miniagent
        async def runs_nested(ctx: InteractionContext) -> None:
            ctx.reply(MiniAgents().run(main()))

        with pytest.raises(RuntimeError, match="not the one running here"):
            await within(runs_nested.inquire().aresolve_messages())
        assert [m.text for m in await within(outer.aresolve_messages())] == ["a b c d e f"]


async def test_nested_run_on_a_still_streaming_outer_promise_raises_instead_of_deadlocking() -> None:
    slow = create_offline_agent(reply_function=lambda _: "a b c d e f", token_delay=0.01)
    for _ in range(REPEAT // 10):  # each round blocks the loop on purpose; the error is immediate anyway
        await anested_run_once(slow)


async def test_ownership_tree_releases_finished_calls() -> None:
    async with MiniAgents() as context:
        replies = [worker.fork(started=[]).inquire() for _ in range(50)]
        for each in replies:
            await within(each.aresolve_messages())
        await context.aflush_tasks()
        root: TaskOwner = context.root_owner  # type: ignore[attr-defined]
        assert root.children() == ()
        assert root.running_tasks() == ()
