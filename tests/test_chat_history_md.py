"""ChatHistoryMD: a markdown chat history that loads back exactly what was logged."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniagents import Message
from miniagents.ext.chat_history_md import ChatHistoryFormatError, ChatHistoryMD
from miniagents.ext.llm.llm_common import AssistantMessage, SystemMessage, UserMessage

TRICKY_LINES = [
    "### user",
    "### assistant / gpt-4o-mini",
    "\\### user",
    '\\\\### system / "x y"',
    '### "tool result" / "a \\"quoted\\" model"',
    "### Step 1: install",
    "# Title",
    "```python",
    "````",
    "~~~",
    "---",
    "===",
    "<!-- comment -->",
    "",
    " ",
    "\t",
    "\r",
    "### user\r",
    "\\### assistant / m\r",
    "user",
    "========================================",
    "<!-- MiniAgents ChatHistoryMD: '### role / model' sections from here on -->",
    "ünïcødé ✓ 🤖",
    "\u2028",
]
texts = st.lists(st.one_of(st.sampled_from(TRICKY_LINES), st.text(max_size=30)), max_size=8).map("\n".join) | st.text(
    max_size=60
)
names = st.one_of(
    st.sampled_from(["user", "assistant", "system", "tool", "", " ", "a / b", "\\", '"', "###", "x\ny"]),
    st.text(max_size=12),
)
models = st.none() | st.sampled_from(["gpt-4o-mini", "meta-llama/Llama-3-8b", "a / b", ""]) | st.text(max_size=12)
messages = st.builds(lambda role, model, text: (role, model, text), names, models, texts)


def make_message(role: str, model: str | None, text: str) -> Message:
    return Message(text, role=role) if model is None else Message(text, role=role, model=model)


def as_triples(loaded: tuple[Message, ...]) -> list[tuple[str, str | None, str]]:
    return [(message.role, getattr(message, "model", None), message.text) for message in loaded]


async def alog_all(history: ChatHistoryMD, triples: list[tuple[str, str | None, str]]) -> None:
    for role, model, text in triples:
        await history.alog_message(make_message(role, model, text))


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, max_size=6))
def test_round_trip_keeps_roles_models_and_texts(triples: list[tuple[str, str | None, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        history = ChatHistoryMD(Path(folder) / "CHAT.md")
        asyncio.run(alog_all(history, triples))
        assert as_triples(asyncio.run(history.aload_chat_history())) == triples


@settings(max_examples=100, deadline=None)
@given(st.lists(messages, max_size=4), st.lists(messages, min_size=1, max_size=4))
def test_reopened_history_is_appended_to_never_truncated(
    before: list[tuple[str, str | None, str]], after: list[tuple[str, str | None, str]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        chat_md = Path(folder) / "CHAT.md"
        asyncio.run(alog_all(ChatHistoryMD(chat_md), before))
        written_before = chat_md.read_bytes() if chat_md.exists() else b""
        asyncio.run(alog_all(ChatHistoryMD(chat_md), after))
        assert chat_md.read_bytes().startswith(written_before)
        assert as_triples(asyncio.run(ChatHistoryMD(chat_md).aload_chat_history())) == before + after


async def test_missing_file_is_an_empty_history(tmp_path: Path) -> None:
    assert await ChatHistoryMD(tmp_path / "nowhere" / "CHAT.md").aload_chat_history() == ()


async def test_first_message_creates_the_file_and_its_folder(tmp_path: Path) -> None:
    chat_md = tmp_path / "chats" / "CHAT.md"
    await ChatHistoryMD(chat_md).alog_message(UserMessage("hi"))
    assert chat_md.read_text(encoding="utf-8") == "### user\n\nhi\n\n"


async def test_file_is_readable_markdown(tmp_path: Path) -> None:
    chat_md = tmp_path / "CHAT.md"
    history = ChatHistoryMD(chat_md)
    await history.alog_message(SystemMessage("Be brief."))
    await history.alog_message(UserMessage("What is ### user?"))
    await history.alog_message(AssistantMessage("It looks like:\n\n### user\n\nin a chat file.", model="gpt-4o-mini"))
    assert chat_md.read_text(encoding="utf-8") == (
        "### system\n\nBe brief.\n\n"
        "### user\n\nWhat is ### user?\n\n"
        "### assistant / gpt-4o-mini\n\nIt looks like:\n\n\\### user\n\nin a chat file.\n\n"
    )


async def test_loaded_messages_have_role_classes(tmp_path: Path) -> None:
    history = ChatHistoryMD(tmp_path / "CHAT.md")
    for message in (SystemMessage("s"), UserMessage("u"), AssistantMessage("a", model="m"), Message("t", role="tool")):
        await history.alog_message(message)
    loaded = await history.aload_chat_history()
    assert [type(message) for message in loaded] == [SystemMessage, UserMessage, AssistantMessage, Message]
    assert loaded[2].model == "m"
    assert loaded[3].role == "tool"


async def test_message_without_role_gets_the_default_role(tmp_path: Path) -> None:
    history = ChatHistoryMD(tmp_path / "CHAT.md", default_role="narrator")
    await history.alog_message(Message("once upon a time"))
    assert as_triples(await history.aload_chat_history()) == [("narrator", None, "once upon a time")]


async def test_concurrent_appends_of_one_history_do_not_interleave(tmp_path: Path) -> None:
    history = ChatHistoryMD(tmp_path / "CHAT.md")
    texts = [f"line {i}\n" * 50 for i in range(20)]
    await asyncio.gather(*(history.alog_message(UserMessage(text)) for text in texts))
    assert sorted(message.text for message in await history.aload_chat_history()) == sorted(texts)


async def test_histories_of_one_file_append_whole_sections_and_exact_texts_when_racing(tmp_path: Path) -> None:
    for round_number in range(10):  # before one writer per file, most rounds lost a text's exact ending
        chat_md = tmp_path / f"CHAT-{round_number}.md"
        chat_md.write_text("### user\n\nedited by hand, no final newline", encoding="utf-8")
        histories = [ChatHistoryMD(chat_md) for _ in range(4)]
        texts = [f"{'long text ' * 100_000}from history {number}" for number in range(4)]

        await asyncio.gather(
            *(history.alog_message(UserMessage(text)) for history, text in zip(histories, texts, strict=True))
        )

        loaded = [message.text for message in await histories[0].aload_chat_history()]
        assert loaded[0] == "edited by hand, no final newline"
        assert sorted(loaded[1:]) == texts


async def test_crlf_file_loads_without_a_format_error(tmp_path: Path) -> None:
    chat_md = tmp_path / "CHAT.md"
    chat_md.write_bytes(b"### system\r\n\r\nBe brief.\r\n\r\n### user\r\n\r\nline one\r\nline two\r\n\r\n")
    assert as_triples(await ChatHistoryMD(chat_md).aload_chat_history()) == [
        ("system", None, "Be brief."),
        ("user", None, "line one\nline two"),
    ]


async def test_crlf_section_after_lf_sections_is_a_message_of_its_own(tmp_path: Path) -> None:
    chat_md = tmp_path / "CHAT.md"
    history = ChatHistoryMD(chat_md)
    await history.alog_message(UserMessage("written here"))
    with chat_md.open("ab") as file:  # appended by a Windows editor
        file.write(b"### assistant / gpt-4o-mini\r\n\r\nadded by hand\r\n\\### user\r\n\r\n")
    await history.alog_message(UserMessage("written here again"))

    assert as_triples(await history.aload_chat_history()) == [
        ("user", None, "written here"),
        ("assistant", "gpt-4o-mini", "added by hand\n### user"),
        ("user", None, "written here again"),
    ]


FOREIGN_README = "# MiniAgents\n\nA framework.\n\n### Integrating with OpenAI\n\n```python\nx = 1\n```\n"


async def test_foreign_markdown_file_gives_a_clear_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(FOREIGN_README, encoding="utf-8")
    with pytest.raises(ChatHistoryFormatError, match=r"README.md is not a MiniAgents chat history: line 1"):
        await ChatHistoryMD(readme).aload_chat_history()


async def test_foreign_markdown_file_is_never_appended_to(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(FOREIGN_README, encoding="utf-8")
    with pytest.raises(ChatHistoryFormatError):
        await ChatHistoryMD(readme).alog_message(UserMessage("hi"))
    assert readme.read_text(encoding="utf-8") == FOREIGN_README


async def test_hand_written_file_is_parsed_best_effort_without_losing_text(tmp_path: Path) -> None:
    chat_md = tmp_path / "CHAT.md"
    chat_md.write_text(
        "\n### user\nno blank line after the heading\n### Not a role heading\nkept as text\n"
        "### assistant / my-model\n\nlast line without newline",
        encoding="utf-8",
    )
    history = ChatHistoryMD(chat_md)
    assert as_triples(await history.aload_chat_history()) == [
        ("user", None, "no blank line after the heading\n### Not a role heading\nkept as text"),
        ("assistant", "my-model", "last line without newline"),
    ]
    await history.alog_message(UserMessage("appended"))  # the heading still starts a line of its own
    assert as_triples(await history.aload_chat_history())[-2:] == [
        ("assistant", "my-model", "last line without newline"),
        ("user", None, "appended"),
    ]


async def test_file_with_byte_order_mark_loads(tmp_path: Path) -> None:
    chat_md = tmp_path / "CHAT.md"
    chat_md.write_bytes("\ufeff### user\n\nhi\n\n".encode())
    assert as_triples(await ChatHistoryMD(chat_md).aload_chat_history()) == [("user", None, "hi")]


async def test_binary_file_gives_a_clear_error(tmp_path: Path) -> None:
    chat_md = tmp_path / "CHAT.md"
    chat_md.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ChatHistoryFormatError, match="not a UTF-8 text file"):
        await ChatHistoryMD(chat_md).aload_chat_history()
