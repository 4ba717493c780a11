"""
One markdown renderer for every form of a message (issue 13): while it streams (GrowingMarkdown), once complete
and in the static HTML; line breaks kept; a cancelled message reads "stopped"; model text never becomes live
markup, whatever it is and wherever the stream is cut.
"""

from __future__ import annotations

import asyncio

from html_inspection import assert_inert, without_own_stylesheet
from hypothesis import given, settings
from hypothesis import strategies as st

from miniagents import PromiseCancelledError
from miniagents.notebook.rendering import (
    STOPPED,
    GrowingMarkdown,
    MessageHeader,
    describe_error,
    message_block_html,
    message_block_text,
    render_markdown,
    utf16_length,
)

POEM = "Tokens arrive fast,\nstreaming flows word by word:\nthe promise replays."
MALICIOUS = (
    "Look: <img src=x onerror=alert(1)> and <script>alert(2)</script>\n\n[click](javascript:alert(3)) "
    '<a href="javascript:alert(8)" onclick="alert(9)">raw</a> ![p](https://t.example/p.png) <svg onload=alert(10)>\n'
    "| a | <b onmouseover=alert(11)>b</b> |\n|---|---|\n| `<script>` | [x](data:text/html,hi) |"
)


def test_single_newlines_are_kept_as_line_breaks() -> None:
    assert render_markdown(POEM) == (
        "<p>Tokens arrive fast,<br />\nstreaming flows word by word:<br />\nthe promise replays.</p>\n"
    )


def test_growing_text_is_rendered_by_the_same_renderer_as_the_complete_one() -> None:
    growing = GrowingMarkdown()

    assert growing.render(POEM[:20], now=0.0)
    assert growing.render(POEM, now=1e9)
    assert growing.fields() == {"html": render_markdown(POEM), "html_upto": len(POEM)}


def test_unchanged_text_is_not_rendered_again() -> None:
    growing = GrowingMarkdown()
    growing.render("same", now=0.0)

    assert not growing.render("same", now=1e9)


def test_a_costly_render_delays_the_next_one_by_a_multiple_of_its_cost() -> None:
    growing = GrowingMarkdown()
    big = "| a | b |\n|---|---|\n" + "| **x** | `y` |\n" * 3000
    assert growing.render(big, now=100.0)

    assert not growing.render(big + "more", now=100.0)  # no time has passed: over budget
    assert growing.render(big + "more", now=100.0 + 1e6)
    assert growing.fields()["html_upto"] == len(big) + 4


def test_rendered_length_is_counted_as_javascript_counts_it() -> None:
    growing = GrowingMarkdown()
    growing.render("emoji 🙂 and é", now=0.0)

    assert growing.fields()["html_upto"] == utf16_length("emoji 🙂 and é") == len("emoji 🙂 and é") + 1


def test_cancellations_read_stopped_and_other_errors_keep_their_type() -> None:
    assert describe_error(PromiseCancelledError("agent X was cancelled")) == STOPPED
    assert describe_error(asyncio.CancelledError()) == STOPPED
    assert describe_error(ValueError("boom")) == "ValueError: boom"
    assert describe_error(ValueError()) == "ValueError"


def test_a_stopped_message_keeps_its_partial_text_and_shows_no_error() -> None:
    header = MessageHeader(sender="BOT", role="assistant")

    html = without_own_stylesheet(message_block_html(header, "half a **sen", "failed", STOPPED))

    assert message_block_text(header, "half a **sen", "failed", STOPPED) == "BOT (assistant):\nhalf a **sen\n[stopped]"
    assert 'data-status="stopped"' in html
    assert '<div class="miniagents-message-note">stopped</div>' in html
    assert "miniagents-message-error" not in html
    assert "half a **sen" in html


def test_a_streaming_message_is_rendered_as_markdown_in_the_static_form_too() -> None:
    html = message_block_html(MessageHeader(sender="BOT"), "so **far**", "streaming")

    assert 'data-status="streaming"' in html
    assert "<strong>far</strong>" in html


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(MALICIOUS)))
def test_every_prefix_of_a_malicious_reply_renders_inert(cut: int) -> None:
    assert_inert(render_markdown(MALICIOUS[:cut]))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>\"'=&;:/()[]!`*_|-#\n abcjavsriptonerlmgd")), max_size=120))
def test_any_text_renders_inert(text: str) -> None:
    assert_inert(render_markdown(text))
    assert_inert(message_block_html(MessageHeader(sender=text, role=text, model=text), text, "failed", text))
