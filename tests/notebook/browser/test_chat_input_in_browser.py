"""
Typing into a notebook chat as a user does, in JupyterLab and in Notebook 7 (issue 13): Shift+Enter inserts a
line break (JupyterLab cancels line breaks typed inside cells), the sent text and the reply keep their line
breaks, Enter sends, and Stop ends a reply that is streaming: it reads "stopped" and keeps what had arrived.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .notebook_page import NotebookPage
from .test_widgets_in_browser import SETUP_CELL

pytestmark = pytest.mark.timeout(300)  # the first test of a run also builds the venv and starts JupyterLab

OpenNotebook = Callable[..., NotebookPage]
UIS = ["lab", "notebook"]
LONG_REPLY = " ".join(f"word{i}" for i in range(400))


def chat_cells(reply_expression: str, token_delay: float) -> list[str]:
    return [
        SETUP_CELL + f"assistant = create_offline_agent(reply_function=lambda messages: {reply_expression}, "
        f'token_delay={token_delay}, alias="ASSISTANT")',
        "chat = mn.chat(assistant)",
    ]


def open_chat(open_notebook: OpenNotebook, ui: str, reply_expression: str, token_delay: float = 0.02) -> NotebookPage:
    notebook = open_notebook(chat_cells(reply_expression, token_delay), ui)
    notebook.run_all()
    notebook.wait_executed(1)
    notebook.output(1).locator(".miniagents-chat[data-phase=waiting] textarea.miniagents-chat-input").wait_for()
    return notebook


@pytest.mark.parametrize("ui", UIS)
def test_shift_enter_inserts_a_line_break_and_the_sent_text_keeps_it(open_notebook: OpenNotebook, ui: str) -> None:
    notebook = open_chat(open_notebook, ui, '"You said:\\n" + str(messages[-1])')
    chat = notebook.output(1).locator(".miniagents-chat")
    chat_input = chat.locator("textarea.miniagents-chat-input")
    chat_input.click()
    keyboard = notebook.page.keyboard

    keyboard.type("first line")
    keyboard.press("Shift+Enter")
    keyboard.type("second line")
    typed = chat_input.input_value()
    keyboard.press("Enter")
    reply = chat.locator(".miniagents-message[data-status=done]", has_text="You said:")
    reply.wait_for()

    assert typed == "first line\nsecond line"
    assert notebook.cell_count() == 2, "a key reached the notebook: a cell was added or run"
    bodies = chat.locator(".miniagents-message-body").all_inner_texts()
    assert bodies[0].strip() == "first line\nsecond line"
    assert reply.locator(".miniagents-message-body").inner_text().strip() == "You said:\nfirst line\nsecond line"
    assert chat_input.input_value() == ""
    notebook.screenshot(focus=chat)


@pytest.mark.parametrize("ui", UIS)
def test_enter_sends_and_what_is_typed_during_the_reply_stays_in_the_box(open_notebook: OpenNotebook, ui: str) -> None:
    notebook = open_chat(open_notebook, ui, '"Echo: " + str(messages[-1]) + " and more words" * 8', token_delay=0.01)
    chat = notebook.output(1).locator(".miniagents-chat")
    chat.locator("textarea.miniagents-chat-input").click()
    keyboard = notebook.page.keyboard

    keyboard.type("hello")
    keyboard.press("Enter")
    keyboard.type("next question")  # while the reply streams; the turn ends and the view is renewed
    chat.locator(".miniagents-message[data-status=done]", has_text="Echo: hello").wait_for()
    chat_input = notebook.output(1).locator(".miniagents-chat[data-phase=waiting] textarea.miniagents-chat-input")
    chat_input.wait_for()

    assert chat_input.input_value() == "next question"
    assert chat_input.evaluate("input => document.activeElement === input"), "the input lost the keyboard focus"


@pytest.mark.parametrize("ui", UIS)
def test_stop_reads_stopped_and_keeps_the_partial_reply(open_notebook: OpenNotebook, ui: str) -> None:
    notebook = open_chat(open_notebook, ui, repr(LONG_REPLY), token_delay=0.05)
    output = notebook.output(1)
    chat_input = output.locator("textarea.miniagents-chat-input")
    chat_input.click()
    chat_input.fill("tell me everything")
    chat_input.press("Enter")
    streaming = output.locator(".miniagents-message[data-status=streaming]", has_text="word5 ")
    streaming.wait_for()

    output.locator("button.miniagents-chat-stop").click()
    stopped = output.locator(".miniagents-message[data-status=stopped]")
    stopped.wait_for()

    partial = stopped.locator(".miniagents-message-body").inner_text().strip()
    assert partial.startswith("word0 word1 word2 word3 word4 word5")
    assert LONG_REPLY.startswith(partial) and len(partial) < len(LONG_REPLY)
    assert stopped.locator(".miniagents-message-note").inner_text() == "stopped"
    assert "Cancel" not in output.inner_text(), "the stop shows as an error"
    assert output.locator(".miniagents-message-error").count() == 0
    output.locator(".miniagents-chat[data-phase=stopped]").wait_for()
    notebook.screenshot(focus=output)
