"""The live tree of agent calls (SPEC 5.3): structure, statuses, messages, static exports, coalescing."""

from __future__ import annotations

import asyncio

import pytest
from html_inspection import assert_inert
from kernel_session import KernelSession

from miniagents import InteractionContext, MiniAgents, miniagent
from miniagents.ext.llm.offline import create_offline_agent
from miniagents.notebook import MessageTree
from miniagents.notebook.tree_widget import DEFAULT_MAX_CALLS, CallRecord
from miniagents.notebook.widget_outputs import WIDGET_VIEW

TIMEOUT = 10


def _agents():
    llm = create_offline_agent(lambda messages: f"re: {messages[-1]}")

    @miniagent
    async def worker(ctx: InteractionContext, n: int) -> None:
        if n == 2:
            raise ValueError('worker 2 <img src=x onerror="alert(1)"> broke')
        ctx.reply(llm.inquire(ctx.messages))

    @miniagent
    async def boss(ctx: InteractionContext) -> None:
        ctx.reply([worker.inquire(f"task {n}", n=n) for n in range(3)])

    return llm, worker, boss


async def _run_boss(tree: MessageTree) -> None:
    _, _, boss = _agents()
    with pytest.raises(ValueError, match="worker 2"):
        await asyncio.wait_for(boss.inquire("go").aresolve_messages(), TIMEOUT)
    await asyncio.wait_for(tree.aquiet(), TIMEOUT)


def _by_agent(tree: MessageTree, alias: str) -> list[CallRecord]:
    return [record for record in tree.calls if record.agent == alias]


async def test_tree_nests_calls_under_their_caller_with_status_and_error() -> None:
    async with MiniAgents():
        tree = MessageTree()
        await _run_boss(tree)

        state = tree.state
        (boss,) = _by_agent(tree, "BOSS")
        workers = _by_agent(tree, "WORKER")
        assert state["roots"] == [boss.id]
        assert state["calls"][boss.id]["children"] == [w.id for w in workers]
        assert [state["calls"][w.id]["status"] for w in workers] == ["finished", "finished", "failed"]
        assert state["calls"][workers[2].id]["error"].startswith("ValueError: worker 2 <img")
        assert [state["calls"][w.id]["kwargs"] for w in workers] == [{"n": 0}, {"n": 1}, {"n": 2}]
        llm_calls = [state["calls"][c] for w in workers for c in state["calls"][w.id]["children"]]
        assert [call["agent"] for call in llm_calls] == ["OFFLINE_LLM", "OFFLINE_LLM"]
        assert all(isinstance(call["duration"], float) for call in state["calls"].values())
        assert state["live"] is False


async def test_tree_shows_inputs_and_replies_with_hash_keys_metadata_and_tokens() -> None:
    async with MiniAgents():
        tree = MessageTree()
        llm = create_offline_agent(lambda messages: "four little word tokens")
        message = (await llm.inquire("question").aresolve_messages())[0]
        await asyncio.wait_for(tree.aquiet(), TIMEOUT)

        state = tree.state
        (call,) = state["calls"].values()
        (input_id,), (reply_id,) = call["inputs"], call["replies"]
        reply = state["messages"][reply_id]
        assert state["messages"][input_id]["text"] == "question"
        assert reply["text"] == "four little word tokens"
        assert reply["tokens"] == 4  # stream chunks (the offline stand-in streams one per word)
        assert reply["hash_key"] == message.hash_key
        assert reply["metadata"]["model"] == "offline-stand-in"
        assert reply["metadata"]["usage"] == {"input_tokens": 1, "output_tokens": 4}
        assert reply["sender"] == "OFFLINE_LLM"


async def test_tree_is_live_while_calls_run() -> None:
    async with MiniAgents():
        tree = MessageTree()
        started, release = asyncio.Event(), asyncio.Event()

        @miniagent
        async def waiter(ctx: InteractionContext) -> None:
            ctx.reply("started")
            started.set()
            await release.wait()

        replies = waiter.inquire()
        await asyncio.wait_for(started.wait(), TIMEOUT)
        (record,) = tree.calls
        assert record.status == "running"
        assert tree._snapshot()["live"] is True

        release.set()
        await replies.aresolve_messages()
        await asyncio.wait_for(tree.aquiet(), TIMEOUT)
        assert tree.state["calls"][record.id]["status"] == "finished"


async def test_tree_never_finishes_the_input_of_a_call_still_being_sent() -> None:
    async with MiniAgents():
        tree = MessageTree()

        @miniagent
        async def collector(ctx: InteractionContext) -> None:
            ctx.reply(" + ".join([str(m) for m in await ctx.messages.aresolve_messages()]))

        call = collector.initiate_inquiry().send_message("a")
        for _ in range(5):  # loop iterations in which the tree observes the running call
            await asyncio.sleep(0)
        assert tree.calls[0].observed
        call.send_message("b")
        replies = await asyncio.wait_for(call.reply_sequence().aresolve_messages(), TIMEOUT)

        assert [str(m) for m in replies] == ["a + b"]
        await asyncio.wait_for(tree.aquiet(), TIMEOUT)
        assert len(tree.state["calls"]["c1"]["inputs"]) == 2


async def test_tree_does_not_start_lazy_calls() -> None:
    async with MiniAgents(start_everything_asap_by_default=False):
        tree = MessageTree()
        started = []

        @miniagent
        async def lazy(ctx: InteractionContext) -> None:
            started.append(True)
            ctx.reply("late")

        replies = lazy.inquire()
        for _ in range(5):  # loop iterations in which an eager call would have started
            await asyncio.sleep(0)
        assert started == []
        assert tree.calls[0].status == "pending"

        assert [str(m) for m in await replies.aresolve_messages()] == ["late"]
        await asyncio.wait_for(tree.aquiet(), TIMEOUT)
        assert tree.state["calls"]["c1"]["status"] == "finished"


async def test_detached_tree_takes_no_new_calls() -> None:
    async with MiniAgents():
        tree = MessageTree()
        llm = create_offline_agent()
        await llm.inquire("one").aresolve_messages()
        tree.detach()
        await llm.inquire("two").aresolve_messages()

        assert len(tree.calls) == 1


async def test_static_exports_are_deterministic_and_inert() -> None:
    async with MiniAgents():
        tree = MessageTree()
        await _run_boss(tree)

        text = tree.to_text()
        assert text.splitlines()[0] == "BOSS [finished · 1 failed inside] in: 1, replies: 3, tokens: 4 in / 6 out"
        assert "  WORKER [failed: ValueError: worker 2" in text
        assert text.splitlines()[-1] == "run totals: 6 calls, 1 failed · offline-stand-in: 4 in / 6 out tokens"
        mermaid = str(tree.to_mermaid())
        assert mermaid.startswith('flowchart TD\n    c1["BOSS · finished · 4/6 tokens · 1 failed inside"]')
        assert "c1 --> c2" in mermaid and "class c4 failed" in mermaid
        html = tree.to_html()
        assert_inert(html)
        assert 'class="miniagents-call" data-agent="WORKER" data-status="failed"' in html
        assert "worker 2 &lt;img src=x onerror=&quot;alert(1)&quot;&gt; broke" in html
        data, _ = tree._repr_mimebundle_()
        assert data["text/plain"] == text and data["text/vnd.mermaid"] == mermaid
        assert repr(tree) == "<MessageTree: 6 call(s), 1 failed, idle>"


def test_mermaid_labels_escape_what_mermaid_would_parse() -> None:
    from miniagents.notebook.tree_export import _mermaid_label

    assert _mermaid_label('A "quoted" <b>') == "A #quot;quoted#quot; #lt;b#gt;"


@pytest.mark.timeout(120)
def test_tree_of_a_parallel_run_is_coalesced_and_ends_complete(kernel_session: KernelSession) -> None:
    kernel_session.run(
        """
import asyncio
import miniagents.notebook
from miniagents import miniagent
from miniagents.ext.llm.offline import create_offline_agent
miniagents.notebook.activate()
llm = create_offline_agent(lambda messages: ' token' * 2000, token_delay=0)

@miniagent
async def fan_out(ctx):
    ctx.reply([llm.inquire(f'part {i}') for i in range(20)])
"""
    )
    shown = kernel_session.run("tree = miniagents.notebook.show_tree()\ntree").results
    assert len(shown) == 1  # shown once, although it is also the value of the cell
    model_id = kernel_session.value("tree.model_id")  # (a tree with no calls yet shows only its static form)
    cell = kernel_session.run("replies = fan_out.inquire()")
    final = kernel_session.wait_for(
        lambda m: (
            m.msg_type == "comm_msg"
            and m.content.get("comm_id") == model_id
            and m.content["data"].get("method") == "update"
            and not m.content["data"]["state"]["state"].get("live", True)
            and len(m.content["data"]["state"]["state"]["calls"]) == 21
        ),
        timeout=100,
    )

    messages = [m for m in kernel_session.comm_messages(model_id) if m.received_at >= cell.started_at]
    duration = final.received_at - cell.started_at
    state = final.content["data"]["state"]["state"]
    print(f"\ntree of 21 calls, 40k tokens: {len(messages)} comm messages in {duration:.2f} s")
    assert len(messages) <= 30 * duration + 2
    assert [call["status"] for call in state["calls"].values()] == ["finished"] * 21
    replies = [state["messages"][r] for r in state["calls"]["c1"]["replies"]]
    assert [reply["tokens"] for reply in replies] == [2000] * 20
    assert all(reply["text"] == " token" * 2000 for reply in replies)


async def test_call_shows_running_while_its_replies_stream_after_function_returned() -> None:
    gate = asyncio.Event()

    async def tokens(_: dict) -> object:
        yield "first "
        await gate.wait()
        yield "last"

    @miniagent
    async def streamer(ctx: InteractionContext) -> None:
        from miniagents import Message

        ctx.reply(Message.promise(message_token_streamer=tokens))  # returns while the reply streams

    async with MiniAgents():
        tree = MessageTree()
        replies = streamer.inquire()
        (record,) = _by_agent(tree, "STREAMER")
        first_token = await asyncio.wait_for(
            anext(aiter(await asyncio.wait_for(anext(aiter(replies)), TIMEOUT))), TIMEOUT
        )
        assert first_token == "first "
        for _ in range(5):
            await asyncio.sleep(0)
        assert record.call.status == "finished"  # the agent function is done...
        assert record.status == "running"  # ...but its reply is still streaming
        gate.set()
        await asyncio.wait_for(replies.aresolve_messages(), TIMEOUT)
        await asyncio.wait_for(tree.aquiet(), TIMEOUT)
        assert record.status == "finished"
        assert tree.state["calls"][record.id]["status"] == "finished"


# ------------------------------------------------------------------------------------------ forwarded replies


def _three_levels(llm_text: str = "the one long answer " * 20):
    llm = create_offline_agent(lambda messages: llm_text)

    @miniagent
    async def middle(ctx: InteractionContext) -> None:
        ctx.reply(llm.inquire(ctx.messages))

    @miniagent
    async def top(ctx: InteractionContext) -> None:
        ctx.reply(middle.inquire(ctx.messages))

    return top


async def test_a_forwarded_reply_shows_in_full_once_where_it_was_produced() -> None:
    async with MiniAgents():
        tree = MessageTree()
        await _three_levels().inquire("question").aresolve_messages()
        await asyncio.wait_for(tree.aquiet(), TIMEOUT)

        state = tree.state
        (top,), (middle,), (llm,) = (_by_agent(tree, alias) for alias in ("TOP", "MIDDLE", "OFFLINE_LLM"))
        (reply_id,) = state["calls"][llm.id]["replies"]
        assert state["calls"][top.id]["replies"] == state["calls"][middle.id]["replies"] == [reply_id]
        assert state["homes"][reply_id] == [llm.id, "replies"]
        (input_id,) = state["calls"][top.id]["inputs"]
        assert state["homes"][input_id] == [top.id, "inputs"]  # the question: shown where it came in first

        html = tree.to_html()
        assert html.count("the one long answer") == 20  # one block, not one per level
        assert html.count("↳ forwarded from OFFLINE_LLM #") == 2
        text = tree.to_text().splitlines()
        assert text[1].startswith("  ↳ forwarded from OFFLINE_LLM #") and text[3].startswith("    ↳ forwarded from")
        mermaid = str(tree.to_mermaid())
        assert f"{llm.id} -.->|forwarded| {middle.id}" in mermaid and f"{llm.id} -.->|forwarded| {top.id}" in mermaid


async def test_a_reply_that_is_the_input_of_the_next_call_shows_once() -> None:
    writer = create_offline_agent(lambda messages: "a draft of many words " * 5, alias="WRITER")
    editor = create_offline_agent(lambda messages: "edited", alias="EDITOR")
    async with MiniAgents():
        tree = MessageTree()
        await editor.inquire(writer.inquire("write")).aresolve_messages()
        await asyncio.wait_for(tree.aquiet(), TIMEOUT)

        html = tree.to_html()
        assert html.count("a draft of many words") == 5  # one block of the 5 repetitions
        assert "↳ reply of WRITER #" in html


# ------------------------------------------------------------------------------------------ failure marks


async def test_ancestors_of_a_failed_call_count_the_failures_inside_them() -> None:
    @miniagent
    async def breaks(ctx: InteractionContext) -> None:
        raise RuntimeError("broken below")

    @miniagent
    async def middle(ctx: InteractionContext) -> None:
        ctx.reply([breaks.inquire(), breaks.inquire()])

    @miniagent
    async def top(ctx: InteractionContext) -> None:
        ctx.reply(middle.inquire())

    async with MiniAgents():
        tree = MessageTree()
        with pytest.raises(RuntimeError):
            await top.inquire().aresolve_messages()
        await asyncio.wait_for(tree.aquiet(), TIMEOUT)

        calls = tree.state["calls"]
        (top_record,), (middle_record,) = _by_agent(tree, "TOP"), _by_agent(tree, "MIDDLE")
        assert (calls[top_record.id]["status"], calls[top_record.id]["failed_inside"]) == ("finished", 2)
        assert calls[middle_record.id]["failed_inside"] == 2
        assert all(calls[r.id]["failed_inside"] == 0 for r in _by_agent(tree, "BREAKS"))
        html = tree.to_html()
        assert 'data-agent="TOP" data-status="finished" data-failed-inside="2"' in html
        assert '<span class="miniagents-call-failed-inside">2 failed inside</span>' in html
        assert tree.to_text().startswith("TOP [finished · 2 failed inside]")


# ------------------------------------------------------------------------------------------ usage and times


async def test_calls_show_the_providers_token_usage_and_the_tree_its_totals() -> None:
    async with MiniAgents() as context:
        tree = MessageTree()
        await _three_levels("five words in this reply").inquire("one two three").aresolve_messages()
        await asyncio.wait_for(tree.aquiet(), TIMEOUT)

        calls = tree.state["calls"]
        (top,), (llm,) = _by_agent(tree, "TOP"), _by_agent(tree, "OFFLINE_LLM")
        assert calls[llm.id]["usage"] == calls[llm.id]["subtree_usage"] == [3, 5]
        assert calls[top.id]["usage"] == [0, 0] and calls[top.id]["subtree_usage"] == [3, 5]  # counted once
        assert tree.state["summary"]["usage"] == {
            "offline-stand-in": {"input_tokens": 3, "output_tokens": 5, "replies": 1}
        }
        assert tree.token_usage.by_model() == context.token_usage.by_model()  # type: ignore[attr-defined]
        text = tree.to_text()
        assert "OFFLINE_LLM [finished] in: 1, replies: 1, 5 chunks, tokens: 3 in / 5 out" in text
        assert text.splitlines()[-1] == "run totals: 3 calls, 0 failed · offline-stand-in: 3 in / 5 out tokens"
        assert "token" not in text.replace("tokens:", "").replace("out tokens", "")  # chunks are not called tokens


async def test_start_and_end_times_are_part_of_the_synced_state() -> None:
    async with MiniAgents():
        tree = MessageTree()
        llm = create_offline_agent(lambda messages: "slow words here", token_delay=0.01)
        await llm.inquire("go").aresolve_messages()
        await asyncio.wait_for(tree.aquiet(), TIMEOUT)

        (call,) = tree.state["calls"].values()
        assert isinstance(call["started"], float) and isinstance(call["ended"], float)
        assert call["ended"] > call["started"] >= 0
        assert call["duration"] == pytest.approx(call["ended"] - call["started"], abs=1e-5)
        assert call["duration"] >= 0.02  # its three tokens streamed 0.01 s apart


# ------------------------------------------------------------------------------------------ bounded window


@miniagent
async def _leaf(ctx: InteractionContext, i: int) -> None:
    ctx.reply(f"leaf {i}")


@miniagent
async def _fan_out(ctx: InteractionContext, n: int) -> None:
    for i in range(n):
        ctx.reply(_leaf.inquire(i=i))


def _live_messages() -> int:
    import gc

    from miniagents import Message

    gc.collect()
    return sum(isinstance(each, Message) for each in gc.get_objects())


async def test_old_finished_calls_are_folded_into_counts() -> None:
    async with MiniAgents():
        tree = MessageTree(max_calls=40)
        for _ in range(3):
            await _fan_out.inquire(n=30).aresolve_messages()
            await asyncio.wait_for(tree.aquiet(), TIMEOUT)

        assert len(tree.calls) <= 40
        assert repr(tree).startswith("<MessageTree: 93 call(s), 0 failed, ")
        folded_inside = sum(r.folded.calls for r in tree.calls if r.folded is not None)
        folded_roots = tree.folded.calls if tree.folded is not None else 0
        assert len(tree.calls) + folded_inside + folded_roots == 93
        state = tree.state
        assert set(state["calls"]) == {r.id for r in tree.calls}
        assert all(child in state["calls"] for call in state["calls"].values() for child in call["children"])
        assert set(state["homes"]) <= set(state["messages"])
        assert "earlier calls folded" in tree.to_text()


def test_max_calls_must_be_a_positive_whole_number() -> None:
    async def make(value: object) -> None:
        async with MiniAgents():
            MessageTree(max_calls=value)  # type: ignore[arg-type]

    for bad in (0, -5, 2.5, True, "100"):
        with pytest.raises(ValueError, match="max_calls must be a whole number >= 1"):
            asyncio.run(make(bad))


@pytest.mark.timeout(600)
async def test_a_tree_shown_for_20_rounds_of_5000_calls_holds_a_bounded_number_of_messages() -> None:
    """Issue 14, acceptance 2: the live messages do not grow with the rounds (counted, not timed)."""
    # what lives already (other tests' leftovers in the same process), the replies of this round and of the one
    # before (its promises may still be referenced until the next round replaces them), and the tree's window:
    # a bound that does not grow with the rounds (100,000 calls in all)
    bound = _live_messages() + 2 * 5_000 + DEFAULT_MAX_CALLS
    async with MiniAgents():
        tree = MessageTree()
        live = []
        for _ in range(20):
            await _fan_out.inquire(n=5_000).aresolve_messages()
            await tree.aquiet()
            live.append(_live_messages())
        assert len(tree.calls) <= DEFAULT_MAX_CALLS + 1
        assert repr(tree).startswith("<MessageTree: 100020 call(s), 0 failed, ")
    print(f"\nlive messages after each round: {live}")
    assert max(live) <= bound, live
    assert live[-1] <= live[1], live  # flat: the 20th round holds no more than the 2nd


# ------------------------------------------------------------------------------------------ chats and trees


def _phase_is(model_id: str, phase: str):
    return lambda m: (
        m.msg_type == "comm_msg"
        and m.content.get("comm_id") == model_id
        and m.content["data"].get("state", {}).get("phase") == phase
    )


@pytest.mark.timeout(120)
def test_a_chat_waiting_for_the_user_neither_blocks_nor_clutters_a_tree_of_another_cell(
    kernel_session: KernelSession,
) -> None:
    kernel_session.run(
        "import asyncio\nimport miniagents.notebook as mn\n"
        "from miniagents.ext.llm.offline import create_offline_agent\nmn.activate()\n"
        "assistant = create_offline_agent(lambda m: 'echo ' + str(m[-1]))"
    )
    chat_model = kernel_session.run("chat = mn.chat(assistant)\nchat").results[0][WIDGET_VIEW]["model_id"]
    kernel_session.run("tree = mn.MessageTree()")
    kernel_session.send_to_widget(chat_model, {"type": "user-input", "text": "hello"})
    kernel_session.wait_for(_phase_is(chat_model, "replying"))
    kernel_session.wait_for(_phase_is(chat_model, "waiting"))  # the user's next turn waits

    assert kernel_session.value("await asyncio.wait_for(tree.aquiet(), 10) or len(tree.calls)") == 0
    kernel_session.run("await assistant.inquire('from a cell').aresolve_messages()")
    assert kernel_session.value("await asyncio.wait_for(tree.aquiet(), 10) or [r.agent for r in tree.calls]") == [
        "OFFLINE_LLM"
    ]
    kernel_session.run("chat.stop()")


@pytest.mark.timeout(120)
def test_a_tree_made_with_a_chat_shows_its_user_turn_waiting_and_goes_quiet(kernel_session: KernelSession) -> None:
    kernel_session.run(
        "import asyncio\nimport miniagents.notebook as mn\n"
        "from miniagents.ext.llm.offline import create_offline_agent\nmn.activate()\n"
        "assistant = create_offline_agent(lambda m: 'echo ' + str(m[-1]))"
    )
    cell = kernel_session.run("tree = mn.MessageTree()\nchat = mn.chat(assistant)\nchat")
    chat_model = cell.results[0][WIDGET_VIEW]["model_id"]
    kernel_session.send_to_widget(chat_model, {"type": "user-input", "text": "hello"})
    kernel_session.wait_for(_phase_is(chat_model, "replying"))
    kernel_session.wait_for(_phase_is(chat_model, "waiting"))

    statuses = kernel_session.value(
        "await asyncio.wait_for(tree.aquiet(), 10) or [(r.agent, r.status) for r in tree.calls]"
    )
    assert statuses == [["USER", "finished"], ["OFFLINE_LLM", "finished"], ["USER", "waiting"]]
    assert kernel_session.value("tree.state['live']") is False
    kernel_session.run("chat.stop()")
