"""Acceptance tests for PromisingContext (SPEC 3.1): activation, task tracking, handlers, errors."""

from __future__ import annotations

import asyncio
import logging

import pytest

from miniagents.promising.promising import Promise, PromisingContext, StreamedPromise

LOGGER_NAME = "miniagents"


def _levels_of_records_about(caplog, text: str) -> list[int]:
    """Levels of the log records whose message or attached exception mentions `text`."""
    return [
        record.levelno
        for record in caplog.records
        if text in record.getMessage() or (record.exc_info and text in str(record.exc_info[1]))
    ]


def _other_tasks() -> set[asyncio.Task]:
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks() if task is not current and not task.done()}


# ------------------------------------------------------------------ activation


async def test_async_with_makes_context_current_inside_block():
    context = PromisingContext()
    async with context as entered:
        assert entered is context
        assert PromisingContext.get_current() is context
    assert PromisingContext.get_current_or_none() is None


async def test_activate_and_afinalize_make_context_current_until_finalized():
    context = PromisingContext()
    context.activate()
    try:
        assert PromisingContext.get_current() is context
    finally:
        await context.afinalize()
    assert PromisingContext.get_current_or_none() is None


async def test_afinalize_waits_for_started_task_to_finish():
    finished = []

    async def work():
        for _ in range(5):
            await asyncio.sleep(0)
        finished.append(True)

    context = PromisingContext()
    context.activate()
    context.start_asap(work())
    await context.afinalize()
    assert finished == [True]


async def test_afinalize_waits_for_tasks_started_while_waiting():
    finished = []

    async def grandchild():
        for _ in range(5):
            await asyncio.sleep(0)
        finished.append("grandchild")

    async def child():
        await asyncio.sleep(0)
        PromisingContext.get_current().start_asap(grandchild())
        finished.append("child")

    async with PromisingContext() as context:
        context.start_asap(child())
    assert finished == ["child", "grandchild"]


async def test_afinalize_waits_for_background_promise_resolution():
    release = asyncio.Event()
    resolved = []

    async def resolver(_):
        await release.wait()
        resolved.append(True)
        return 1

    async def releaser():
        await asyncio.sleep(0)
        release.set()

    async with PromisingContext() as context:
        Promise(start_asap=True, resolver=resolver)
        context.start_asap(releaser())
    assert resolved == [True]


async def test_activate_raises_when_context_already_active():
    async with PromisingContext() as context:
        with pytest.raises(RuntimeError):
            context.activate()


async def test_async_with_raises_when_context_already_active():
    context = PromisingContext()
    async with context:
        with pytest.raises(RuntimeError):
            async with context:
                pass  # pragma: no cover


def test_get_current_raises_runtime_error_mentioning_async_with_when_none_active():
    with pytest.raises(RuntimeError) as error_info:
        PromisingContext.get_current()
    assert "async with MiniAgents()" in str(error_info.value)


async def test_get_current_raises_runtime_error_after_context_finalized():
    async with PromisingContext():
        pass
    with pytest.raises(RuntimeError, match="async with MiniAgents"):
        PromisingContext.get_current()


async def test_get_current_on_subclass_raises_type_error_when_plain_context_active():
    class SpecialContext(PromisingContext):
        pass

    async with PromisingContext():
        with pytest.raises(TypeError):
            SpecialContext.get_current()


async def test_get_current_on_subclass_returns_context_when_subclass_active():
    class SpecialContext(PromisingContext):
        pass

    async with SpecialContext() as context:
        assert SpecialContext.get_current() is context
        assert PromisingContext.get_current() is context


# --------------------------------------------------------------------- nesting


async def test_nested_context_records_parent():
    async with PromisingContext() as outer:
        async with PromisingContext() as inner:
            assert inner.parent is outer
            assert PromisingContext.get_current() is inner
        assert PromisingContext.get_current() is outer


async def test_top_level_context_has_no_parent():
    async with PromisingContext() as context:
        assert context.parent is None


async def test_parent_resolution_handlers_run_for_promise_in_nested_context():
    seen = []

    async def outer_handler(promise, result):
        seen.append(("outer", result))

    async def inner_handler(promise, result):
        seen.append(("inner", result))

    async with PromisingContext(on_promise_resolved=outer_handler):
        async with PromisingContext(on_promise_resolved=[inner_handler]):
            Promise(prefill_result="value")
    assert sorted(seen) == [("inner", "value"), ("outer", "value")]


# -------------------------------------------------------------------- handlers


async def test_on_promise_resolved_works_as_decorator():
    seen = []
    context = PromisingContext()

    @context.on_promise_resolved
    async def handler(promise, result):
        seen.append((promise, result))

    assert handler is not None and asyncio.iscoroutinefunction(handler)
    async with context:
        promise = Promise(prefill_result=7)
    assert seen == [(promise, 7)]


async def test_on_promise_resolved_works_as_plain_registrar():
    seen = []

    async def handler(promise, result):
        seen.append(result)

    async with PromisingContext() as context:
        context.on_promise_resolved(handler)
        await Promise(start_asap=False, resolver=lambda _: asyncio.sleep(0, result="r"))
    assert seen == ["r"]


async def test_on_promise_resolved_handler_is_scheduled_not_awaited_inline():
    handler_tasks = []

    async def handler(promise, result):
        handler_tasks.append(asyncio.current_task())

    async with PromisingContext(on_promise_resolved=handler):
        Promise(prefill_result=1)
        assert handler_tasks == []  # constructing the promise did not run the handler inline
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(handler_tasks) == 1
        assert handler_tasks[0] is not asyncio.current_task()


async def test_on_promise_resolved_handler_does_not_block_awaiter():
    release = asyncio.Event()
    handler_done = []

    async def slow_handler(promise, result):
        await release.wait()
        handler_done.append(result)

    async def resolver(_):
        return "done"

    async with PromisingContext(on_promise_resolved=slow_handler) as context:
        result = await asyncio.wait_for(Promise(start_asap=False, resolver=resolver), timeout=5)
        assert result == "done"
        assert handler_done == []
        release.set()
        await context.aflush_tasks()
        assert handler_done == ["done"]


async def test_on_promise_resolved_handler_runs_once_per_promise_including_prefilled():
    calls = []

    async def handler(promise, result):
        calls.append(promise)

    async def resolver(_):
        await asyncio.sleep(0)
        return "lazy"

    async def streamer(_):
        yield 1
        yield 2

    async def collect(promise):
        return tuple([piece async for piece in promise])

    async with PromisingContext(on_promise_resolved=handler):
        prefilled = Promise(prefill_result="pre")
        lazy = Promise(start_asap=False, resolver=resolver)
        eager = Promise(start_asap=True, resolver=resolver)
        streamed = StreamedPromise(streamer=streamer, resolver=collect)
        await asyncio.gather(lazy, lazy, eager, eager, streamed, streamed)
        await lazy
        await prefilled
        await streamed
    assert sorted(map(id, calls)) == sorted(map(id, [prefilled, lazy, eager, streamed]))


async def test_on_promise_resolved_handler_receives_result_object():
    received = []
    value = {"a": 1}

    async def handler(promise, result):
        received.append(result)

    async with PromisingContext(on_promise_resolved=handler):
        await Promise(start_asap=False, resolver=lambda _: asyncio.sleep(0, result=value))
    assert len(received) == 1 and received[0] is value


# ------------------------------------------------------------------ start_asap


async def test_start_asap_returns_task_with_result():
    async def work():
        return 5

    async with PromisingContext() as context:
        task = context.start_asap(work())
        assert await task == 5


async def test_start_asap_does_not_run_before_task_switch():
    started = []

    async def work():
        started.append(True)

    async with PromisingContext() as context:
        context.start_asap(work())
        assert started == []
        await asyncio.sleep(0)
        assert started == [True]


async def test_start_asap_error_is_reraised_from_task_when_not_suppressed():
    async def broken():
        raise ValueError("boom")

    async with PromisingContext() as context:
        task = context.start_asap(broken())
        with pytest.raises(ValueError, match="boom"):
            await task


async def test_start_asap_error_is_logged_at_debug_by_default(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)

    async def broken():
        raise ValueError("logged-boom")

    async with PromisingContext() as context:
        task = context.start_asap(broken())
        await asyncio.wait([task])
    levels = _levels_of_records_about(caplog, "logged-boom")
    assert levels
    assert set(levels) == {logging.DEBUG}


async def test_start_asap_error_is_logged_at_given_level(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)

    async def broken():
        raise ValueError("warned-boom")

    async with PromisingContext() as context:
        task = context.start_asap(broken(), log_level_for_errors=logging.WARNING)
        await asyncio.wait([task])
    assert logging.WARNING in _levels_of_records_about(caplog, "warned-boom")


async def test_start_asap_error_is_not_reraised_when_suppressed(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)

    async def broken():
        raise ValueError("suppressed-boom")

    async with PromisingContext() as context:
        task = context.start_asap(broken(), suppress_errors=True, log_level_for_errors=logging.INFO)
        assert await task is None
    assert logging.INFO in _levels_of_records_about(caplog, "suppressed-boom")


async def test_start_asap_failed_task_does_not_break_async_with_exit():
    async def broken():
        raise ValueError("boom")

    async with PromisingContext() as context:
        context.start_asap(broken())
    assert PromisingContext.get_current_or_none() is None


# ---------------------------------------------------------------- aflush_tasks


async def test_aflush_tasks_waits_for_tasks_without_deactivating():
    finished = []

    async def work():
        for _ in range(3):
            await asyncio.sleep(0)
        finished.append(True)

    async with PromisingContext() as context:
        context.start_asap(work())
        await context.aflush_tasks()
        assert finished == [True]
        assert PromisingContext.get_current() is context
        assert _other_tasks() == set()


async def test_aflush_tasks_waits_for_tasks_started_while_flushing():
    finished = []

    async def second():
        await asyncio.sleep(0)
        finished.append("second")

    async def first():
        await asyncio.sleep(0)
        PromisingContext.get_current().start_asap(second())
        finished.append("first")

    async with PromisingContext() as context:
        context.start_asap(first())
        await context.aflush_tasks()
        assert finished == ["first", "second"]


async def test_aflush_tasks_returns_when_called_from_tracked_task():
    async with PromisingContext() as context:

        async def flushing_task():
            await context.aflush_tasks()
            return "flushed"

        task = context.start_asap(flushing_task())
        assert await asyncio.wait_for(task, timeout=5) == "flushed"


# ---------------------------------------------------------------- cleanliness


async def test_afinalize_leaves_no_pending_task_when_things_failed():
    async def broken_resolver(_):
        await asyncio.sleep(0)
        raise ValueError("resolver")

    async def broken_streamer(_):
        yield 1
        raise ValueError("streamer")

    async def broken_handler(promise, result):
        raise ValueError("handler")

    async def broken_task():
        await asyncio.sleep(0)
        raise ValueError("task")

    async with PromisingContext(on_promise_resolved=broken_handler) as context:
        Promise(start_asap=True, resolver=broken_resolver)
        StreamedPromise(streamer=broken_streamer, resolver=broken_resolver, start_asap=True)
        StreamedPromise(streamer=lambda _: 42, start_asap=True)
        Promise(prefill_result="handler fails")
        context.start_asap(broken_task())
        context.start_asap(broken_task(), suppress_errors=True)
    assert _other_tasks() == set()
    assert PromisingContext.get_current_or_none() is None


async def test_afinalize_deactivates_context_when_body_raises():
    with pytest.raises(ValueError, match="body"):
        async with PromisingContext():
            raise ValueError("body")
    assert PromisingContext.get_current_or_none() is None
