"""Acceptance tests for agents (SPEC 3.9 and 3.4a): the seeds' examples, MiniAgents, @miniagent,
agent calls, InteractionContext, scheduling, errors, the interaction graph and MessageSequence."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from miniagents import (
    InteractionContext,
    Message,
    MessagePromise,
    MessageSequencePromise,
    MiniAgent,
    MiniAgents,
    miniagent,
)
from miniagents.miniagents import AgentCall, AgentCallNode, AgentReplyNode, MessageSequence
from miniagents.promising.errors import PromiseCancelledError
from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.promising import Promise, StreamAppender

TIMEOUT = 5.0
REPO_ROOT = Path(__file__).resolve().parents[1]

# The usage examples of the two seed READMEs, copied verbatim.

SEED_CONVERSATION_EXAMPLE = """\
from miniagents.ext.chat_history_md import ChatHistoryMD
from miniagents.ext.console_user_agent import create_console_user_agent
from miniagents.ext.llm.openai import create_openai_agent
from miniagents.miniagents import MiniAgents
from miniagents.utils import adialog_loop

async def amain() -> None:
    chat_history = ChatHistoryMD("CHAT.md")
    try:
        await adialog_loop(
            user_agent=create_console_user_agent(chat_history=chat_history),
            assistant_agent=create_openai_agent(model="gpt-4o-2024-05-13"),
        )
    except KeyboardInterrupt:
        print()

if __name__ == "__main__":
    MiniAgents().run(amain())
"""

SEED_AGENTS_EXAMPLE = """\
from miniagents import miniagent, MiniAgents, InteractionContext

@miniagent
async def agent1(ctx: InteractionContext):
    ctx.reply("Hello from Agent 1!")

@miniagent
async def agent2(ctx: InteractionContext):
    message = await ctx.messages.aresolve_messages()
    ctx.reply(f"Agent 2 received: {message[0].text}")

async def main():
    async with MiniAgents():
        agent2_replies = agent2.inquire(agent1.inquire())
        print(await agent2_replies.aresolve_messages())

asyncio.run(main())
"""


async def within(awaitable: Any, seconds: float = TIMEOUT) -> Any:
    """Fail instead of hanging."""
    return await asyncio.wait_for(awaitable, seconds)


async def texts_of(sequence: MessageSequencePromise) -> list[str]:
    return [message.text for message in await within(sequence.aresolve_messages())]


async def consume_until_error(sequence: MessageSequencePromise) -> tuple[list[str], BaseException | None]:
    """The texts a consumer iterating `sequence` receives, and the error that ended the iteration."""

    async def consume() -> tuple[list[str], BaseException | None]:
        texts: list[str] = []
        try:
            async for message_promise in sequence:
                texts.append(str(await message_promise))
        except Exception as exc:
            return texts, exc
        return texts, None

    return await within(consume())


def other_tasks() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current and not task.done()}


# =============================================================================== seeds


def test_seed_agents_example_prints_exactly_what_the_seed_shows() -> None:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        # the seed's snippet uses asyncio without importing it; everything else runs as written
        exec(
            compile(SEED_AGENTS_EXAMPLE, "seed_agents_example.py", "exec"), {"__name__": "__main__", "asyncio": asyncio}
        )
    assert stdout.getvalue() == "(Message(text='Agent 2 received: Hello from Agent 1!'),)\n"


def test_seed_conversation_example_chats_with_openai_until_ctrl_c(tmp_path: Path) -> None:
    import pexpect

    sys.path.insert(0, str(REPO_ROOT / "tests"))
    try:
        from support.llm_wire_server import LLMWireServer, Reply
    finally:
        sys.path.remove(str(REPO_ROOT / "tests"))

    script = tmp_path / "conversation.py"
    script.write_text(SEED_CONVERSATION_EXAMPLE, encoding="utf-8")
    with LLMWireServer() as server:
        server.enqueue(Reply(tokens=["Bonjour", " from", " the", " wire"]))
        env = {
            **os.environ,
            "OPENAI_BASE_URL": server.openai_base_url,
            "OPENAI_API_KEY": "test-key",
            "PYTHONPATH": str(REPO_ROOT),
            "TERM": "xterm-256color",
            "PROMPT_TOOLKIT_NO_CPR": "1",
            "NO_COLOR": "1",
        }
        transcript = io.StringIO()
        child = pexpect.spawn(
            sys.executable,
            [str(script)],
            cwd=str(tmp_path),
            env=env,
            encoding="utf-8",
            timeout=20,
            dimensions=(40, 200),
        )
        child.logfile_read = transcript
        try:
            child.expect(r"\S")  # the console agent is up and prompting
            child.send("Hello from the test\r")
            child.expect("Bonjour from the wire")
            child.sendcontrol("c")
            child.expect(pexpect.EOF)
        except (pexpect.EOF, pexpect.TIMEOUT):
            pytest.fail(f"the seed example did not run as a chat; its terminal showed:\n{transcript.getvalue()}")
        finally:
            child.close(force=True)
        output = transcript.getvalue()
        assert child.exitstatus == 0, output
        assert "Traceback" not in output, output
        assert server.requests, "the OpenAI agent never called the (fake) OpenAI API"
        request_body = server.requests[0].body
    assert request_body["model"] == "gpt-4o-2024-05-13"
    assert "Hello from the test" in str(request_body["messages"])
    chat = (tmp_path / "CHAT.md").read_text(encoding="utf-8")
    assert "Hello from the test" in chat
    assert "Bonjour from the wire" in chat


def test_core_names_import_from_package_root() -> None:
    import miniagents

    names = [
        "miniagent",
        "MiniAgents",
        "InteractionContext",
        "Message",
        "MessagePromise",
        "MessageSequencePromise",
        "MiniAgent",
    ]
    assert all(hasattr(miniagents, name) for name in names)
    assert isinstance(miniagent(_echo_function), MiniAgent)


async def _echo_function(ctx: InteractionContext, **_: Any) -> None:
    ctx.reply(ctx.messages)


# ============================================================================= MiniAgents


def test_run_from_sync_code_returns_the_awaitable_result() -> None:
    @miniagent
    async def greeter(ctx: InteractionContext) -> None:
        ctx.reply("hello from run")

    async def amain() -> list[str]:
        return await texts_of(greeter.inquire())

    assert MiniAgents().run(amain()) == ["hello from run"]


async def test_run_works_inside_a_running_event_loop() -> None:
    @miniagent
    async def greeter(ctx: InteractionContext) -> None:
        ctx.reply("hello inside a loop")

    async def amain() -> list[str]:
        return await texts_of(greeter.inquire())

    assert MiniAgents().run(amain()) == ["hello inside a loop"]


async def test_arun_runs_awaitable_inside_the_context() -> None:
    seen: list[Any] = []

    async def amain() -> str:
        seen.append(MiniAgents.get_current())
        return "done"

    context = MiniAgents()
    assert await within(context.arun(amain())) == "done"
    assert seen == [context]


async def test_on_persist_message_receives_resolved_message() -> None:
    persisted: list[Message] = []

    async def persist(_: Any, message: Message) -> None:
        persisted.append(message)

    message = Message("persist me")
    async with MiniAgents(on_persist_message=persist):
        await within(message.as_promise)
    assert persisted == [message]
    assert persisted[0] is message


async def test_on_persist_message_decorator_registers_handler() -> None:
    persisted: list[Message] = []
    context = MiniAgents()

    @context.on_persist_message
    async def persist(_: Any, message: Message) -> None:
        persisted.append(message)

    async with context:
        await within(Message("decorated").as_promise)
    assert [m.text for m in persisted] == ["decorated"]


async def test_on_persist_message_once_for_same_instance_through_two_promises() -> None:
    persisted: list[Message] = []

    async def persist(_: Any, message: Message) -> None:
        persisted.append(message)

    message = Message("shared")

    async def resolver(_: Promise[Message]) -> Message:
        return message

    async with MiniAgents(on_persist_message=persist):
        await within(message.as_promise)
        await within(Promise(resolver=resolver))
        await within(Promise(prefill_result=message))
    assert len([m for m in persisted if m is message]) == 1


async def test_on_persist_message_twice_for_two_equal_distinct_instances() -> None:
    persisted: list[Message] = []

    async def persist(_: Any, message: Message) -> None:
        persisted.append(message)

    first, second = Message("equal"), Message("equal")
    async with MiniAgents(on_persist_message=persist):
        await within(first.as_promise)
        await within(second.as_promise)
    assert len(persisted) == 2
    assert persisted[0] is first
    assert persisted[1] is second


async def test_on_persist_message_persists_streamed_message_once() -> None:
    persisted: list[Message] = []

    async def persist(_: Any, message: Message) -> None:
        persisted.append(message)

    async def streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        yield "stre"
        yield "amed"

    async with MiniAgents(on_persist_message=persist):
        promise = Message.promise(message_token_streamer=streamer)
        message = await within(promise)
        await within(promise)
    assert persisted == [message]


async def test_on_persist_message_gets_sub_messages_before_their_parent() -> None:
    persisted: list[Message] = []

    async def persist(_: Any, message: Message) -> None:
        persisted.append(message)

    grandchild = Message("grandchild")
    child = Message("child", origin=grandchild)
    sibling = Message("sibling")
    parent = Message("parent", child=child, others=[sibling])
    async with MiniAgents(on_persist_message=persist):
        await within(parent.as_promise)
    assert [m.text for m in persisted] == ["grandchild", "child", "sibling", "parent"]
    assert persisted[0] is grandchild


async def test_on_persist_message_skips_sub_message_persisted_earlier() -> None:
    persisted: list[Message] = []

    async def persist(_: Any, message: Message) -> None:
        persisted.append(message)

    child = Message("child")
    async with MiniAgents(on_persist_message=persist):
        await within(child.as_promise)
        await within(Message("parent", child=child).as_promise)
    assert [m.text for m in persisted] == ["child", "parent"]


async def test_on_persist_message_never_gets_non_messages() -> None:
    received: list[Any] = []

    async def persist(_: Any, value: Any) -> None:
        received.append(value)

    async def text_resolver(_: Promise[str]) -> str:
        return "a plain string"

    async with MiniAgents(on_persist_message=persist):
        await within(Promise(prefill_result=42))
        await within(Promise(resolver=text_resolver))
        await within(Promise(prefill_result=Frozen(text="frozen but not a message")))
        await within(MessageSequence.turn_into_sequence_promise(["m"]))
    assert received
    assert all(isinstance(value, Message) for value in received)


async def test_on_persist_message_of_later_context_gets_message_replied_in_it() -> None:
    shared = Message("defined once, e.g. a system prompt at module level")

    @miniagent
    async def replies_shared(ctx: InteractionContext) -> None:
        ctx.reply(shared)

    persisted_per_run: list[list[Message]] = []
    for _ in range(2):
        persisted: list[Message] = []

        async def persist(_: Any, message: Message, persisted: list[Message] = persisted) -> None:
            persisted.append(message)

        async with MiniAgents(on_persist_message=persist):
            assert await texts_of(replies_shared.inquire()) == [shared.text]
        persisted_per_run.append(persisted)
    assert [len([m for m in run if m is shared]) for run in persisted_per_run] == [1, 1]


async def test_on_promise_resolved_handler_gets_promise_and_result_once() -> None:
    resolved: list[tuple[Any, Any]] = []

    async def on_resolved(promise: Any, result: Any) -> None:
        resolved.append((promise, result))

    async with MiniAgents(on_promise_resolved=on_resolved):
        promise = Promise(prefill_result=42)
        await within(promise)
        await within(promise)
    assert [pair for pair in resolved if pair[0] is promise] == [(promise, 42)]


async def test_on_promise_resolved_handler_sees_message_promise_results() -> None:
    resolved: list[Any] = []
    context = MiniAgents()

    @context.on_promise_resolved
    async def on_resolved(_: Any, result: Any) -> None:
        resolved.append(result)

    message = Message("seen")
    async with context:
        await within(message.as_promise)
    assert any(result is message for result in resolved)


# ========================================================================= @miniagent


def test_miniagent_bare_decorator_returns_miniagent_with_upper_cased_alias() -> None:
    @miniagent
    async def my_agent(ctx: InteractionContext) -> None:
        pass

    assert isinstance(my_agent, MiniAgent)
    assert my_agent.alias == "MY_AGENT"


def test_miniagent_decorator_with_arguments_sets_alias_and_description() -> None:
    @miniagent(alias="Custom", description="Does custom things.")
    async def my_agent(ctx: InteractionContext) -> None:
        pass

    assert isinstance(my_agent, MiniAgent)
    assert (my_agent.alias, my_agent.description) == ("Custom", "Does custom things.")


def test_miniagent_called_on_function_returns_miniagent() -> None:
    async def plain(ctx: InteractionContext) -> None:
        pass

    agent = miniagent(plain)
    assert isinstance(agent, MiniAgent)
    assert agent.alias == "PLAIN"


def test_miniagent_keeps_function_name_when_not_upper_casing() -> None:
    @miniagent(uppercase_func_name=False)
    async def my_agent(ctx: InteractionContext) -> None:
        pass

    assert my_agent.alias == "my_agent"


def test_description_defaults_to_docstring_with_normalised_whitespace() -> None:
    @miniagent
    async def documented(ctx: InteractionContext) -> None:
        """
        Answers   questions

            about\tthings.
        """

    assert documented.description == "Answers questions about things."


def test_description_replaces_agent_alias_placeholder_from_docstring() -> None:
    @miniagent
    async def helper(ctx: InteractionContext) -> None:
        """I am {AGENT_ALIAS}, ask {AGENT_ALIAS}."""

    assert helper.description == "I am HELPER, ask HELPER."


def test_description_replaces_agent_alias_placeholder_in_explicit_description() -> None:
    @miniagent(alias="BOT", description="{AGENT_ALIAS} answers.")
    async def helper(ctx: InteractionContext) -> None:
        pass

    assert helper.description == "BOT answers."


def test_agent_exposes_name_and_doc() -> None:
    @miniagent
    async def named(ctx: InteractionContext) -> None:
        """The {AGENT_ALIAS} agent."""

    assert named.__name__ == named.alias == "NAMED"
    assert named.__doc__ == named.description == "The NAMED agent."


async def test_partial_kwargs_may_be_non_serialisable_objects() -> None:
    client = object()
    received: list[Any] = []

    @miniagent(client=client)
    async def uses_client(ctx: InteractionContext, client: Any) -> None:
        received.append(client)
        ctx.reply("used")

    async with MiniAgents():
        assert await texts_of(uses_client.inquire()) == ["used"]
    assert received == [client]
    assert received[0] is client


async def test_function_kwargs_reach_the_agent_function() -> None:
    @miniagent
    async def greeter(ctx: InteractionContext, greeting: str, times: int = 1) -> None:
        ctx.reply(greeting * times)

    async with MiniAgents():
        assert await texts_of(greeter.inquire(greeting="hi", times=2)) == ["hihi"]


async def test_agent_function_receives_context_as_first_positional_argument() -> None:
    received: list[Any] = []

    async def oddly_named(whatever_it_is_called: Any, /, **kwargs: Any) -> None:
        received.append(whatever_it_is_called)
        whatever_it_is_called.reply("ok")

    agent = miniagent(oddly_named)
    async with MiniAgents():
        assert await texts_of(agent.inquire(extra=1)) == ["ok"]
    assert isinstance(received[0], InteractionContext)


# =============================================================================== fork


async def test_fork_overrides_bound_kwargs() -> None:
    @miniagent(greeting="hi", name="Ann")
    async def greeter(ctx: InteractionContext, greeting: str, name: str) -> None:
        ctx.reply(f"{greeting} {name}")

    forked = greeter.fork(alias="FORKED", greeting="bye")
    async with MiniAgents():
        assert await texts_of(forked.inquire()) == ["bye Ann"]
        assert await texts_of(greeter.inquire()) == ["hi Ann"]
    assert forked.alias == "FORKED"
    assert greeter.alias == "GREETER"


async def test_fork_later_values_override_earlier_forks() -> None:
    @miniagent(value=1)
    async def show(ctx: InteractionContext, value: int) -> None:
        ctx.reply(str(value))

    async with MiniAgents():
        assert await texts_of(show.fork(value=2).fork(value=3).inquire()) == ["3"]


def test_fork_keeps_alias_and_description_when_not_given() -> None:
    @miniagent(description="Original description.")
    async def original(ctx: InteractionContext, x: int = 0) -> None:
        pass

    forked = original.fork(x=5)
    assert isinstance(forked, MiniAgent)
    assert forked is not original
    assert (forked.alias, forked.description) == ("ORIGINAL", "Original description.")


def test_fork_with_new_alias_replaces_alias_placeholder_in_docstring_description() -> None:
    @miniagent
    async def original(ctx: InteractionContext) -> None:
        """I am {AGENT_ALIAS}."""

    assert original.description == "I am ORIGINAL."
    assert original.fork(alias="RENAMED").description == "I am RENAMED."


# ============================================================================ inquire


async def test_inquire_returns_sequence_promise_before_agent_starts() -> None:
    started = asyncio.Event()

    @miniagent
    async def slow(ctx: InteractionContext) -> None:
        started.set()
        ctx.reply("done")

    async with MiniAgents():
        replies = slow.inquire("input")
        assert isinstance(replies, MessageSequencePromise)
        assert not started.is_set()
        assert await texts_of(replies) == ["done"]


async def test_inquire_starts_agent_at_next_task_switch() -> None:
    started = asyncio.Event()

    @miniagent
    async def eager(ctx: InteractionContext) -> None:
        started.set()

    async with MiniAgents():
        eager.inquire()
        assert not started.is_set()
        await asyncio.sleep(0)
        assert started.is_set()


async def test_inquire_passes_other_agents_replies_without_waiting_for_them() -> None:
    gate = asyncio.Event()
    second_got_first_message = asyncio.Event()

    @miniagent
    async def producer(ctx: InteractionContext) -> None:
        ctx.reply("first")
        await gate.wait()
        ctx.reply("second")

    @miniagent
    async def consumer(ctx: InteractionContext) -> None:
        async for message_promise in ctx.messages:
            ctx.reply(f"got {await message_promise}")
            second_got_first_message.set()

    async with MiniAgents():
        replies = consumer.inquire(producer.inquire())
        await within(second_got_first_message.wait())  # the producer is still blocked on the gate
        assert not gate.is_set()
        gate.set()
        assert await texts_of(replies) == ["got first", "got second"]


async def test_agent_receives_input_messages_in_order() -> None:
    @miniagent
    async def echo(ctx: InteractionContext) -> None:
        ctx.reply([f"echo {m.text}" for m in await ctx.messages.aresolve_messages()])

    async with MiniAgents():
        assert await texts_of(echo.inquire(["a", Message("b"), {"text": "c"}])) == ["echo a", "echo b", "echo c"]


async def test_initiate_inquiry_send_message_is_chainable() -> None:
    @miniagent
    async def echo(ctx: InteractionContext, prefix: str) -> None:
        ctx.reply([f"{prefix}{m.text}" for m in await ctx.messages.aresolve_messages()])

    async with MiniAgents():
        call = echo.initiate_inquiry(prefix="> ")
        assert isinstance(call, AgentCall)
        assert call.send_message("a") is call
        call.send_message("b").send_message(["c", "d"])
        assert await texts_of(call.reply_sequence()) == ["> a", "> b", "> c", "> d"]


async def test_initiate_inquiry_finish_returns_call_and_ends_input() -> None:
    @miniagent
    async def counter(ctx: InteractionContext) -> None:
        ctx.reply(f"{len(await ctx.messages.aresolve_messages())} messages")

    async with MiniAgents():
        call = counter.initiate_inquiry()
        call.send_message("only one")
        assert call.finish() is call
        assert await texts_of(call.reply_sequence()) == ["1 messages"]


async def test_initiate_inquiry_agent_streams_input_sent_later() -> None:
    first_seen = asyncio.Event()

    @miniagent
    async def reader(ctx: InteractionContext) -> None:
        async for message_promise in ctx.messages:
            ctx.reply(f"read {await message_promise}")
            first_seen.set()

    async with MiniAgents():
        call = reader.initiate_inquiry().send_message("one")
        await within(first_seen.wait())
        call.send_message("two")
        assert await texts_of(call.reply_sequence()) == ["read one", "read two"]


async def test_send_message_after_reply_sequence_raises_clear_error() -> None:
    @miniagent
    async def listener(ctx: InteractionContext) -> None:
        ctx.reply(ctx.messages)

    async with MiniAgents():
        call = listener.initiate_inquiry().send_message("on time")
        replies = call.reply_sequence()
        with pytest.raises(Exception, match="LISTENER"):
            call.send_message("too late")
        assert await texts_of(replies) == ["on time"]


# ================================================================= InteractionContext


async def test_this_agent_is_the_called_agent() -> None:
    seen: list[MiniAgent] = []

    @miniagent
    async def me(ctx: InteractionContext) -> None:
        seen.append(ctx.this_agent)
        ctx.reply(ctx.this_agent.alias)

    forked = me.fork(alias="FORKED_ME")
    async with MiniAgents():
        assert await texts_of(me.inquire()) == ["ME"]
        assert await texts_of(forked.inquire()) == ["FORKED_ME"]
    assert seen[0] is me
    assert seen[1] is forked


async def test_ctx_messages_is_a_message_sequence_promise() -> None:
    seen: list[Any] = []

    @miniagent
    async def inspector(ctx: InteractionContext) -> None:
        seen.append(ctx.messages)

    async with MiniAgents():
        await texts_of(inspector.inquire("x"))
    assert isinstance(seen[0], MessageSequencePromise)


async def test_reply_does_not_block_and_flattens_nested_calls_in_order() -> None:
    outer_returned = asyncio.Event()
    second_inner_ran = asyncio.Event()

    @miniagent
    async def first_inner(ctx: InteractionContext) -> None:
        ctx.reply("first-1")
        await second_inner_ran.wait()  # only finishes if the second inner call runs in parallel
        await outer_returned.wait()
        ctx.reply("first-2")

    @miniagent
    async def second_inner(ctx: InteractionContext) -> None:
        second_inner_ran.set()
        ctx.reply("second")

    @miniagent
    async def outer(ctx: InteractionContext) -> None:
        ctx.reply("a")
        ctx.reply(first_inner.inquire())
        ctx.reply("b")
        ctx.reply(second_inner.inquire())
        ctx.reply("c")
        outer_returned.set()

    async with MiniAgents():
        assert await texts_of(outer.inquire()) == ["a", "first-1", "first-2", "b", "second", "c"]


async def test_finish_early_ends_reply_sequence_while_agent_still_runs() -> None:
    gate = asyncio.Event()

    @miniagent
    async def quick(ctx: InteractionContext) -> None:
        ctx.reply("answer")
        ctx.finish_early()
        await gate.wait()

    async with MiniAgents():
        assert await texts_of(quick.inquire()) == ["answer"]
        gate.set()


async def test_reply_after_finish_early_raises_clear_error() -> None:
    errors: list[BaseException] = []

    @miniagent
    async def finisher(ctx: InteractionContext) -> None:
        ctx.reply("kept")
        ctx.finish_early()
        try:
            ctx.reply("lost")
        except Exception as exc:
            errors.append(exc)

    async with MiniAgents():
        assert await texts_of(finisher.inquire()) == ["kept"]
    assert len(errors) == 1
    assert "finish" in str(errors[0]).lower()


def _agents_that_wait_for_each_other(log: list[str]) -> tuple[MiniAgent, MiniAgent]:
    """Agents A and B that can only finish if both run at the same time (each waits for the other's start)."""
    started = {"A": asyncio.Event(), "B": asyncio.Event()}

    def make(name: str, other: str) -> MiniAgent:
        async def worker(ctx: InteractionContext) -> None:
            log.append(f"{name} start")
            started[name].set()
            await asyncio.wait_for(started[other].wait(), TIMEOUT)
            log.append(f"{name} end")
            ctx.reply(name)

        return miniagent(worker, alias=name)

    return make("A", "B"), make("B", "A")


# ========================================================================= scheduling


async def test_start_asap_runs_two_inquired_agents_in_parallel() -> None:
    log: list[str] = []
    a, b = _agents_that_wait_for_each_other(log)
    async with MiniAgents():
        a_replies = a.inquire()
        b_replies = b.inquire()
        assert await texts_of(a_replies) == ["A"]
        assert await texts_of(b_replies) == ["B"]
    assert set(log[:2]) == {"A start", "B start"}


def _sequential_pair(log: list[str]) -> tuple[MiniAgent, MiniAgent]:
    def make(name: str) -> MiniAgent:
        async def worker(ctx: InteractionContext) -> None:
            log.append(f"{name} start")
            for _ in range(5):
                await asyncio.sleep(0)
            log.append(f"{name} end")
            ctx.reply(name)

        return miniagent(worker, alias=name)

    return make("A"), make("B")


async def test_start_asap_false_runs_agents_one_after_the_other() -> None:
    log: list[str] = []
    a, b = _sequential_pair(log)
    async with MiniAgents():
        a_replies = a.inquire(start_asap=False)
        b_replies = b.inquire(start_asap=False)
        for _ in range(5):
            await asyncio.sleep(0)
        assert log == []
        assert await texts_of(a_replies) == ["A"]
        assert await texts_of(b_replies) == ["B"]
    assert log == ["A start", "A end", "B start", "B end"]


async def test_context_default_start_asap_false_runs_agents_one_after_the_other() -> None:
    log: list[str] = []
    a, b = _sequential_pair(log)
    async with MiniAgents(start_everything_asap_by_default=False):
        a_replies = a.inquire()
        b_replies = b.inquire()
        await asyncio.sleep(0)
        assert log == []
        assert await texts_of(a_replies) == ["A"]
        assert await texts_of(b_replies) == ["B"]
    assert log == ["A start", "A end", "B start", "B end"]


async def test_start_asap_runs_agents_called_inside_an_agent_in_parallel() -> None:
    log: list[str] = []
    a, b = _agents_that_wait_for_each_other(log)

    @miniagent
    async def caller(ctx: InteractionContext) -> None:
        a_replies = a.inquire()
        b_replies = b.inquire()
        ctx.reply(await a_replies.aresolve_messages())
        ctx.reply(await b_replies.aresolve_messages())

    async with MiniAgents():
        assert await texts_of(caller.inquire()) == ["A", "B"]
    assert set(log[:2]) == {"A start", "B start"}


async def test_start_asap_false_runs_agents_called_inside_an_agent_one_after_the_other() -> None:
    log: list[str] = []
    a, b = _sequential_pair(log)

    @miniagent
    async def caller(ctx: InteractionContext) -> None:
        a_replies = a.inquire(start_asap=False)
        b_replies = b.inquire(start_asap=False)
        for _ in range(5):
            await asyncio.sleep(0)
        log.append("caller awaits")
        ctx.reply(await a_replies.aresolve_messages())
        ctx.reply(await b_replies.aresolve_messages())

    async with MiniAgents():
        assert await texts_of(caller.inquire()) == ["A", "B"]
    assert log == ["caller awaits", "A start", "A end", "B start", "B end"]


async def test_context_default_start_asap_false_applies_inside_an_agent() -> None:
    log: list[str] = []
    a, b = _sequential_pair(log)

    @miniagent
    async def caller(ctx: InteractionContext) -> None:
        a_replies = a.inquire()
        b_replies = b.inquire()
        ctx.reply(await a_replies.aresolve_messages())
        ctx.reply(await b_replies.aresolve_messages())

    async with MiniAgents(start_everything_asap_by_default=False):
        assert await texts_of(caller.inquire()) == ["A", "B"]
    assert log == ["A start", "A end", "B start", "B end"]


# ===================================================================== error handling


class AgentFailure(Exception):
    pass


@miniagent
async def failing_after_one_reply(ctx: InteractionContext) -> None:
    ctx.reply("before failure")
    raise AgentFailure("boom")


async def test_agent_error_reaches_consumer_after_earlier_replies() -> None:
    async with MiniAgents():
        texts, error = await consume_until_error(failing_after_one_reply.inquire())
    assert texts == ["before failure"]
    assert isinstance(error, AgentFailure)
    assert str(error) == "boom"


async def test_agent_error_reaches_every_consumer() -> None:
    async with MiniAgents():
        replies = failing_after_one_reply.inquire()
        first, second = await within(asyncio.gather(consume_until_error(replies), consume_until_error(replies)))
        third = await consume_until_error(replies)
    for texts, error in (first, second, third):
        assert texts == ["before failure"]
        assert isinstance(error, AgentFailure)


async def test_agent_error_raises_from_aresolve_messages_and_await() -> None:
    async with MiniAgents():
        replies = failing_after_one_reply.inquire()
        with pytest.raises(AgentFailure, match="boom"):
            await within(replies.aresolve_messages())
        with pytest.raises(AgentFailure, match="boom"):
            await within(replies)


async def test_agent_error_before_any_reply_reaches_consumer() -> None:
    @miniagent
    async def fails_at_once(ctx: InteractionContext) -> None:
        raise AgentFailure("at once")

    async with MiniAgents():
        texts, error = await consume_until_error(fails_at_once.inquire())
    assert texts == []
    assert isinstance(error, AgentFailure)


async def test_agent_error_reaches_top_level_consumer_through_nested_agents_at_its_position() -> None:
    @miniagent
    async def inner(ctx: InteractionContext) -> None:
        ctx.reply("inner-1")
        raise AgentFailure("deep boom")

    @miniagent
    async def middle(ctx: InteractionContext) -> None:
        ctx.reply("middle-before")
        ctx.reply(inner.inquire())
        ctx.reply("middle-after")

    @miniagent
    async def outer(ctx: InteractionContext) -> None:
        ctx.reply("outer-before")
        ctx.reply(middle.inquire())

    async with MiniAgents():
        texts, error = await consume_until_error(outer.inquire())
    assert texts == ["outer-before", "middle-before", "inner-1"]
    assert isinstance(error, AgentFailure)
    assert str(error) == "deep boom"


async def test_agent_error_reaches_caller_that_awaits_nested_replies() -> None:
    @miniagent
    async def inner(ctx: InteractionContext) -> None:
        raise AgentFailure("awaited boom")

    @miniagent
    async def outer(ctx: InteractionContext) -> None:
        await inner.inquire().aresolve_messages()
        ctx.reply("never")

    async with MiniAgents():
        texts, error = await consume_until_error(outer.inquire())
    assert texts == []
    assert isinstance(error, AgentFailure)
    assert str(error) == "awaited boom"


async def test_agent_error_is_logged_at_context_log_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with MiniAgents(log_level_for_errors=logging.WARNING):
        await consume_until_error(failing_after_one_reply.inquire())
    logged = [r for r in caplog.records if "boom" in r.getMessage() or (r.exc_info and "boom" in str(r.exc_info[1]))]
    assert any(record.levelno == logging.WARNING for record in logged)
    assert all(record.levelno <= logging.WARNING for record in logged)


async def test_agent_error_is_logged_even_when_nobody_consumes_replies(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with MiniAgents(log_level_for_errors=logging.ERROR):
        failing_after_one_reply.inquire()
    assert any(
        record.levelno == logging.ERROR and record.exc_info and isinstance(record.exc_info[1], AgentFailure)
        for record in caplog.records
    )


# ================================================================== interaction graph


async def _graph_of(run: Any) -> list[Message]:
    persisted: list[Message] = []

    async def persist(_: Any, message: Message) -> None:
        persisted.append(message)

    async with MiniAgents(on_persist_message=persist):
        await run()
    return persisted


async def test_interaction_graph_call_node_records_alias_messages_and_kwargs() -> None:
    @miniagent
    async def callee(ctx: InteractionContext, mood: str) -> None:
        ctx.reply(f"{mood} reply")

    async def run() -> None:
        await texts_of(callee.inquire(["hello", "world"], mood="happy"))

    persisted = await _graph_of(run)
    call_nodes = [m for m in persisted if isinstance(m, AgentCallNode)]
    assert len(call_nodes) == 1
    node = call_nodes[0]
    assert node.agent_alias == "CALLEE"
    assert [m.text for m in node.messages] == ["hello", "world"]
    assert node.mood == "happy"


async def test_interaction_graph_leaves_out_non_serialisable_bound_kwargs(caplog: pytest.LogCaptureFixture) -> None:
    @miniagent(client=object())
    async def with_client(ctx: InteractionContext, client: Any, n: int = 0) -> None:
        ctx.reply(f"n={n}")

    async def run() -> None:
        await texts_of(with_client.inquire("q", n=2))

    caplog.set_level(logging.ERROR)
    persisted = await _graph_of(run)
    node = next(m for m in persisted if isinstance(m, AgentCallNode))
    assert node.n == 2
    assert "client" not in dict(node.frozen_fields_and_values())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_interaction_graph_reply_node_links_call_and_replies() -> None:
    @miniagent
    async def callee(ctx: InteractionContext) -> None:
        ctx.reply(["r1", "r2"])

    async def run() -> None:
        await texts_of(callee.inquire("q"))

    persisted = await _graph_of(run)
    reply_nodes = [m for m in persisted if isinstance(m, AgentReplyNode)]
    call_nodes = [m for m in persisted if isinstance(m, AgentCallNode)]
    assert len(reply_nodes) == 1
    reply = reply_nodes[0]
    assert reply.agent_alias == "CALLEE"
    assert [m.text for m in reply.replies] == ["r1", "r2"]
    assert reply.agent_call == call_nodes[0]
    assert reply.serialize()["agent_call__hash_key"] == call_nodes[0].hash_key


async def test_interaction_graph_nodes_arrive_after_their_messages() -> None:
    @miniagent
    async def callee(ctx: InteractionContext) -> None:
        ctx.reply("the reply")

    async def run() -> None:
        await texts_of(callee.inquire("the question"))

    persisted = await _graph_of(run)
    position = {id(m): i for i, m in enumerate(persisted)}
    reply_node = next(m for m in persisted if isinstance(m, AgentReplyNode))
    call_node = reply_node.agent_call
    assert all(position[id(message)] < position[id(call_node)] for message in call_node.messages)
    assert all(position[id(message)] < position[id(reply_node)] for message in reply_node.replies)
    assert position[id(call_node)] < position[id(reply_node)]


async def test_interaction_graph_links_nested_calls_to_parent_call() -> None:
    @miniagent
    async def inner(ctx: InteractionContext) -> None:
        ctx.reply("inner reply")

    @miniagent
    async def outer(ctx: InteractionContext) -> None:
        ctx.reply(inner.inquire("from outer"))

    async def run() -> None:
        await texts_of(outer.inquire("from test"))

    persisted = await _graph_of(run)
    calls = {m.agent_alias: m for m in persisted if isinstance(m, AgentCallNode)}
    assert set(calls) == {"OUTER", "INNER"}
    assert calls["OUTER"].call_id is not None
    assert calls["OUTER"].parent_call_id is None
    assert calls["INNER"].parent_call_id == calls["OUTER"].call_id
    assert [m.text for m in calls["INNER"].messages] == ["from outer"]
    outer_reply = next(m for m in persisted if isinstance(m, AgentReplyNode) and m.agent_alias == "OUTER")
    assert [m.text for m in outer_reply.replies] == ["inner reply"]


async def test_interaction_graph_records_failed_call() -> None:
    async def run() -> None:
        await consume_until_error(failing_after_one_reply.inquire("q"))

    persisted = await _graph_of(run)
    reply_node = next(m for m in persisted if isinstance(m, AgentReplyNode))
    assert reply_node.agent_alias == "FAILING_AFTER_ONE_REPLY"
    assert [m.text for m in reply_node.replies] == ["before failure"]


# ========================================================================= finalizing


async def test_context_exit_leaves_no_pending_task() -> None:
    @miniagent
    async def inner(ctx: InteractionContext) -> None:
        await asyncio.sleep(0)
        ctx.reply("inner")

    @miniagent
    async def outer(ctx: InteractionContext) -> None:
        ctx.reply(inner.inquire())

    async def persist(_: Any, __: Message) -> None:
        await asyncio.sleep(0)

    async with MiniAgents(on_persist_message=persist):
        outer.inquire()  # never consumed
        outer.inquire("x")
    assert other_tasks() == set()


async def test_context_exit_leaves_no_pending_task_when_agents_failed() -> None:
    @miniagent
    async def outer(ctx: InteractionContext) -> None:
        ctx.reply(failing_after_one_reply.inquire())
        raise AgentFailure("outer boom")

    async def persist(_: Any, __: Message) -> None:
        pass

    async with MiniAgents(on_persist_message=persist):
        failing_after_one_reply.inquire()  # never consumed
        await consume_until_error(outer.inquire())
        outer.inquire()
    assert other_tasks() == set()


async def test_afinalize_waits_for_agents_started_while_finalizing() -> None:
    finished: list[str] = []

    @miniagent
    async def late(ctx: InteractionContext) -> None:
        await asyncio.sleep(0)
        finished.append("late")

    @miniagent
    async def starter(ctx: InteractionContext) -> None:
        await asyncio.sleep(0)
        late.inquire()
        finished.append("starter")

    context = MiniAgents()
    context.activate()
    starter.inquire()
    await within(context.afinalize())
    assert sorted(finished) == ["late", "starter"]
    assert other_tasks() == set()


# ===================================================================== MessageSequence


async def test_message_sequence_appender_feeds_sequence_promise() -> None:
    async with MiniAgents():
        sequence = MessageSequence()
        assert isinstance(sequence.message_appender, StreamAppender)
        assert isinstance(sequence.sequence_promise, MessageSequencePromise)
        with sequence.message_appender:
            sequence.message_appender.append("a")
            sequence.message_appender.append(["b", Message("c")])
        assert await texts_of(sequence.sequence_promise) == ["a", "b", "c"]


async def test_message_sequence_captures_error_at_its_position_when_asked() -> None:
    async with MiniAgents():
        sequence = MessageSequence(appender_capture_errors=True)
        with sequence.message_appender:
            sequence.message_appender.append("a")
            raise AgentFailure("inside with")
        texts, error = await consume_until_error(sequence.sequence_promise)
    assert texts == ["a"]
    assert isinstance(error, AgentFailure)


async def test_message_sequence_with_incoming_streamer_flattens_it() -> None:
    async def incoming() -> AsyncIterator[Any]:
        yield "a"
        await asyncio.sleep(0)
        yield ["b", {"text": "c"}]

    async with MiniAgents():
        sequence = MessageSequence(incoming_streamer=incoming())
        assert await texts_of(sequence.sequence_promise) == ["a", "b", "c"]


async def test_turn_into_sequence_promise_wraps_any_message_type() -> None:
    async with MiniAgents():
        sequence = MessageSequence.turn_into_sequence_promise(["a", ("b",), Message("c")])
        assert isinstance(sequence, MessageSequencePromise)
        assert await texts_of(sequence) == ["a", "b", "c"]


async def test_turn_into_sequence_promise_returns_sequence_promise_as_is() -> None:
    async with MiniAgents():
        sequence = MessageSequence.turn_into_sequence_promise("x")
        assert MessageSequence.turn_into_sequence_promise(sequence) is sequence


async def test_message_sequence_aresolve_messages_gives_messages() -> None:
    async with MiniAgents():
        messages = await within(MessageSequence.aresolve_messages(["a", {"text": "b", "role": "user"}]))
    assert messages == (Message("a"), Message("b", role="user"))


async def test_message_sequence_yields_message_promises() -> None:
    async with MiniAgents():
        promises = await within(MessageSequence.turn_into_sequence_promise(["a", "b"]))
    assert all(isinstance(p, MessagePromise) for p in promises)


# ================================================================ no active context (3.4a)


def test_messages_frozen_and_hash_keys_work_without_context() -> None:
    message = Message("no context", meta={"a": [1, 2]}, child=Message("child"))
    assert len(message.hash_key) == 40
    assert len(Frozen(a=1).hash_key) == 40
    assert str(message) == "no context"


def test_agents_are_defined_and_forked_without_context() -> None:
    @miniagent(alias="DEFINED", client=object())
    async def defined(ctx: InteractionContext, client: Any, x: int = 0) -> None:
        pass

    forked = defined.fork(alias="FORKED", x=1)
    assert (defined.alias, forked.alias) == ("DEFINED", "FORKED")


def test_llm_agents_are_created_at_module_level_without_context_or_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    from miniagents.ext.llm.anthropic import create_anthropic_agent
    from miniagents.ext.llm.openai import create_openai_agent

    openai_agent, anthropic_agent = create_openai_agent(), create_anthropic_agent()
    assert (openai_agent.alias, anthropic_agent.alias) == ("OPENAI_AGENT", "ANTHROPIC_AGENT")


def test_stream_appender_with_explicit_capture_errors_works_without_context() -> None:
    appender = StreamAppender(capture_errors=True)
    with appender:
        appender.append("piece")
    assert appender.is_closed


async def test_a_reply_forwarded_up_a_thousand_levels_arrives_and_every_call_settles():
    @miniagent
    async def level(ctx: InteractionContext, depth: int) -> None:
        if depth == 0:
            ctx.reply("from the bottom")
        else:
            ctx.reply(level.inquire(depth=depth - 1))

    async with MiniAgents() as context:
        replies = await level.inquire(depth=1000).aresolve_messages()
        assert [str(reply) for reply in replies] == ["from the bottom"]
        await context.aflush_tasks()
        assert context.root_owner.is_idle()  # every call left the ownership tree


async def test_cancelling_a_call_whose_replies_wait_for_a_sub_call_cuts_them_and_cancels_the_sub_call():
    started = asyncio.Event()
    sub_cancelled = asyncio.Event()

    @miniagent
    async def slow(ctx: InteractionContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            sub_cancelled.set()
            raise

    @miniagent
    async def forwarding(ctx: InteractionContext) -> None:
        ctx.reply("first")
        ctx.reply(slow.inquire())
        ctx.reply("never seen: after the cut")

    async with MiniAgents():
        call = forwarding.initiate_call()
        replies = call.reply_sequence()
        await asyncio.wait_for(started.wait(), 5)
        iterator = aiter(replies)
        assert str(await (await anext(iterator))) == "first"
        call.cancel()
        with pytest.raises(PromiseCancelledError):
            await asyncio.wait_for(anext(iterator), 5)
        await asyncio.wait_for(sub_cancelled.wait(), 5)
