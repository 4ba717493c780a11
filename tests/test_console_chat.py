"""The console chat: the console user agent in process, and examples/conversation.py in a real terminal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput

from miniagents import InteractionContext, Message, MiniAgents, miniagent
from miniagents.chat_history import InMemoryChatHistory
from miniagents.ext.chat_history_md import ChatHistoryMD
from miniagents.ext.console_user_agent import create_console_user_agent
from miniagents.promising.promising import StreamAppender
from miniagents.utils import adialog_loop
from tests.support.llm_wire_server import LLMWireServer, Reply

CONVERSATION = Path(__file__).resolve().parent.parent / "examples" / "conversation.py"
TIMEOUT = 20


@pytest.fixture
def terminal_input() -> Iterator[PipeInput]:
    """Keystrokes for prompt_toolkit, as a terminal would send them."""
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        yield pipe


@miniagent
async def count_agent(ctx: InteractionContext) -> None:
    """Replies like an assistant with how many messages it received."""
    messages = await ctx.messages.aresolve_messages()
    ctx.reply(Message(f"{len(messages)} messages, last: {messages[-1]}", role="assistant", agent_alias="COUNT"))


async def awaited_output(capsys: pytest.CaptureFixture[str], seen: list[str], condition: Callable[[str], bool]) -> str:
    """Let the agents run until the captured stdout satisfies `condition`; return it."""
    for _ in range(1000):
        seen.append(capsys.readouterr().out)
        if condition("".join(seen)):
            return "".join(seen)
        await asyncio.sleep(0)
    raise AssertionError(f"output never satisfied the condition: {''.join(seen)!r}")


async def test_incoming_tokens_are_printed_as_they_stream(
    terminal_input: PipeInput, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = StreamAppender[str](capture_errors=True).open()

    async def token_streamer(_: dict[str, Any]) -> AsyncIterator[str]:
        async for token in tokens:
            yield token

    history = InMemoryChatHistory()
    seen: list[str] = []
    async with MiniAgents():
        user_agent = create_console_user_agent(chat_history=history, colors=False)
        incoming = Message.promise(
            message_token_streamer=token_streamer, role="assistant", model="m-1", agent_alias="BOT"
        )
        replies = user_agent.inquire(incoming)
        tokens.append("Hello")
        output = await awaited_output(capsys, seen, lambda out: "Hello" in out)
        assert "BOT (m-1): Hello" in output
        tokens.append(" world")
        tokens.close()
        terminal_input.send_text("my answer\r")
        replied = await replies.aresolve_messages()
    assert [(message.role, message.text) for message in replied] == [
        ("assistant", "Hello world"),
        ("user", "my answer"),
    ]
    assert await history.aload_chat_history() == replied


async def test_alt_enter_inserts_a_new_line_and_enter_sends(terminal_input: PipeInput) -> None:
    terminal_input.send_text("line one\x1b\rline two\r")
    async with MiniAgents():
        replied = await create_console_user_agent(colors=False).inquire().aresolve_messages()
    assert [message.text for message in replied] == ["line one\nline two"]


async def test_blank_input_is_not_sent(terminal_input: PipeInput) -> None:
    terminal_input.send_text("\r   \rsomething\r")
    async with MiniAgents():
        replied = await create_console_user_agent(colors=False).inquire().aresolve_messages()
    assert [message.text for message in replied] == ["something"]


@pytest.mark.parametrize("key", ["\x04", "\x03"], ids=["ctrl-d", "ctrl-c"])
async def test_ctrl_d_or_ctrl_c_at_the_prompt_ends_the_dialog_with_keyboard_interrupt(
    terminal_input: PipeInput, key: str
) -> None:
    history = InMemoryChatHistory()
    terminal_input.send_text(f"hi\r{key}")
    async with MiniAgents():
        with pytest.raises(KeyboardInterrupt):
            await adialog_loop(create_console_user_agent(chat_history=history, colors=False), count_agent)
    assert [message.text for message in await history.aload_chat_history()] == ["hi", "1 messages, last: hi"]


def test_creating_the_agent_does_not_import_prompt_toolkit() -> None:
    code = (
        "import sys\n"
        "from miniagents.ext.console_user_agent import create_console_user_agent\n"
        "create_console_user_agent()\n"
        "assert 'prompt_toolkit' not in sys.modules\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=TIMEOUT).returncode == 0


class _ReadLog:
    """A pexpect log that keeps each piece of output as it was read."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def write(self, data: str) -> None:
        self.reads.append(data)

    def flush(self) -> None:
        pass


def spawn_conversation(cwd: Path, **extra_env: str) -> tuple[pexpect.spawn, _ReadLog]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OPENAI_")}
    env.update(extra_env)
    # a pexpect terminal does not answer cursor position requests; tell prompt_toolkit not to ask
    env.update(TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1", PYTHONUNBUFFERED="1")
    child = pexpect.spawn(
        sys.executable,
        [str(CONVERSATION)],
        cwd=str(cwd),
        env=env,
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(40, 160),
    )
    log = _ReadLog()
    child.logfile_read = log
    return child, log


def read_index(log: _ReadLog, text: str) -> int:
    """The number of the first read after which the output so far contains `text`."""
    output = ""
    for index, data in enumerate(log.reads):
        output += data
        if text in output:
            return index
    raise AssertionError(f"{text!r} was never read")


def user_turn(child: pexpect.spawn, text: str, expected_reply_end: str, sender: str = "OFFLINE_LLM") -> None:
    """Type `text` at the prompt, press Enter, and wait for the reply to end with `expected_reply_end`."""
    child.expect_exact("USER:", timeout=TIMEOUT)
    child.send(text)
    child.send("\r")
    child.expect_exact(sender, timeout=TIMEOUT)
    child.expect_exact(expected_reply_end, timeout=TIMEOUT)


def test_conversation_example_in_a_real_terminal_then_continued_after_restart(tmp_path: Path) -> None:
    child, log = spawn_conversation(tmp_path)
    try:
        child.expect_exact("offline stand-in LLM (NOT a real model)", timeout=TIMEOUT)
        user_turn(child, "hello there", "I received 1 message(s). The last one says: hello there")
        assert read_index(log, "[offline") < read_index(log, "says: hello there"), "the reply should stream"
        user_turn(child, "and a second turn", "I received 3 message(s). The last one says: and a second turn")
        child.expect_exact("USER:", timeout=TIMEOUT)
        child.sendcontrol("d")
        child.expect(pexpect.EOF, timeout=TIMEOUT)
        child.close()
        assert child.exitstatus == 0, child.before
    finally:
        child.close(force=True)

    first_run = [(m.role, m.text) for m in asyncio.run(ChatHistoryMD(tmp_path / "CHAT.md").aload_chat_history())]
    assert [role for role, _ in first_run] == ["user", "assistant", "user", "assistant"]
    assert first_run[0] == ("user", "hello there")
    assert first_run[3][1].endswith("The last one says: and a second turn")

    child, _ = spawn_conversation(tmp_path)
    try:
        child.expect_exact("continuing a chat of 4 earlier messages", timeout=TIMEOUT)
        # the model gets the loaded history too: 4 earlier messages plus the new one
        user_turn(child, "third turn", "I received 5 message(s). The last one says: third turn")
        child.expect_exact("USER:", timeout=TIMEOUT)
        child.sendcontrol("c")
        child.expect(pexpect.EOF, timeout=TIMEOUT)
        child.close()
        assert child.exitstatus == 0, child.before
    finally:
        child.close(force=True)

    second_run = [(m.role, m.text) for m in asyncio.run(ChatHistoryMD(tmp_path / "CHAT.md").aload_chat_history())]
    assert second_run[:4] == first_run
    assert [role for role, _ in second_run[4:]] == ["user", "assistant"]
    assert second_run[4] == ("user", "third turn")
    assert "I received 5 message(s)" in second_run[5][1]


def test_conversation_example_talks_to_openai_when_a_key_is_set(tmp_path: Path) -> None:
    with LLMWireServer() as server:  # the real openai SDK, over HTTP, to a loopback server
        env = {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": server.openai_base_url}
        server.enqueue(Reply(tokens=["Hi", " from", " the", " wire"]))
        for turn in ("first question", "second question"):
            child, _ = spawn_conversation(tmp_path, **env)
            try:
                user_turn(child, turn, "Hi from the wire" if turn == "first question" else turn, "OPENAI_AGENT")
                child.expect_exact("USER:", timeout=TIMEOUT)
                child.sendcontrol("d")
                child.expect(pexpect.EOF, timeout=TIMEOUT)
                child.close()
                assert child.exitstatus == 0, child.before
            finally:
                child.close(force=True)
        requests = server.requests

    assert "offline" not in child.before
    assert [len(request.body["messages"]) for request in requests] == [1, 3]  # the restart sent the history
    history = asyncio.run(ChatHistoryMD(tmp_path / "CHAT.md").aload_chat_history())
    assert [(m.role, getattr(m, "model", None), m.text) for m in history] == [
        ("user", None, "first question"),
        ("assistant", "gpt-4o-2024-05-13", "Hi from the wire"),
        ("user", None, "second question"),
        ("assistant", "gpt-4o-2024-05-13", "second question"),
    ]


def test_ctrl_c_while_a_reply_streams_ends_cleanly_and_keeps_the_partial_reply(tmp_path: Path) -> None:
    child, log = spawn_conversation(tmp_path)
    long_question = " ".join(f"word{number}" for number in range(80))  # the stand-in echoes it, slowly
    try:
        child.expect_exact("USER:", timeout=TIMEOUT)
        child.send(long_question)
        child.send("\r")
        child.expect_exact("says: word0 word1", timeout=TIMEOUT)  # the reply is streaming
        child.sendintr()
        child.expect(pexpect.EOF, timeout=TIMEOUT)
        child.close()
        assert child.exitstatus == 0, child.before
    finally:
        child.close(force=True)
    assert "Traceback" not in "".join(log.reads)
    history = asyncio.run(ChatHistoryMD(tmp_path / "CHAT.md").aload_chat_history())
    assert [m.role for m in history] == ["user", "assistant"]
    partial = history[1].text
    assert "I received 1 message(s). The last one says: word0 word1" in partial
    assert "[interrupted]" in partial
    assert "word79" not in partial  # it was cut, not finished
