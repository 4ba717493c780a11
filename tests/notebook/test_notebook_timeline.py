"""
The timeline view (SPEC 5.8, issue 13): one bar per agent call, nested under its caller, live, status-coloured,
with static text and SVG forms that read without a kernel, names escaped.
"""

from __future__ import annotations

import asyncio
import re
import sys
import xml.etree.ElementTree as ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_session import KernelSession

import miniagents.notebook as mn
from miniagents import InteractionContext, MiniAgent, MiniAgents, miniagent
from miniagents.notebook.timeline_export import STATUS_COLOURS, TimelineBar

TIMEOUT = 10
SVG = "{http://www.w3.org/2000/svg}"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SVG_ELEMENTS = {"svg", "g", "line", "text", "title", "rect"}


def _three_levels(gate: asyncio.Event) -> MiniAgent:
    """BOSS calls LEAD_A and LEAD_B in parallel; each calls three WORKERs in parallel; WORKER 2 fails."""

    @miniagent
    async def worker(ctx: InteractionContext, n: int) -> None:
        if n == 2:
            raise ValueError(f'worker {n} <img src=x onerror="alert(1)"> broke')
        await gate.wait()
        ctx.reply(f"result {n}")

    @miniagent
    async def lead(ctx: InteractionContext) -> None:
        ctx.reply([worker.inquire(n=n) for n in range(3)])

    @miniagent
    async def boss(ctx: InteractionContext) -> None:
        ctx.reply([lead.fork(alias="LEAD_A").inquire(), lead.fork(alias="LEAD_B").inquire()])

    return boss


async def _run(timeline: mn.Timeline) -> None:
    gate = asyncio.Event()
    replies = _three_levels(gate).inquire()
    await asyncio.sleep(0)  # (the calls start; the workers wait at the gate)
    gate.set()
    with pytest.raises(ValueError, match="worker 2"):
        await asyncio.wait_for(replies.aresolve_messages(), TIMEOUT)
    await asyncio.wait_for(timeline.aquiet(), TIMEOUT)


def _svg_of(html: str) -> ElementTree.Element:
    match = re.search(r"<svg.*</svg>", html, re.DOTALL)
    assert match is not None, html[:200]
    return ElementTree.fromstring(match.group(0))


def _rows(svg: ElementTree.Element) -> list[ElementTree.Element]:
    return [g for g in svg.iter(f"{SVG}g") if g.get("class") == "miniagents-timeline-row"]


@pytest.mark.parametrize("scale", ["seconds", "steps"])
async def test_timeline_nests_parallel_calls_of_a_three_level_run_under_their_callers(scale: str) -> None:
    async with MiniAgents():
        timeline = mn.Timeline(scale=scale)
        await _run(timeline)
        bars = timeline.bars()

    assert [(bar.agent, bar.depth) for bar in bars] == [
        ("BOSS", 0),
        ("LEAD_A", 1),
        *[("WORKER", 2)] * 3,
        ("LEAD_B", 1),
        *[("WORKER", 2)] * 3,
    ]
    boss, lead_a, lead_b = bars[0], bars[1], bars[5]
    for parent, children in ((boss, [lead_a, lead_b]), (lead_a, bars[2:5]), (lead_b, bars[6:9])):
        for child in children:  # a call owns the calls it made: its bar spans theirs
            assert parent.start is not None and child.start is not None and parent.end is not None
            assert child.end is not None
            assert parent.start <= child.start and child.end <= parent.end
    workers = [bar for bar in bars if bar.agent == "WORKER"]
    assert max(bar.start or 0 for bar in workers) < min(bar.end or 0 for bar in workers)  # all six overlap
    assert lead_a.start is not None and lead_b.start is not None and lead_a.end is not None
    assert lead_b.start < lead_a.end  # the two leads ran in parallel


async def test_timeline_colours_failed_calls_and_keeps_their_error() -> None:
    async with MiniAgents():
        timeline = mn.Timeline()
        await _run(timeline)

    statuses = [bar.status for bar in timeline.bars()]
    assert statuses.count("failed") == 2 and statuses.count("finished") == 7
    rows = _rows(_svg_of(timeline.to_html()))
    for row, bar in zip(rows, timeline.bars(), strict=True):
        assert row.get("data-status") == bar.status
        (rect,) = row.iter(f"{SVG}rect")
        assert rect.get("fill") == STATUS_COLOURS[bar.status]
        title = row.find(f"{SVG}title")
        assert title is not None and title.text is not None
        if bar.status == "failed":
            assert 'ValueError: worker 2 <img src=x onerror="alert(1)"> broke' in title.text
    assert "[failed]" in timeline.to_text()
    assert timeline.state["calls"][timeline.bars()[4].id]["status"] == "failed"


async def test_static_svg_parses_as_xml_with_one_bar_per_call_and_only_drawing_elements() -> None:
    async with MiniAgents():
        timeline = mn.Timeline()
        await _run(timeline)

    svg = _svg_of(timeline.to_html())
    assert ElementTree.fromstring(timeline.to_svg()).tag == f"{SVG}svg"
    assert len(_rows(svg)) == len(list(svg.iter(f"{SVG}rect"))) == len(timeline.calls) == 9
    assert {element.tag.removeprefix(SVG) for element in svg.iter()} <= SVG_ELEMENTS
    assert not [name for element in svg.iter() for name in element.attrib if name.lower().startswith("on")]


async def test_critical_path_is_the_chain_of_calls_that_ends_last() -> None:
    release_slow = asyncio.Event()

    @miniagent
    async def fast(ctx: InteractionContext) -> None:
        ctx.reply("fast")

    @miniagent
    async def slow(ctx: InteractionContext) -> None:
        await release_slow.wait()
        ctx.reply("slow")

    @miniagent
    async def fan_out(ctx: InteractionContext) -> None:
        ctx.reply([fast.inquire(), slow.inquire(), fast.inquire()])

    async with MiniAgents():
        timeline = mn.Timeline(scale="steps")
        replies = fan_out.inquire()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        release_slow.set()
        await asyncio.wait_for(replies.aresolve_messages(), TIMEOUT)
        await asyncio.wait_for(timeline.aquiet(), TIMEOUT)

    assert [(bar.agent, bar.critical) for bar in timeline.bars()] == [
        ("FAN_OUT", True),
        ("FAST", False),
        ("SLOW", True),
        ("FAST", False),
    ]
    assert [line[0] for line in timeline.to_text().splitlines()[1:]] == ["*", " ", "*", " "]


async def test_critical_path_goes_back_through_what_the_last_call_waited_for() -> None:
    @miniagent
    async def researcher(ctx: InteractionContext, words: int) -> None:
        for _ in range(words):
            await asyncio.sleep(0)  # (one step of the event loop per word: more words end later)
        ctx.reply(f"{words} words")

    @miniagent
    async def writer(ctx: InteractionContext) -> None:
        ctx.reply("draft")

    @miniagent
    async def editor(ctx: InteractionContext) -> None:
        notes = [researcher.fork(alias=f"R{words}").inquire(words=words) for words in (3, 30, 10)]
        for note in notes:
            await note.aresolve_messages()
        ctx.reply(writer.inquire(notes))

    async with MiniAgents():
        timeline = mn.Timeline(scale="steps")
        await asyncio.wait_for(editor.inquire().aresolve_messages(), TIMEOUT)
        await asyncio.wait_for(timeline.aquiet(), TIMEOUT)

    critical = [bar.agent for bar in timeline.bars() if bar.critical]
    assert critical == ["EDITOR", "R30", "WRITER"]  # the writer waited for the slowest researcher


async def test_steps_scale_draws_the_same_run_the_same_way_every_time() -> None:
    drawings = []
    for _ in range(3):
        async with MiniAgents():
            timeline = mn.Timeline(scale="steps")
            await _run(timeline)
            drawings.append((timeline.to_text(), timeline.to_html()))
    assert drawings[0] == drawings[1] == drawings[2]
    assert "0.0" not in drawings[0][0]  # no seconds in it


async def test_timeline_follows_only_calls_made_after_it_was_created() -> None:
    async with MiniAgents():
        gate = asyncio.Event()
        gate.set()
        before = _three_levels(gate).inquire()
        with pytest.raises(ValueError):
            await before.aresolve_messages()
        timeline = mn.Timeline()
        assert timeline.to_text() == "(no agent calls yet)"
        assert "no agent calls yet" in timeline.to_html()
        await _run(timeline)
    assert len(timeline.bars()) == 9


async def test_a_chain_of_calls_deeper_than_the_recursion_limit_draws() -> None:
    depth = sys.getrecursionlimit() + 200

    @miniagent
    async def nested(ctx: InteractionContext, level: int) -> None:
        if level:
            ctx.reply(nested.inquire(level=level - 1))
        else:
            ctx.reply("bottom")

    async with MiniAgents():
        timeline = mn.Timeline(scale="steps")
        await asyncio.wait_for(nested.inquire(level=depth - 1).aresolve_messages(), 60)
        await asyncio.wait_for(timeline.aquiet(), 60)
        bars = timeline.bars()
        svg = _svg_of(timeline.to_html())

    assert [bar.depth for bar in bars] == list(range(depth))
    assert all(bar.critical for bar in bars)
    assert len(_rows(svg)) == depth


@settings(max_examples=40, deadline=None)
@given(st.text().filter(lambda scale: scale not in ("seconds", "steps")))
def test_unknown_scale_is_refused_naming_it(scale: str) -> None:
    with pytest.raises(ValueError, match="Timeline scale must be one of 'seconds', 'steps'"):
        mn.Timeline(context=MiniAgents(), scale=scale)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=60))
def test_any_agent_name_is_escaped_in_the_svg_and_readable_in_the_text(name: str) -> None:
    @miniagent(alias=name)
    async def named(ctx: InteractionContext) -> None:
        ctx.reply("ok")

    async def run() -> mn.Timeline:
        async with MiniAgents():
            timeline = mn.Timeline()
            await named.inquire().aresolve_messages()
            await asyncio.wait_for(timeline.aquiet(), TIMEOUT)
            return timeline

    timeline = asyncio.run(run())
    svg = _svg_of(timeline.to_html())  # parses: nothing in the name breaks out of its text or attribute
    (row,) = _rows(svg)
    # what an XML parser gives back: line ends normalised, and in attributes every white space a space
    xml_safe = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]", "\ufffd", name)
    xml_safe = xml_safe.replace("\r\n", "\n").replace("\r", "\n")
    assert row.get("data-agent") == re.sub("[\t\n]", " ", xml_safe)
    title = row.find(f"{SVG}title")
    assert title is not None and (title.text or "").startswith(xml_safe)
    assert {element.tag.removeprefix(SVG) for element in svg.iter()} <= SVG_ELEMENTS
    assert not [key for element in svg.iter() for key in element.attrib if key.lower().startswith("on")]
    (line,) = timeline.to_text().splitlines()[1:]  # one line, whatever the name holds
    assert "[finished]" in line


def test_bar_of_a_running_call_ends_at_now() -> None:
    running = TimelineBar("c1", "A", 0, "running", start=1.0, end=None)
    pending = TimelineBar("c2", "B", 0, "pending", start=None, end=None)
    assert running.end_or(3.5) == 3.5
    assert running.end_or(0.5) == 1.0
    assert pending.end_or(3.5) is None


# ------------------------------------------------------------------ in a real kernel

SETUP = """
import asyncio
import miniagents.notebook as mn
from miniagents import InteractionContext, miniagent
mn.activate()
gate = asyncio.Event()

@miniagent
async def worker(ctx: InteractionContext, n: int) -> None:
    await gate.wait()
    ctx.reply(f"result {n}")

@miniagent
async def boss(ctx: InteractionContext) -> None:
    ctx.reply([worker.inquire(n=n) for n in range(3)])
"""


def test_timeline_in_a_kernel_sends_live_bars_then_its_final_svg_to_its_output(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP)
    shown = kernel_session.run("timeline = mn.Timeline()\ntimeline").messages
    (display,) = [m for m in shown if m.msg_type == "display_data"]
    display_id = display.content["transient"]["display_id"]
    model_id = kernel_session.value("timeline.model_id")

    kernel_session.run("replies = boss.inquire()")
    live = kernel_session.wait_for(
        lambda m: (
            m.msg_type == "update_display_data"
            and m.content["transient"]["display_id"] == display_id
            and WIDGET_VIEW in m.content["data"]
        )
    )
    assert "running" in live.content["data"]["text/plain"]
    kernel_session.run("gate.set()\nawait replies.aresolve_messages()\nawait timeline.aquiet()")
    final = [
        m
        for m in kernel_session.iopub
        if m.msg_type == "update_display_data" and m.content["transient"]["display_id"] == display_id
    ][-1]

    events = [
        event
        for message in kernel_session.comm_messages(model_id)
        for event in (message.content["data"].get("content") or {}).get("events", [])
    ]
    assert any(event[0] == "clock" for event in events)
    started = [event for event in events if event[0] == "call" and event[2].get("started") is not None]
    assert {event[1] for event in started} == {"c1", "c2", "c3", "c4"}
    assert WIDGET_VIEW not in final.content["data"]
    svg = _svg_of(final.content["data"]["text/html"])
    assert [row.get("data-status") for row in _rows(svg)] == ["finished"] * 4
    assert final.content["data"]["text/plain"].splitlines()[1].startswith("* BOSS")
