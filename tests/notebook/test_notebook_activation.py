"""
Kernel-wide activation, top-level await, script-style code and interrupts, in a real IPython kernel
(SPEC 5.1; issue 4, "Facts about the platform" and acceptance 5).
"""

from __future__ import annotations

import subprocess
import sys
import time

from kernel_session import KernelSession

SETUP = """
import asyncio, time
import miniagents.notebook
from miniagents import MiniAgents, miniagent
from miniagents.ext.llm.offline import create_offline_agent
"""

SLOW_AGENT = """
slow = create_offline_agent(reply_function=lambda messages: 'word ' * 500, token_delay=0.01)

@miniagent
async def sleeper(ctx):
    ctx.reply(slow.inquire('go'))  # a nested call whose reply streams for ~5 s
    await asyncio.sleep(30)
    ctx.reply('woke up')

async def drain(sequence):
    \"\"\"How many tokens a reply sequence streams, and the names of the errors it ends with.\"\"\"
    tokens, errors = 0, []
    try:
        async for message_promise in sequence:
            try:
                async for _ in message_promise:
                    tokens += 1
            except BaseException as exc:
                errors.append(type(exc).__name__)
    except BaseException as exc:
        errors.append(type(exc).__name__)
    return tokens, errors
"""


def test_import_miniagents_does_not_import_the_notebook_stack() -> None:
    code = (
        "import sys, miniagents, miniagents.ext.llm, miniagents.utils\n"
        "heavy = [m for m in ('IPython', 'ipywidgets', 'anywidget', 'ipykernel') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_activation_in_a_plain_cell_persists_across_cells(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "ctx = miniagents.notebook.activate()")

    assert kernel_session.value("MiniAgents.get_current() is ctx")
    kernel_session.run("await asyncio.sleep(0)\nassert MiniAgents.get_current() is ctx")
    assert kernel_session.value("MiniAgents.get_current() is ctx")


def test_activation_in_an_awaited_cell_persists_too(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "await asyncio.sleep(0)\nctx = miniagents.notebook.activate()")

    assert kernel_session.value("MiniAgents.get_current() is ctx")


def test_activate_is_idempotent(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "first = miniagents.notebook.activate()")

    assert kernel_session.value("miniagents.notebook.activate() is first is MiniAgents.get_current()")


def test_load_ext_activates_the_notebook_context(kernel_session: KernelSession) -> None:
    kernel_session.run("%load_ext miniagents.notebook")

    kernel_session.run("import miniagents.notebook\nfrom miniagents import MiniAgents")
    assert kernel_session.value("miniagents.notebook.active_context() is MiniAgents.get_current()")


def test_agents_and_top_level_await_work_in_later_cells(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "miniagents.notebook.activate()\npong = create_offline_agent(lambda m: 'pong')")
    kernel_session.run("replies = await pong.inquire('ping')")
    kernel_session.run("tokens = [token async for token in replies[0]]\nmessage = await replies[0]")

    assert kernel_session.value("(tokens, message.text)") == [["pong"], "pong"]
    assert kernel_session.value("[m.text for m in await pong.inquire('again').aresolve_messages()]") == ["pong"]


def test_script_style_run_works_in_a_cell(kernel_session: KernelSession) -> None:
    kernel_session.run(
        SETUP
        + """
@miniagent
async def greeter(ctx, name: str):
    await asyncio.sleep(0.01)
    ctx.reply(f"hello, {name}")

async def main():
    replies = await asyncio.gather(*(greeter.inquire(name=n).aresolve_messages() for n in ("a", "b")))
    return [str(m) for each in replies for m in each]

result = MiniAgents().run(main())
"""
    )

    assert kernel_session.value("result") == ["hello, a", "hello, b"]


def test_script_style_run_works_after_activation_too(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + "ctx = miniagents.notebook.activate()\nok = create_offline_agent(lambda m: 'ok')")
    kernel_session.run(
        "async def main():\n    return [str(m) for m in await ok.inquire('x').aresolve_messages()]\n"
        "result = MiniAgents().run(main())"
    )

    assert kernel_session.value("result") == ["ok"]
    assert kernel_session.value("MiniAgents.get_current() is ctx")


def _interrupt_while_running(kernel_session: KernelSession, code: str, after: float = 1.0) -> float:
    """
    Run a cell that prints RUNNING when it got going; interrupt the kernel `after` seconds later (while
    tokens stream); return how long the kernel took to become idle.
    """
    msg_id = kernel_session.start(code)
    kernel_session.wait_for(
        lambda m: m.parent_id == msg_id and m.msg_type == "stream" and "RUNNING" in m.content["text"]
    )
    time.sleep(after)
    interrupted_at = time.monotonic()
    kernel_session.manager.interrupt_kernel()
    kernel_session.wait_idle_after(msg_id, timeout=20)
    return time.monotonic() - interrupted_at


def _assert_stream_stopped(kernel_session: KernelSession, sequence: str) -> tuple[int, list[str]]:
    """The reply sequence ended early with a cancellation, and stays so (its producers really stopped)."""
    tokens, errors = kernel_session.value(f"await drain({sequence})")
    time.sleep(0.3)
    assert kernel_session.value(f"await drain({sequence})") == [tokens, errors]
    assert tokens < 500
    assert errors and all("Cancel" in error for error in errors), errors
    return tokens, errors


def test_interrupting_an_awaited_cell_cancels_its_agents_and_the_next_cell_works(
    kernel_session: KernelSession,
) -> None:
    kernel_session.run(SETUP + SLOW_AGENT + "ctx = miniagents.notebook.activate()\ncalls = []\n")
    kernel_session.run("ctx.on_agent_call(calls.append)")

    _interrupt_while_running(
        kernel_session, "replies = sleeper.inquire()\nprint('RUNNING')\nawait replies.aresolve_messages()"
    )

    assert kernel_session.value("[(call.agent.alias, call.status) for call in calls]") == [
        ["SLEEPER", "failed"],
        ["OFFLINE_LLM", "finished"],
    ]
    tokens, _ = _assert_stream_stopped(kernel_session, "replies")
    assert tokens > 0
    assert kernel_session.value("[m.text for m in await slow.inquire('x', token_delay=0).aresolve_messages()]") == [
        "word " * 500
    ]


def test_interrupting_a_plain_cell_cancels_the_agents_it_started(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + SLOW_AGENT + "miniagents.notebook.activate()\n")

    _interrupt_while_running(kernel_session, "replies = sleeper.inquire()\nprint('RUNNING')\ntime.sleep(30)", after=0.5)

    _assert_stream_stopped(kernel_session, "replies")
    assert kernel_session.value("1 + 1") == 2


def test_interrupting_a_cell_leaves_agents_started_by_earlier_cells_running(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + SLOW_AGENT + "miniagents.notebook.activate()\nearlier = slow.inquire('background')")

    _interrupt_while_running(kernel_session, "print('RUNNING')\nawait asyncio.sleep(30)", after=0.3)

    tokens, errors = kernel_session.value("await drain(earlier)")
    assert errors == []
    assert tokens >= 500


def test_interrupting_script_style_run_cancels_its_agents_promptly(kernel_session: KernelSession) -> None:
    kernel_session.run(SETUP + SLOW_AGENT)

    _interrupt_while_running(
        kernel_session,
        "progress = []\n"
        "async def main():\n"
        "    async for message_promise in slow.inquire('go'):\n"
        "        async for token in message_promise:\n"
        "            progress.append(token)\n"
        "print('RUNNING')\nMiniAgents().run(main())",
        after=0.5,
    )

    # the run was stopped part-way (it streams 500 tokens), and stays stopped: its agents were cancelled
    streamed = kernel_session.value("len(progress)")
    assert 0 < streamed < 500
    time.sleep(0.3)
    assert kernel_session.value("len(progress)") == streamed


def test_script_style_run_in_a_cell_is_independent_of_the_notebook_tree(kernel_session: KernelSession) -> None:
    kernel_session.run(
        SETUP
        + "ctx = miniagents.notebook.activate()\n"
        + "tree = miniagents.notebook.MessageTree()\n"
        + "@miniagent\nasync def hello(ctx):\n    ctx.reply('hello')\n"
    )
    # runs on its own loop in a worker thread: the notebook's tree (on the kernel's loop) does not follow it
    kernel_session.run("async def main():\n    return [m.text for m in await hello.inquire().aresolve_messages()]")
    assert kernel_session.value("MiniAgents().run(main())") == ["hello"]

    kernel_session.run("await asyncio.wait_for(hello.inquire().aresolve_messages(), 10)")
    kernel_session.run("await asyncio.wait_for(tree.aquiet(), 10)")  # the tree still flushes and goes quiet
    assert kernel_session.value("[record.agent for record in tree.calls]") == ["HELLO"]
