"""
Bad inputs (acceptance 3): each is a clear error that names its culprit, and nothing else is lost.

One row per bad input, mirrored by the table in docs/errors.md (a test keeps the two in step). A row
runs inside an agent that has already replied "before" (so the test can check that earlier replies are
still delivered and persisted, and that the context keeps working), or, for the rows about missing
contexts, with no context at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from miniagents import AWAIT, InteractionContext, Message, MiniAgents, Promise, StreamAppender, miniagent
from miniagents.ext.chat_history_md import ChatHistoryFormatError, ChatHistoryMD
from miniagents.ext.sqlite_store import MessageStoreError, SQLiteMessageStore
from miniagents.messages import MessagePromise
from miniagents.promising.errors import AppenderClosedError, AppenderNotOpenError
from miniagents.utils import achain_loop, amap

REPO_ROOT = Path(__file__).resolve().parents[1]
ERRORS_DOC = REPO_ROOT / "docs" / "errors.md"
TIMEOUT = 20.0
HUGE_TEXT_LENGTH = 50_000_000

Action = Callable[[InteractionContext | None, Path], Awaitable[Any] | Any]


@dataclass(frozen=True)
class BadInput:
    id: str
    action: Action
    error: type[BaseException] | None  # None: the input is accepted and works
    excerpts: tuple[str, ...] = ()  # each must appear in the error message
    after: tuple[str, ...] = ()  # texts the consumer must still get after the error
    no_context: bool = False  # run with no MiniAgents context active
    may_work: bool = False  # accepting the input (and storing it) is as good as the error


async def _target(ctx: InteractionContext, **kwargs: Any) -> None:
    ctx.reply("target replied")


target = miniagent(_target, alias="TARGET")


def nested_list(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"inner": value}
    return value


def token_streamer_of(*tokens: Any) -> Callable[[dict[str, Any]], AsyncIterator[Any]]:
    async def token_streamer(_: dict[str, Any]) -> AsyncIterator[Any]:
        for token in tokens:
            yield token

    return token_streamer


# ------------------------------------------------------------------------------------------ actions


def reply_after_finish_early(ctx: Any, _: Path) -> None:
    ctx.finish_early()
    ctx.reply("after finish_early")


def append_to_closed_appender(ctx: Any, _: Path) -> None:
    appender = StreamAppender(capture_errors=True)
    with appender:
        appender.append("fine")
    appender.append("too late")


def send_after_finish(ctx: Any, _: Path) -> None:
    call = target.initiate_inquiry()
    call.send_message("fine").finish()
    call.send_message("too late")


def sync_function_as_agent(ctx: Any, _: Path) -> None:
    def summarize(ctx: InteractionContext) -> None:
        ctx.reply("never")

    miniagent(summarize)


def async_generator_as_agent(ctx: Any, _: Path) -> None:
    async def summarize(ctx: InteractionContext) -> AsyncIterator[str]:
        yield "never"

    miniagent(summarize)


async def stream_from_coroutine_function(ctx: Any, _: Path) -> None:
    async def token_streamer(_: dict[str, Any]) -> str:  # `return`, not `yield`
        return "whole text"

    await Message.promise(message_token_streamer=token_streamer)  # type: ignore[arg-type]


async def stream_tokens(ctx: Any, _: Path, *tokens: Any) -> None:
    promise = Message.promise(message_token_streamer=token_streamer_of(*tokens))
    ctx.reply(promise)
    await promise


async def provider_text_with_invalid_utf8(ctx: Any, _: Path) -> None:
    text = b"caf\xe9 au lait".decode("utf-8", errors="surrogateescape")  # how undecodable bytes survive
    promise = Message.promise(message_token_streamer=token_streamer_of(text), role="assistant")
    (await promise).hash_key  # noqa: B018


def cycle_through_private_attribute(ctx: Any, _: Path) -> None:
    message = Message("cyclic")
    message._myself = message  # private attributes are not fields: not hashed, not serialized
    assert message.hash_key == Message("cyclic").hash_key
    ctx.reply(message)


def cycle_through_pydantic_extra(ctx: Any, _: Path) -> None:
    message = Message("cyclic", child=Message("child"))
    message.__pydantic_extra__["child"] = message  # mutating pydantic's private storage
    message.hash_key  # noqa: B018


def assign_to_field(ctx: Any, _: Path) -> None:
    message = Message("original")
    message.text = "changed"


def huge_message(ctx: Any, _: Path) -> None:
    ctx.reply(Message("x" * HUGE_TEXT_LENGTH))


async def achain_loop_without_await(ctx: Any, _: Path) -> None:
    await achain_loop([target, target])


async def achain_loop_with_bad_step(ctx: Any, _: Path) -> None:
    await achain_loop([target, AWAIT, 42])  # type: ignore[list-item]


async def load_chat_history_with_text_before_first_heading(ctx: Any, tmp_path: Path) -> None:
    path = tmp_path / "CHAT.md"
    content = "My own notes, not a chat\n### user\n\nhello\n\n"
    path.write_text(content)
    history = ChatHistoryMD(path)
    with pytest.raises(ChatHistoryFormatError):
        await history.alog_message(Message("new", role="user"))
    assert path.read_text() == content  # the file was not touched
    await history.aload_chat_history()


async def load_chat_history_that_is_not_utf8(ctx: Any, tmp_path: Path) -> None:
    path = tmp_path / "CHAT.md"
    path.write_bytes(b"### user\n\nlatin-1 caf\xe9\n\n")
    await ChatHistoryMD(path).aload_chat_history()


class SyncCallable:
    def __call__(self) -> None: ...


def sync_persistence_handler(promise: Any, message: Any) -> None: ...


@miniagent(alias="COUNTER")
class Counter(BaseModel):
    """A pydantic class-based agent: its fields are the call's kwargs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    ctx: InteractionContext
    times: int

    async def __call__(self) -> None:
        self.ctx.reply(str(self.times))


async def reenter_active_context(ctx: Any, _: Path) -> None:
    MiniAgents.get_current().activate()


ROWS = [
    # values that cannot be frozen
    BadInput("set-in-message", lambda c, p: Message("x", tags={1, 2}), ValidationError, ("'tags'", "set")),
    BadInput("object-in-message", lambda c, p: Message("x", client=object()), ValidationError, ("'client'", "object")),
    BadInput(
        "unsupported-leaf-type",
        lambda c, p: Message("x", meta={"wait": timedelta(seconds=5)}),
        ValidationError,
        ("'meta.wait'", "timedelta", "datetime, date, time, UUID, Decimal"),
    ),
    BadInput(
        "set-deep-in-message",
        lambda c, p: Message("x", meta={"ids": [1, {2}]}),
        ValidationError,
        ("meta.ids[1]", "set"),
    ),
    BadInput(
        "non-str-dict-key", lambda c, p: Message("x", meta={1: "a"}), ValidationError, ("'meta'", "keys must be str")
    ),
    BadInput("bytes-as-text", lambda c, p: Message(b"raw"), ValidationError, ("'text'", "bytes")),
    BadInput("wrong-type-for-declared-field", lambda c, p: Message(text=123), ValidationError, ("text", "string")),
    BadInput("text-given-twice", lambda c, p: Message("a", text="b"), TypeError, ("text", "positionally")),
    BadInput(
        "class-mismatch", lambda c, p: Message("x", class_="UserMessage"), ValidationError, ("class_", "'UserMessage'")
    ),
    BadInput("assign-to-field", assign_to_field, ValidationError, ("text", "frozen")),
    BadInput("set-in-kwargs", lambda c, p: target.inquire(tags={1}), ValueError, ("TARGET", "'tags'", "set")),
    BadInput("object-in-kwargs", lambda c, p: target.inquire(client=object()), ValueError, ("TARGET", "'client'")),
    # sizes and shapes
    BadInput("huge-message-50mb", huge_message, None, after=(f"<{HUGE_TEXT_LENGTH} chars>",)),
    BadInput("huge-int", lambda c, p: Message("x", n=10**5000).hash_key, ValueError, ("'n'", "digits"), may_work=True),
    BadInput("deep-list-10000", lambda c, p: Message("x", data=nested_list(10_000)), ValueError, ("'data'",)),
    BadInput("deep-dict-10000", lambda c, p: Message("x", data=nested_dict(10_000)), ValueError, ("'data'",)),
    BadInput("deep-reply-list-10000", lambda c, p: c.reply(nested_list(10_000)), None, after=("leaf",)),
    # text that is not valid unicode
    BadInput(
        "lone-surrogate-in-text",
        lambda c, p: Message("a\ud800b").hash_key,
        ValueError,
        ("'text'", "surrogate"),
        may_work=True,
    ),
    BadInput(
        "invalid-utf8-from-provider",
        provider_text_with_invalid_utf8,
        ValueError,
        ("'text'", "surrogate"),
        may_work=True,
    ),
    BadInput(
        "bytes-token-from-provider",
        lambda c, p: stream_tokens(c, p, "caf", b"\xe9"),
        TypeError,
        ("message_token_streamer", "str tokens", "bytes"),
    ),
    BadInput(
        "int-token-from-streamer",
        lambda c, p: stream_tokens(c, p, "a", 5),
        TypeError,
        ("message_token_streamer", "int"),
    ),
    BadInput(
        "streamer-returns-instead-of-yielding",
        stream_from_coroutine_function,
        TypeError,
        ("message_token_streamer", "async"),
    ),
    # cycles
    BadInput("cycle-through-private-attribute", cycle_through_private_attribute, None, after=("cyclic",)),
    BadInput("cycle-through-pydantic-extra", cycle_through_pydantic_extra, ValueError, ("'child'", "cycl")),
    # replies
    BadInput("unsupported-reply-type", lambda c, p: c.reply(42), TypeError, ("type int", "42")),
    BadInput(
        "unsupported-type-inside-list",
        lambda c, p: c.reply(["ok", 42, "after"]),
        TypeError,
        ("type int", "42"),
        after=("ok", "after"),
    ),
    BadInput("bytes-reply", lambda c, p: c.reply(b"raw"), TypeError, ("type bytes",)),
    BadInput("dict-reply-with-set", lambda c, p: c.reply({"text": "x", "ids": {1}}), ValidationError, ("'ids'", "set")),
    BadInput("reply-after-finish-early", reply_after_finish_early, AppenderClosedError, ("SUBJECT", "finish_early")),
    BadInput("append-to-closed-appender", append_to_closed_appender, AppenderClosedError, ("'too late'", "closed")),
    BadInput(
        "append-before-open",
        lambda c, p: StreamAppender(capture_errors=True).append("early"),
        AppenderNotOpenError,
        ("'early'", "open"),
    ),
    BadInput("send-after-finish", send_after_finish, AppenderClosedError, ("TARGET", "'too late'", "finished")),
    # agents and loops
    BadInput("sync-function-as-agent", sync_function_as_agent, TypeError, ("summarize", "async def")),
    BadInput("async-generator-as-agent", async_generator_as_agent, TypeError, ("summarize", "generator")),
    BadInput(
        "non-positive-call-timeout",
        lambda c, p: miniagent(_target, call_timeout=0),
        ValueError,
        ("call_timeout", "positive"),
    ),
    BadInput("achain-loop-without-await", achain_loop_without_await, ValueError, ("achain_loop", "AWAIT")),
    BadInput("achain-loop-with-bad-step", achain_loop_with_bad_step, TypeError, ("achain_loop", "42")),
    BadInput("reentered-context", reenter_active_context, RuntimeError, ("MiniAgents", "already active")),
    BadInput(
        "promise-without-context", lambda c, p: Promise(), RuntimeError, ("async with MiniAgents()",), no_context=True
    ),
    BadInput(
        "agent-call-without-context",
        lambda c, p: target.initiate_inquiry(),
        RuntimeError,
        ("async with MiniAgents()",),
        no_context=True,
    ),
    BadInput("message-promise-without-streamer", lambda c, p: MessagePromise(), TypeError, ("message_token_streamer",)),
    # agents and observers (later MiniAgents features, ownership)
    BadInput(
        "undeclared-unfreezable-kwarg",
        lambda c, p: target.inquire(session=threading.Lock()),
        ValueError,
        ("TARGET", "session", "non_freezable_kwargs"),
    ),
    BadInput(
        "class-agent-without-async-call", lambda c, p: miniagent(SyncCallable), TypeError, ("async def __call__",)
    ),
    BadInput(
        "non-freezable-kwargs-not-a-dict",
        lambda c, p: miniagent(_target, non_freezable_kwargs=["client"]),
        TypeError,
        ("non_freezable_kwargs", "dict", "list"),
    ),
    BadInput(
        "class-agent-kwarg-fails-validation",
        lambda c, p: Counter.inquire(times="many").aresolve_messages(),
        ValidationError,
        ("Counter", "times"),
    ),
    BadInput(
        "errors-as-messages-not-bool",
        lambda c, p: miniagent(_target, errors_as_messages="yes"),
        TypeError,
        ("errors_as_messages", "'yes'"),
    ),
    BadInput(
        "sync-persistence-handler",
        lambda c, p: MiniAgents(on_persist_message=sync_persistence_handler),
        TypeError,
        ("persist_message", "sync_persistence_handler", "async"),
    ),
    BadInput(
        "amap-zero-concurrency", lambda c, p: amap(target, ["x"], concurrency=0), ValueError, ("concurrency", "0")
    ),
    # chat history files
    BadInput(
        "chat-history-text-before-heading",
        load_chat_history_with_text_before_first_heading,
        ChatHistoryFormatError,
        ("CHAT.md", "line 1", "My own notes"),
    ),
    BadInput("chat-history-not-utf8", load_chat_history_that_is_not_utf8, ChatHistoryFormatError, ("CHAT.md", "UTF-8")),
]


# ------------------------------------------------------------------------------------------- harness


@dataclass
class Outcome:
    texts: list[str]
    consumer_errors: list[BaseException]
    agent_errors: list[BaseException]

    @property
    def error(self) -> BaseException | None:
        """The error the consumer met first, else the one raised in the agent."""
        return (self.consumer_errors or self.agent_errors or [None])[0]


def short(text: str | None) -> str | None:
    return text if text is None or len(text) <= 200 else f"<{len(text)} chars>"


async def aread_everything(sequence: Any) -> tuple[list[Message], list[BaseException]]:
    """Every message and every error of a reply sequence (reading goes on after an error)."""
    messages: list[Message] = []
    errors: list[BaseException] = []
    iterator = aiter(sequence)
    while True:
        try:
            message_promise = await anext(iterator)
        except StopAsyncIteration:
            return messages, errors
        except Exception as exc:
            errors.append(exc)
            continue
        try:
            messages.append(await message_promise)
        except Exception as exc:
            errors.append(exc)


async def arun_in_agent(row: BadInput, store: SQLiteMessageStore, tmp_path: Path) -> Outcome:
    agent_errors: list[BaseException] = []

    @miniagent
    async def subject(ctx: InteractionContext) -> None:
        ctx.reply("before")
        try:
            result = row.action(ctx, tmp_path)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            agent_errors.append(exc)
            raise

    context = MiniAgents(log_level_for_errors=logging.DEBUG)
    store.attach(context)
    async with context:
        messages, consumer_errors = await asyncio.wait_for(aread_everything(subject.inquire()), TIMEOUT)
        # the context keeps working after the bad input
        assert [m.text for m in await target.inquire("still there?").aresolve_messages()] == ["target replied"]
    with contextlib.suppress(MessageStoreError):  # a message that cannot be hashed cannot be stored either
        await store.aflush()
    stored = set(store.iter_hash_keys())
    for message in messages:
        with contextlib.suppress(ValueError):
            assert message.hash_key in stored, f"{short(message.text)!r} was delivered but not persisted"
    return Outcome([short(m.text) for m in messages], consumer_errors, agent_errors)  # type: ignore[misc]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteMessageStore]:
    message_store = SQLiteMessageStore(tmp_path / "messages.db")
    yield message_store
    message_store.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_bad_input_fails_clearly_naming_culprit_when_given(
    row: BadInput, store: SQLiteMessageStore, tmp_path: Path
) -> None:
    if row.no_context:
        assert MiniAgents.get_current_or_none() is None
        with pytest.raises(row.error) as raised:  # type: ignore[arg-type]
            row.action(None, tmp_path)
        error: BaseException | None = raised.value
    else:
        outcome = await arun_in_agent(row, store, tmp_path)
        error = outcome.error
        if row.error is None or (row.may_work and error is None):
            assert error is None, f"expected it to work, got {type(error).__name__}: {error}"
        else:
            assert error is not None, "the bad input went unnoticed"
        assert outcome.texts == ["before", *row.after], "messages around the bad input were lost"
        if error is None:
            return
    assert isinstance(error, row.error), f"expected {row.error.__name__}, got {type(error).__name__}: {error}"
    message = str(error)
    for excerpt in row.excerpts:
        assert excerpt in message, f"{excerpt!r} not in the error message: {message[:500]!r}"


def documented_rows() -> dict[str, str]:
    """Row id -> the error cell of its line in the docs table."""
    rows = {}
    for line in ERRORS_DOC.read_text().splitlines():
        match = re.match(r"\|\s*`([a-z0-9-]+)`\s*\|[^|]*\|\s*([^|]*)\|", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_errors_doc_lists_every_bad_input_when_read() -> None:
    documented = documented_rows()
    assert sorted(documented) == sorted(row.id for row in ROWS)
    for row in ROWS:
        expected = "works" if row.error is None else row.error.__name__
        assert expected in documented[row.id], f"{row.id}: the docs say {documented[row.id]!r}, the test {expected!r}"
    assert len(ROWS) >= 20
