"""
Cancellation semantics (acceptance 5): cancelling a consumer, cancelling an agent call, leaving the
context early, KeyboardInterrupt in `MiniAgents().run`. Each case runs 100 times in a row; each time
nothing may keep running unobserved, nothing may be left pending, and a partial stream ends with
PromiseCancelledError.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from queue import Queue
from typing import Any

import pytest

from miniagents import InteractionContext, Message, MessageSequencePromise, MiniAgents, miniagent
from miniagents.miniagents import AgentReplyNode, AgentTimeoutError
from miniagents.promising.errors import PromiseCancelledError
from miniagents.promising.promising import Promise

REPEAT = 100
TIMEOUT = 5.0
REPO_ROOT = Path(__file__).resolve().parents[1]


async def within(awaitable: Any, seconds: float = TIMEOUT) -> Any:
    """Fail instead of hanging."""
    return await asyncio.wait_for(awaitable, seconds)


def assert_nothing_pending() -> None:
    assert asyncio.all_tasks() == {asyncio.current_task()}, "a task is still pending"


async def aread_until_error(sequence: MessageSequencePromise) -> tuple[list[str], BaseException | None]:
    """The texts of a reply sequence up to its first error, and that error (None if it ended cleanly)."""
    texts = []
    try:
        async for message_promise in sequence:
            texts.append((await message_promise).text)
    except Exception as exc:
        return texts, exc
    return texts, None


class PersistedTexts:
    """An on_persist_message handler that remembers the texts of persisted messages (and reply nodes)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.reply_nodes: list[AgentReplyNode] = []

    async def __call__(self, promise: Promise[Any], message: Message) -> None:
        if isinstance(message, AgentReplyNode):
            self.reply_nodes.append(message)
        elif message.text is not None:
            self.texts.append(message.text)


async def acancel_consumer_once(start_asap: bool) -> None:
    release = asyncio.Event()
    finished: list[bool] = []

    @miniagent
    async def talker(ctx: InteractionContext) -> None:
        ctx.reply("one")
        await release.wait()
        ctx.reply("two")
        finished.append(True)

    persisted = PersistedTexts()
    async with MiniAgents(on_persist_message=persisted):
        replies = talker.inquire(start_asap=start_asap)
        first_read = asyncio.Event()

        async def consumer() -> None:
            async for message_promise in replies:
                await message_promise
                first_read.set()

        consuming = asyncio.create_task(consumer())
        await within(first_read.wait())
        consuming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consuming
        release.set()
        assert await within(aread_until_error(replies)) == (["one", "two"], None)
    assert_nothing_pending()
    assert finished == [True]
    assert sorted(persisted.texts) == ["one", "two"]


@pytest.mark.parametrize("start_asap", [True, False])
async def test_agent_and_other_consumer_carry_on_when_consumer_is_cancelled(start_asap: bool) -> None:
    for _ in range(REPEAT):
        await acancel_consumer_once(start_asap)


async def acancel_agent_call_once() -> None:
    replied = asyncio.Event()
    cleanups: list[str] = []

    @miniagent
    async def slow(ctx: InteractionContext) -> None:
        try:
            ctx.reply("one")
            ctx.reply("two")
            replied.set()
            await asyncio.Event().wait()
            ctx.reply("never")
        finally:
            cleanups.append("slow")

    persisted = PersistedTexts()
    async with MiniAgents(on_persist_message=persisted):
        call = slow.initiate_inquiry()
        replies = call.reply_sequence()
        await within(replied.wait())
        assert call.cancel() is True
        texts, error = await within(aread_until_error(replies))
        assert texts == ["one", "two"]
        assert isinstance(error, PromiseCancelledError) and "SLOW" in str(error)
        assert call.cancel() is False  # already finished
    assert_nothing_pending()
    assert cleanups == ["slow"]
    assert call.status == "failed"
    (reply_node,) = persisted.reply_nodes
    assert reply_node.error is not None and reply_node.error.startswith("PromiseCancelledError")
    assert [message.text for message in reply_node.replies] == ["one", "two"]


async def test_reply_sequence_ends_with_promise_cancelled_error_when_agent_call_is_cancelled() -> None:
    for _ in range(REPEAT):
        await acancel_agent_call_once()


async def acancel_caller_of_nested_call_once() -> None:
    child_streaming = asyncio.Event()
    never = asyncio.Event()
    cleanups: list[str] = []

    @miniagent
    async def child(ctx: InteractionContext) -> None:
        try:
            ctx.reply("child one")
            child_streaming.set()
            await never.wait()
        finally:
            cleanups.append("child")

    @miniagent
    async def parent(ctx: InteractionContext) -> None:
        ctx.reply("parent one")
        ctx.reply(child.inquire())
        await never.wait()

    async def arun() -> tuple[list[str], BaseException | None]:
        async with MiniAgents():
            call = parent.initiate_inquiry()
            replies = call.reply_sequence()
            await child_streaming.wait()
            call.cancel()
            return await aread_until_error(replies)

    try:
        texts, error = await within(arun(), 2)
    finally:
        never.set()  # let a leftover child end, so a failure here does not hang the test
    assert texts == ["parent one", "child one"]
    assert isinstance(error, PromiseCancelledError)
    assert cleanups == ["child"]
    assert_nothing_pending()


async def test_nested_call_stops_and_stream_is_cut_when_its_caller_is_cancelled() -> None:
    for _ in range(REPEAT):
        await acancel_caller_of_nested_call_once()


async def abreak_out_early_once() -> None:
    @miniagent
    async def counter(ctx: InteractionContext) -> None:
        for number in range(5):
            ctx.reply(f"reply {number}")
            await asyncio.sleep(0)

    persisted = PersistedTexts()
    async with MiniAgents(on_persist_message=persisted):
        replies = counter.inquire()
        async for message_promise in replies:
            assert (await message_promise).text == "reply 0"
            break
    assert_nothing_pending()
    assert sorted(persisted.texts) == [f"reply {number}" for number in range(5)]
    assert await within(aread_until_error(replies)) == ([f"reply {number}" for number in range(5)], None)


async def test_remaining_replies_are_produced_and_persisted_when_consumer_breaks_out_early() -> None:
    for _ in range(REPEAT):
        await abreak_out_early_once()


async def araise_in_body_once() -> None:
    cleaned_up: list[bool] = []

    @miniagent
    async def counter(ctx: InteractionContext) -> None:
        ctx.reply("reply 0")
        try:
            await asyncio.Event().wait()  # never finishes by itself
        finally:
            cleaned_up.append(True)

    persisted = PersistedTexts()
    replies: list[MessageSequencePromise] = []

    async def arun() -> None:
        async with MiniAgents(on_persist_message=persisted):
            replies.append(counter.inquire())
            async for _ in replies[0]:
                raise ValueError("the body failed")

    with pytest.raises(ValueError, match="the body failed"):
        await within(arun())
    assert_nothing_pending()
    assert cleaned_up == [True]
    assert persisted.texts == ["reply 0"]
    texts, error = await within(aread_until_error(replies[0]))
    assert texts == ["reply 0"]
    assert isinstance(error, PromiseCancelledError)


async def test_agents_are_cancelled_and_produced_replies_kept_when_async_with_body_raises() -> None:
    for _ in range(REPEAT):
        await araise_in_body_once()


async def araise_in_body_during_input_once() -> None:
    reading = asyncio.Event()

    @miniagent
    async def reader(ctx: InteractionContext) -> None:
        async for _ in ctx.messages:
            reading.set()
        ctx.reply("read everything")

    async def arun() -> None:
        async with MiniAgents():
            call = reader.initiate_inquiry()
            call.send_message("first of several inputs")
            await reading.wait()
            raise ValueError("the body failed before finishing the input")

    with pytest.raises(ValueError, match="before finishing the input"):
        await within(arun(), 2)
    assert_nothing_pending()


async def test_body_error_propagates_when_async_with_body_raises_while_agent_awaits_its_input() -> None:
    for _ in range(REPEAT):
        await araise_in_body_during_input_once()


async def acancel_body_once() -> None:
    streaming = asyncio.Event()
    cleanups: list[int] = []
    sequences: list[MessageSequencePromise] = []

    async def tokens(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "partial "
        streaming.set()
        await asyncio.Event().wait()
        yield "never"

    @miniagent
    async def streamer(ctx: InteractionContext, number: int) -> None:
        try:
            ctx.reply(f"agent {number} says")
            ctx.reply(Message.promise(message_token_streamer=tokens))
            await asyncio.Event().wait()
        finally:
            cleanups.append(number)

    async def body() -> None:
        async with MiniAgents():
            sequences.extend(streamer.inquire(number=number) for number in range(3))
            await asyncio.Event().wait()

    running = asyncio.create_task(body())
    await within(streaming.wait())
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(running)
    assert_nothing_pending()
    assert sorted(cleanups) == [0, 1, 2]
    for number, sequence in enumerate(sequences):
        message_promises = []
        with pytest.raises(PromiseCancelledError):
            async for message_promise in sequence:
                message_promises.append(message_promise)
        first, streamed = message_promises
        assert (await first).text == f"agent {number} says"
        with pytest.raises(PromiseCancelledError):
            async for token in streamed:
                assert token == "partial "


async def test_partial_streams_end_with_promise_cancelled_error_when_async_with_body_is_cancelled() -> None:
    for _ in range(REPEAT):
        await acancel_body_once()


async def atime_out_once() -> None:
    cleanups: list[str] = []

    @miniagent(call_timeout=0.001)
    async def sleepy(ctx: InteractionContext) -> None:
        try:
            ctx.reply("one")
            await asyncio.Event().wait()
        finally:
            cleanups.append("sleepy")

    async with MiniAgents():
        texts, error = await within(aread_until_error(sleepy.inquire()))
    assert texts == ["one"]
    assert isinstance(error, AgentTimeoutError) and "SLEEPY" in str(error)
    assert cleanups == ["sleepy"]
    assert_nothing_pending()


async def test_reply_sequence_ends_with_agent_timeout_error_when_call_times_out() -> None:
    for _ in range(REPEAT):
        await atime_out_once()


def test_run_exits_promptly_on_keyboard_interrupt_when_sigint_arrives_while_agents_run() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sigint_agents", "--iterations", str(REPEAT)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: Queue[str] = Queue()

    def read_lines() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.put(line.strip())
        lines.put("")

    threading.Thread(target=read_lines, daemon=True).start()
    try:
        for iteration in range(REPEAT):
            assert lines.get(timeout=30) == f"ready {iteration}"
            os.kill(process.pid, signal.SIGINT)
            # every agent saw its cancellation, every partial stream ends with PromiseCancelledError
            ending = "PromiseCancelledError PromiseCancelledError"  # of the reply sequences, of the token streams
            assert lines.get(timeout=10) == f"interrupted {iteration} 5 {ending}"  # bounded: nothing hangs
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()  # type: ignore[union-attr]
    assert "Task was destroyed but it is pending" not in stderr
    assert "never retrieved" not in stderr
    assert "never awaited" not in stderr
    assert stderr == ""
