"""
Batch runs in a notebook (SPEC 5.9; issue 13): `await mn.amap(agent, inputs, concurrency=8)` in a real kernel.
Rows come back in input order as a DataFrame (a list of BatchRow without pandas), failures kept per row; the cap
holds; bad arguments fail before anything is shown or called; the progress widget sends coalesced updates, and
its output ends holding its final static form (totals and failures, escaped); interrupting the cell cancels the
batch and keeps the rows that finished.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from html_inspection import assert_inert, without_own_stylesheet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_session import CellResult, IopubMessage, KernelSession

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SETUP = """
import asyncio
import miniagents.notebook as mn
from miniagents import InteractionContext, miniagent
from miniagents.ext.llm.offline import OfflineModel, OfflineReply, create_offline_agent
mn.activate()

usage = {"input_tokens": 5, "output_tokens": 2}
llm = create_offline_agent(OfflineModel(lambda m: OfflineReply("echo " + str(m[-1]), usage=usage)))
calls = []

@miniagent
async def picky(ctx: InteractionContext) -> None:
    [message] = await ctx.messages.aresolve_messages()
    calls.append(message.text)
    if message.text.endswith("3"):
        raise ValueError(f"no <b>{message.text}</b> & <script>alert(1)</script>")
    ctx.reply(llm.inquire(message))


class Gate:
    '''Calls that wait until released, counted as they start and when cancelled (events, not sleeps).'''

    def __init__(self, at_once):
        self.at_once, self.started, self.cancelled, self.running = at_once, [], [], 0
        self.most_at_once = 0
        self.full, self.release = asyncio.Event(), asyncio.Event()

    def agent(self, quick=()):
        @miniagent
        async def gated(ctx: InteractionContext) -> None:
            [message] = await ctx.messages.aresolve_messages()
            if message.text in quick:
                ctx.reply("quick " + message.text)
                return
            self.started.append(message.text)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            if self.running == self.at_once:
                self.full.set()
                print("FULL", flush=True)
            try:
                await self.release.wait()
                ctx.reply(message.text.upper())
            except asyncio.CancelledError:
                self.cancelled.append(message.text)
                raise
            finally:
                self.running -= 1

        return gated


async def settle(turns=50):
    for _ in range(turns):
        await asyncio.sleep(0)
"""


@pytest.fixture(scope="module")
def batch_kernel(kernel_spec_dir: Path) -> Iterator[KernelSession]:
    """One kernel for the tests that only read values (each one resets `calls`)."""
    session = KernelSession(kernel_spec_dir)
    try:
        session.run(SETUP)
        yield session
    finally:
        session.shutdown()


def _displays(cell: CellResult) -> list[IopubMessage]:
    return [m for m in cell.messages if m.msg_type == "display_data"]


def _final_update(cell: CellResult) -> dict[str, Any]:
    """The data of the last update of the cell's (one) widget display: its final static form."""
    (shown,) = _displays(cell)
    display_id = shown.content["transient"]["display_id"]
    updates = [
        m
        for m in cell.messages
        if m.msg_type == "update_display_data" and m.content["transient"]["display_id"] == display_id
    ]
    assert updates, "the widget's output was never updated with its final form"
    return updates[-1].content["data"]


# ----------------------------------------------------------------------------------------------- results


def test_rows_come_back_in_input_order_as_a_dataframe_with_failures_kept(batch_kernel: KernelSession) -> None:
    batch_kernel.run("calls.clear()\ndf = await mn.amap(picky, [f'item {i}' for i in range(15)], concurrency=4)")

    assert batch_kernel.value("type(df).__name__") == "DataFrame"
    assert batch_kernel.value("df.index.name") == "index"
    assert batch_kernel.value("list(df.index)") == list(range(15))
    assert batch_kernel.value("list(df.columns)") == [
        "input",
        "ok",
        "text",
        "error",
        "input_tokens",
        "output_tokens",
        "seconds",
    ]
    assert batch_kernel.value("list(df.input)") == [f"item {i}" for i in range(15)]
    assert batch_kernel.value("[bool(ok) for ok in df.ok]") == [i not in (3, 13) for i in range(15)]
    assert batch_kernel.value("list(df.text)") == ["" if i in (3, 13) else f"echo item {i}" for i in range(15)]
    assert batch_kernel.value("df.error[3]") == "ValueError: no <b>item 3</b> & <script>alert(1)</script>"
    assert batch_kernel.value("df.error[0]") == ""
    assert batch_kernel.value("[int(n) for n in df.input_tokens]") == [0 if i in (3, 13) else 5 for i in range(15)]
    assert batch_kernel.value("int(df.output_tokens.sum())") == 13 * 2
    assert batch_kernel.value("sorted(calls)") == sorted(f"item {i}" for i in range(15))  # one call per input


def test_without_pandas_the_rows_come_back_as_a_list_of_batch_rows(kernel_session: KernelSession) -> None:
    kernel_session.run("import sys\nsys.modules['pandas'] = None  # as if pandas were not installed\n" + SETUP)

    kernel_session.run("rows = await mn.amap(picky, ['a', 'b3', 'c'])")

    assert kernel_session.value("[type(row).__name__ for row in rows]") == ["BatchRow"] * 3
    assert kernel_session.value("[(row.index, row.input, row.ok, row.text) for row in rows]") == [
        [0, "a", True, "echo a"],
        [1, "b3", False, ""],
        [2, "c", True, "echo c"],
    ]


def test_the_cap_holds_while_calls_are_at_work(batch_kernel: KernelSession) -> None:
    batch_kernel.run(
        "gate = Gate(at_once=3)\n"
        "batch = asyncio.ensure_future(mn.amap(gate.agent(), [f'x{i}' for i in range(12)], concurrency=3))\n"
        "await asyncio.wait_for(gate.full.wait(), 10)\n"
        "await settle()\n"
        "at_the_cap = list(gate.started)\n"
        "gate.release.set()\n"
        "df = await batch"
    )

    assert batch_kernel.value("at_the_cap") == ["x0", "x1", "x2"]  # no fourth call while three were at work
    assert batch_kernel.value("gate.most_at_once") == 3
    assert batch_kernel.value("list(df.text)") == [f"X{i}" for i in range(12)]


# ------------------------------------------------------------------------------------------- bad arguments

# each strategy gives the Python source of a bad value (sent to the kernel as code)
BAD_CONCURRENCY = st.one_of(
    st.integers(max_value=0).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["True", "False", "None", "'8'", "[2]", "float('inf')", "float('nan')"]),
)
NOT_AN_ITERABLE_OF_INPUTS = st.one_of(
    st.integers().map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=8).map(repr),
    st.binary(max_size=8).map(repr),
    st.sampled_from(["None", "True", "Message(text='one')", "llm.inquire('one')", "object()"]),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(concurrency=BAD_CONCURRENCY)
def test_a_bad_concurrency_is_named_before_anything_is_shown_or_called(
    batch_kernel: KernelSession, concurrency: str
) -> None:
    cell = batch_kernel.run(
        f"calls.clear()\nawait mn.amap(picky, ['a', 'b'], concurrency={concurrency})", allow_error=True
    )

    assert cell.reply["ename"] == "ValueError"
    assert cell.reply["evalue"].startswith("concurrency must be a whole number >= 1, got ")
    assert _displays(cell) == []
    assert batch_kernel.value("calls") == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=NOT_AN_ITERABLE_OF_INPUTS)
def test_inputs_that_are_not_an_iterable_of_inputs_are_named_before_anything_is_shown(
    batch_kernel: KernelSession, inputs: str
) -> None:
    cell = batch_kernel.run(
        f"from miniagents import Message\ncalls.clear()\nawait mn.amap(picky, {inputs})", allow_error=True
    )

    assert cell.reply["ename"] == "TypeError"
    assert cell.reply["evalue"].startswith("amap() takes an iterable of inputs")
    assert _displays(cell) == []
    assert batch_kernel.value("calls") == []


def test_a_kwarg_the_agent_cannot_take_is_named_before_anything_is_shown(batch_kernel: KernelSession) -> None:
    cell = batch_kernel.run("calls.clear()\nawait mn.amap(picky, ['a', 'b'], client=object())", allow_error=True)

    assert cell.reply["ename"] == "ValueError"
    assert cell.reply["evalue"].startswith("PICKY: function kwargs must be freezable")
    assert _displays(cell) == []
    assert batch_kernel.value("calls") == []


def test_what_is_not_an_agent_is_named(batch_kernel: KernelSession) -> None:
    cell = batch_kernel.run("await mn.amap(print, ['a'])", allow_error=True)

    assert (cell.reply["ename"], cell.reply["evalue"]) == (
        "TypeError",
        "amap() runs a MiniAgent, got builtin_function_or_method: <built-in function print>",
    )


# ---------------------------------------------------------------------------------------- the widget


def test_output_ends_holding_the_final_static_form_with_totals_and_escaped_failures(
    batch_kernel: KernelSession,
) -> None:
    cell = batch_kernel.run("df = await mn.amap(picky, [f'item {i}' for i in range(15)], concurrency=4)")

    (shown,) = _displays(cell)
    final = _final_update(cell)

    assert WIDGET_VIEW in shown.content["data"]  # live while the batch runs
    assert shown.content["data"]["text/plain"].startswith("PICKY over 15 inputs: running: 0 of 15")
    assert WIDGET_VIEW not in final  # ended: a reader without the kernel sees the static form
    assert final["text/plain"] == (
        "PICKY over 15 inputs: 13 done, 2 failed (of 15)\n"
        "tokens: 65 in, 26 out\n"
        "failed:\n"
        "  [3] 'item 3': ValueError: no <b>item 3</b> & <script>alert(1)</script>\n"
        "  [13] 'item 13': ValueError: no <b>item 13</b> & <script>alert(1)</script>"
    )
    html = final["text/html"]
    assert html.startswith("<style>")  # it carries its own stylesheet
    assert_inert(html)
    body = without_own_stylesheet(html)
    assert body.startswith('<div class="miniagents-batch" data-status="done">')
    assert "no &lt;b&gt;item 3&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&#x27;item 13&#x27;" in body
    assert 'aria-valuenow="15"' in body


def test_many_failures_are_listed_up_to_a_limit_and_counted(batch_kernel: KernelSession) -> None:
    cell = batch_kernel.run("df = await mn.amap(picky, [f'row {i}3' for i in range(30)])")

    final = _final_update(cell)["text/plain"]

    assert final.startswith("PICKY over 30 inputs: 0 done, 30 failed (of 30)")
    assert final.count("ValueError") == 20
    assert final.endswith("  ... and 10 more")


def test_progress_of_2000_rows_reaches_the_page_in_a_bounded_number_of_messages(kernel_session: KernelSession) -> None:
    kernel_session.run(
        SETUP
        + """
@miniagent
async def quick(ctx: InteractionContext) -> None:
    ctx.reply(ctx.messages)
"""
    )

    cell = kernel_session.run("df = await mn.amap(quick, [str(i) for i in range(2000)], concurrency=8)", timeout=120)

    model_id = _displays(cell)[0].content["data"][WIDGET_VIEW]["model_id"]
    messages = kernel_session.comm_messages(model_id)
    elapsed = kernel_session.value("mn.last_batch().progress.elapsed")
    rate = kernel_session.value("mn.BatchProgressWidget.max_updates_per_second")
    summaries = [
        event
        for m in messages
        if m.content["data"].get("method") == "custom"
        for event in m.content["data"]["content"]["events"]
        if event[0] == "summary"
    ]
    # one flush per 1/rate seconds at most, plus the first one, the final events and the final `state` trait
    assert len(messages) <= math.ceil(elapsed * rate) + 3, (len(messages), elapsed)
    assert len(messages) < 2000 // 4  # coalesced: nowhere near a message per row (4,000 progress changes)
    assert summaries[-1][2]["done"] == 2000
    assert summaries[-1][2]["status"] == "done"
    assert kernel_session.value("list(df.text) == [str(i) for i in range(2000)]")


# ------------------------------------------------------------------------------------------- interrupts


def test_interrupting_the_cell_cancels_the_batch_and_keeps_the_rows_that_finished(
    kernel_session: KernelSession,
) -> None:
    kernel_session.run(SETUP + "gate = Gate(at_once=2)\nquick = {'q0', 'q1', 'q2'}")
    inputs = ["q0", "q1", "q2", "s3", "s4", "s5", "s6", "s7"]
    msg_id = kernel_session.start(f"df = await mn.amap(gate.agent(quick), {inputs!r}, concurrency=2)")
    kernel_session.wait_for(lambda m: m.parent_id == msg_id and m.msg_type == "stream" and "FULL" in m.content["text"])

    kernel_session.manager.interrupt_kernel()
    kernel_session.wait_idle_after(msg_id)

    cell_messages = [m for m in kernel_session.iopub if m.parent_id == msg_id]
    (error,) = [m for m in cell_messages if m.msg_type == "error"]
    assert error.content["ename"] == "CancelledError"
    assert any("mn.last_batch().rows" in line for line in error.content["traceback"])  # the note says where
    final = _final_update(CellResult({"status": "error"}, cell_messages))
    assert WIDGET_VIEW not in final
    assert final["text/plain"].startswith(
        "GATED over 8 inputs: interrupted after 3 of 8 (3 done, 0 failed); the rows finished are kept"
    )
    assert 'data-status="interrupted"' in final["text/html"]
    # the calls at work were cancelled, nothing started after the interrupt, and the finished rows are kept
    kernel_session.run("await settle()")  # (a call that would wrongly start after the interrupt gets its turn)
    assert kernel_session.value("gate.started") == ["s3", "s4"]
    assert kernel_session.value("sorted(gate.cancelled)") == ["s3", "s4"]
    assert kernel_session.value("gate.running") == 0
    assert kernel_session.value("[(row.index, row.text) for row in mn.last_batch().rows]") == [
        [0, "quick q0"],
        [1, "quick q1"],
        [2, "quick q2"],
    ]
    assert kernel_session.value("list(mn.last_batch().dataframe().text)") == ["quick q0", "quick q1", "quick q2"]
    assert kernel_session.value("'df' in globals()") is False


def test_importing_the_notebook_layer_does_not_import_pandas() -> None:
    import subprocess
    import sys

    code = "import sys, miniagents.notebook as mn\nassert mn.amap and 'pandas' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


@settings(max_examples=60, deadline=None)
@given(inputs=st.lists(st.text(max_size=40), min_size=1, max_size=5), error_text=st.text(max_size=60))
def test_static_forms_show_any_input_and_error_as_inert_escaped_text(inputs: list[str], error_text: str) -> None:
    from html import escape

    from miniagents.batch import BatchProgress, BatchRow
    from miniagents.notebook import BatchProgressWidget

    widget = BatchProgressWidget("AGENT <b>", total=len(inputs))
    for index, item in enumerate(inputs):
        widget.on_row(BatchRow(index, item, error=ValueError(error_text)))
    widget.on_progress(BatchProgress(total=len(inputs), failed=len(inputs)))
    widget.end()
    html, text = widget.to_html(), widget.to_text()

    assert_inert(html)
    assert 'data-status="done"' in html and "AGENT &lt;b&gt;" in html
    shown_error = f"ValueError: {error_text}" if error_text else "ValueError"
    for index, item in enumerate(inputs):
        shown = repr(item) if len(repr(item)) <= 80 else repr(item)[:79] + "…"  # a long input is cut short
        assert f'<code class="miniagents-batch-input">{escape(shown)}</code>' in html
        assert f"  [{index}] {shown}: " in text
    assert f'<span class="miniagents-batch-error">{escape(shown_error)}</span>' in html
    assert text.startswith(f"AGENT <b> over {len(inputs)} inputs: 0 done, {len(inputs)} failed (of {len(inputs)})")
    widget.close()
