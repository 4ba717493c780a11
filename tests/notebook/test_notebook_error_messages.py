"""
Errors as messages (issue 10) in the notebook widgets: with `errors_as_messages`, a nested agent's exception is an
ErrorMessage at its position among the replies, and the stream and chat widgets show it there as an error block
(class, text, agent trace), between ordinary message blocks, with no failure of the widget itself.
"""

from __future__ import annotations

import asyncio

from html_inspection import assert_inert, elements

from miniagents import InteractionContext, Message, MiniAgents, miniagent
from miniagents.notebook import ChatWidget, MessageStreamWidget

TIMEOUT = 10.0


@miniagent
async def failing_search(ctx: InteractionContext) -> None:
    ctx.reply("partial results")
    raise ConnectionError("the index is <i>down</i>")


@miniagent
async def researcher(ctx: InteractionContext) -> None:
    ctx.reply(failing_search.inquire())
    ctx.reply("summary written anyway")


EXPECTED_KINDS = [None, "error", None]  # (a plain message block has no data-kind)


def kinds_and_texts(html: str) -> tuple[list[str | None], list[str]]:
    blocks = elements(html, "miniagents-message")
    return [attrs.get("data-kind") for _, _, attrs in blocks], [text for _, text, _ in blocks]


async def test_stream_widget_shows_the_error_message_as_an_error_block_at_its_position() -> None:
    async with MiniAgents(errors_as_messages=True):
        widget = MessageStreamWidget(researcher.inquire("octopus"))
        await asyncio.wait_for(widget.adone(), TIMEOUT)
        text, html = widget.to_text(), widget.to_html()

    kinds, texts = kinds_and_texts(html)
    assert kinds == EXPECTED_KINDS
    assert "partial results" in texts[0] and "summary written anyway" in texts[2]
    assert [t for _, t, _ in elements(html, "miniagents-error-class")] == ["ConnectionError"]
    assert [t for _, t, _ in elements(html, "miniagents-error-text")] == ["the index is <i>down</i>"]
    assert [t for _, t, _ in elements(html, "miniagents-error-trace")] == ["via RESEARCHER > FAILING_SEARCH"]
    assert_inert(html)
    lines = text.splitlines()
    error_line = lines.index("[error: ConnectionError] the index is <i>down</i>")
    assert lines[error_line + 1] == "(via RESEARCHER > FAILING_SEARCH)"
    assert lines.index("partial results") < error_line < lines.index("summary written anyway")
    assert "Traceback" not in text


async def test_chat_widget_shows_the_error_message_as_an_error_block_between_the_turns() -> None:
    async with MiniAgents(errors_as_messages=True):
        chat = ChatWidget()
        chat.add_message(Message("octopus", role="user").as_promise)
        async for promise in researcher.inquire("octopus"):
            chat.add_message(promise)
        await asyncio.wait_for(chat.aquiet(), TIMEOUT)
        text, html = chat.to_text(), chat.to_html()

    kinds, texts = kinds_and_texts(html)
    assert kinds == [None, *EXPECTED_KINDS]  # the user's turn, then the replies in order
    assert "octopus" in texts[0] and "partial results" in texts[1] and "summary written anyway" in texts[3]
    assert [t for _, t, _ in elements(html, "miniagents-error-class")] == ["ConnectionError"]
    assert [t for _, t, _ in elements(html, "miniagents-error-trace")] == ["via RESEARCHER > FAILING_SEARCH"]
    assert_inert(html)
    assert text.index("partial results") < text.index("[error: ConnectionError]") < text.index("summary written")
