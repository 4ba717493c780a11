"""What later MiniAgents versions added, in this API: out-of-order replies, errors as messages, class-based
agents, non-freezable kwargs and the 0.0.35 names."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from miniagents import (
    AgentCallNode,
    ErrorMessage,
    InteractionContext,
    Message,
    MiniAgents,
    Promise,
    miniagent,
)
from miniagents.ext.sqlite_store import SQLiteMessageStore

TIMEOUT = 5


async def within(awaitable: Any) -> Any:
    return await asyncio.wait_for(awaitable, TIMEOUT)


def make_slow_and_fast(prefix: str = "") -> tuple[Any, Any]:
    fast_replied = asyncio.Event()

    @miniagent
    async def slow(ctx: InteractionContext) -> None:
        await fast_replied.wait()  # replies only after the fast one did
        ctx.reply(f"{prefix}slow")

    @miniagent
    async def fast(ctx: InteractionContext) -> None:
        ctx.reply(f"{prefix}fast")
        fast_replied.set()

    return slow, fast


async def test_reply_out_of_order_lets_a_fast_nested_call_overtake_a_slow_one() -> None:
    slow, fast = make_slow_and_fast()

    @miniagent
    async def gatherer(ctx: InteractionContext) -> None:
        ctx.reply_out_of_order([slow.inquire(), fast.inquire()])

    async with MiniAgents():
        assert [m.text for m in await within(gatherer.inquire().aresolve_messages())] == ["fast", "slow"]


async def test_reply_keeps_order_next_to_out_of_order_replies() -> None:
    slow, fast = make_slow_and_fast("ordered ")
    second_slow, second_fast = make_slow_and_fast("any order ")

    @miniagent
    async def mixed(ctx: InteractionContext) -> None:
        ctx.reply("first")
        ctx.reply([slow.inquire(), fast.inquire()])  # in order: slow before fast
        ctx.reply_out_of_order([second_slow.inquire(), second_fast.inquire()])

    async with MiniAgents():
        texts = [m.text for m in await within(mixed.inquire().aresolve_messages())]
    assert texts[0] == "first"
    assert texts.index("ordered slow") < texts.index("ordered fast")
    assert texts.index("any order fast") < texts.index("any order slow")
    assert sorted(texts) == ["any order fast", "any order slow", "first", "ordered fast", "ordered slow"]


async def test_reply_out_of_order_after_the_agent_returned_raises() -> None:
    contexts: list[InteractionContext] = []

    @miniagent
    async def keeps_ctx(ctx: InteractionContext) -> None:
        contexts.append(ctx)

    async with MiniAgents():
        await within(keeps_ctx.inquire().aresolve_messages())
        with pytest.raises(Exception, match="cannot reply any more"):
            contexts[0].reply_out_of_order("late")


@miniagent
async def failing(ctx: InteractionContext) -> None:
    ctx.reply("before the error")
    raise ValueError("the tool broke")


@miniagent
async def calls_failing(ctx: InteractionContext) -> None:
    ctx.reply(failing.inquire())
    ctx.reply("after the nested call")


async def test_errors_as_messages_puts_an_error_message_at_the_position_of_the_error() -> None:
    async with MiniAgents(errors_as_messages=True):
        messages = await within(calls_failing.inquire().aresolve_messages())  # no exception reaches us
    assert [type(m).__name__ for m in messages] == ["Message", "ErrorMessage", "Message"]
    error = messages[1]
    assert isinstance(error, ErrorMessage)
    assert error.error_class == "ValueError"
    assert error.text == "the tool broke"
    assert error.agent_trace == ("CALLS_FAILING", "FAILING")


async def test_errors_as_messages_consumers_streaming_the_replies_see_no_exception() -> None:
    seen: list[tuple[str, str]] = []

    @miniagent
    async def reader(ctx: InteractionContext) -> None:
        async for promise in calls_failing.inquire():  # an agent consuming the replies, token by token
            text = "".join([token async for token in promise])
            message = await promise
            seen.append((type(message).__name__, text))
        ctx.reply("read them all")

    async with MiniAgents(errors_as_messages=True):
        assert [m.text for m in await within(reader.inquire().aresolve_messages())] == ["read them all"]
        direct = [piece async for piece in calls_failing.inquire()]  # the caller iterating the sequence itself
        assert [type(await promise).__name__ for promise in direct] == ["Message", "ErrorMessage", "Message"]
        error = await direct[1]
    assert seen == [
        ("Message", "before the error"),
        ("ErrorMessage", "the tool broke"),
        ("Message", "after the nested call"),
    ]
    assert (error.error_class, error.agent_trace) == ("ValueError", ("CALLS_FAILING", "FAILING"))


async def test_errors_as_messages_per_agent_overrides_the_context() -> None:
    tolerant = failing.fork(alias="TOLERANT", errors_as_messages=True)
    async with MiniAgents():  # the context raises errors...
        messages = await within(tolerant.inquire().aresolve_messages())
        assert isinstance(messages[-1], ErrorMessage)
        with pytest.raises(ValueError, match="the tool broke"):
            await within(failing.inquire().aresolve_messages())
    async with MiniAgents(errors_as_messages=True):  # ...and an agent can insist on raising
        strict = failing.fork(alias="STRICT", errors_as_messages=False)
        with pytest.raises(ValueError, match="the tool broke"):
            await within(strict.inquire().aresolve_messages())


async def test_a_plain_class_agent_gets_ctx_and_the_call_kwargs() -> None:
    @miniagent
    class Greeter:
        """Greets {AGENT_ALIAS}'s callers."""

        def __init__(self, ctx: InteractionContext, greeting: str = "hello") -> None:
            self.ctx = ctx
            self.greeting = greeting

        async def __call__(self) -> None:
            names = [m.text for m in await self.ctx.messages.aresolve_messages()]
            self.ctx.reply(f"{self.greeting}, {' and '.join(names)}")

    assert Greeter.alias == "GREETER"
    assert Greeter.description == "Greets GREETER's callers."
    async with MiniAgents():
        replies = await within(Greeter.inquire(["Ann", "Bo"], greeting="hi").aresolve_messages())
    assert [m.text for m in replies] == ["hi, Ann and Bo"]


async def test_a_pydantic_class_agent_validates_the_call_kwargs() -> None:
    @miniagent(alias="COUNTER")
    class Counter(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)

        ctx: InteractionContext
        times: int

        async def __call__(self) -> None:
            self.ctx.reply([str(number) for number in range(self.times)])

    async with MiniAgents():
        assert [m.text for m in await within(Counter.inquire(times=3).aresolve_messages())] == ["0", "1", "2"]
        with pytest.raises(ValueError, match="times"):
            await within(Counter.inquire(times="many").aresolve_messages())


def test_a_class_without_an_async_call_is_refused() -> None:
    class NotAnAgent:
        def __call__(self) -> None: ...

    with pytest.raises(TypeError, match="async def __call__"):
        miniagent(NotAnAgent)


class Connection:
    """Something that cannot be frozen: a lock and a socket."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.socket = socket.socket()

    def close(self) -> None:
        self.socket.close()


async def test_non_freezable_kwargs_reach_the_function_and_stay_out_of_the_graph() -> None:
    bound, at_call = Connection(), Connection()
    received: dict[str, Any] = {}
    persisted: list[Message] = []

    @miniagent(non_freezable_kwargs={"connection": bound, "session": None})
    async def uses_connection(ctx: InteractionContext, connection: Connection, session: Any, topic: str) -> None:
        received.update(connection=connection, session=session)
        ctx.reply(f"used for {topic}")

    async def persist(promise: Promise[Any], message: Message) -> None:
        persisted.append(message)

    try:
        async with MiniAgents(on_persist_message=persist):
            replies = uses_connection.inquire(session=at_call, topic="news")
            assert [m.text for m in await within(replies.aresolve_messages())] == ["used for news"]
        assert received == {"connection": bound, "session": at_call}
        [call_node] = [m for m in persisted if isinstance(m, AgentCallNode)]
        assert call_node.get("topic") == "news"
        assert "session" not in call_node and "connection" not in call_node
        assert all("Connection" not in m.serialized for m in persisted)
    finally:
        bound.close()
        at_call.close()


async def test_non_freezable_kwargs_of_agent_and_fork_are_absent_from_the_sqlite_store(tmp_path: Path) -> None:
    bound, forked, at_call = Connection(), Connection(), Connection()
    received: list[dict[str, Any]] = []

    @miniagent(non_freezable_kwargs={"connection": bound})
    async def fetcher(ctx: InteractionContext, connection: Connection, topic: str, session: Any = None) -> None:
        received.append({"connection": connection, "session": session})
        with connection.lock:  # the very object: its lock and its socket work
            assert connection.socket.fileno() >= 0
            ctx.reply(f"{topic} fetched")

    with_session = fetcher.fork(alias="SESSION_FETCHER", non_freezable_kwargs={"session": forked})

    @miniagent
    async def caller(ctx: InteractionContext) -> None:
        ctx.reply(fetcher.inquire(topic="news"))
        ctx.reply(with_session.inquire(topic="weather"))
        ctx.reply(with_session.inquire(topic="sport", session=at_call))  # a call-time kwarg of a declared name

    store = SQLiteMessageStore(tmp_path / "messages.db")
    try:
        context = MiniAgents()
        store.attach(context)
        async with context:
            replies = await within(caller.inquire().aresolve_messages())
        await within(store.aflush())
        assert [m.text for m in replies] == ["news fetched", "weather fetched", "sport fetched"]
        assert received == [
            {"connection": bound, "session": None},
            {"connection": bound, "session": forked},
            {"connection": bound, "session": at_call},
        ]

        (run,) = store.runs()
        graph = store.load_run(run.id)
        (root,) = graph.roots
        calls = root.children
        assert [(c.agent_alias, c.call.get("topic")) for c in calls] == [
            ("FETCHER", "news"),
            ("SESSION_FETCHER", "weather"),
            ("SESSION_FETCHER", "sport"),
        ]
        for stored_call in calls:
            assert "connection" not in stored_call.call and "session" not in stored_call.call
        keys = list(store.iter_hash_keys())
        assert keys and store.count_messages("AgentCallNode") == 4
        for key in keys:  # in no stored row, neither as a field nor as a repr
            serialized = store.load_serialized(key)
            assert '"connection"' not in serialized and '"session"' not in serialized
            assert "Connection" not in serialized and "socket" not in serialized and "lock" not in serialized
    finally:
        store.close()
        for connection in (bound, forked, at_call):
            connection.close()


async def test_an_undeclared_unfreezable_kwarg_is_refused_naming_the_declaration() -> None:
    @miniagent
    async def plain(ctx: InteractionContext, session: Any) -> None: ...

    connection = Connection()
    try:
        async with MiniAgents():
            with pytest.raises(ValueError, match="non_freezable_kwargs"):
                plain.inquire(session=connection)
    finally:
        connection.close()


async def test_the_0_0_35_names_are_aliases() -> None:
    @miniagent
    async def echo(ctx: InteractionContext) -> None:
        ctx.reply([m.text for m in await ctx.message_promises.aresolve_messages()])

    async with MiniAgents() as context:
        assert [m.text for m in await within(echo.trigger("a").aresolve_messages())] == ["a"]
        call = echo.initiate_call(start_soon=False).send_message("b")
        assert [m.text for m in await within(call.reply_sequence().aresolve_messages())] == ["b"]
        assert await within(context.start_soon(asyncio.sleep(0, result="done"))) == "done"

        async def tokens(metadata_so_far: dict[str, Any]) -> Any:
            yield "hi"

        promise = Message.promise(message_token_streamer=tokens, role="assistant")
        assert promise.known_beforehand is promise.preliminary_metadata


@miniagent
async def hello(ctx: InteractionContext) -> None:
    ctx.reply("Hello from Agent 1!")


def test_an_agent_called_before_any_context_runs_inside_run() -> None:
    # the seeds' README: `mini_agents.run(openai_agent.inquire("Hello, OpenAI!"))`
    assert [m.text for m in MiniAgents().run(hello.inquire().aresolve_messages())] == ["Hello from Agent 1!"]
    replies = MiniAgents().run(hello.inquire())
    assert len(replies) == 1


def test_replies_of_a_call_made_outside_a_context_fail_clearly_when_used_outside_one() -> None:
    replies = hello.inquire()
    with pytest.raises(RuntimeError, match="No MiniAgents context is active"):
        replies.__aiter__()
    MiniAgents().run(replies.aresolve_messages())  # and they still work inside one


def test_replies_never_used_are_reported() -> None:
    with pytest.warns(RuntimeWarning, match="never used"):
        hello.inquire()
        import gc

        gc.collect()
