"""Untrusted model text is rendered safely: markdown to sanitised HTML, and the widgets' static forms."""

from __future__ import annotations

import json

import pytest
from html_inspection import assert_inert, live_markup
from hypothesis import given, settings
from hypothesis import strategies as st

from miniagents import Message, MiniAgents, miniagent
from miniagents.notebook import MessageStreamWidget, is_safe_url, render_markdown
from miniagents.notebook.message_record import _metadata_of, _plain
from miniagents.notebook.rendering import _MARKDOWN, MessageHeader, message_block_text

MALICIOUS_REPLY = (
    "Look: <img src=x onerror=alert(1)> and <script>alert(2)</script>\n\n"
    "[click me](javascript:alert(3)) [data](data:text/html,<script>alert(4)</script>) "
    "[vb](vbscript:msgbox(5)) [spaced]( javascript:alert(6)) [entity](&#106;avascript:alert(7))\n\n"
    '<a href="javascript:alert(8)" onclick="alert(9)">raw link</a>\n\n'
    "![pixel](https://tracker.example/p.png) <svg onload=alert(10)></svg>\n\n"
    '```html" onmouseover="alert(11)\n<script>alert(12)</script>\n```'
)


def test_markdown_of_a_malicious_reply_has_no_live_tag_handler_or_script_url() -> None:
    html = render_markdown(MALICIOUS_REPLY)

    assert_inert(html)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown as text, not dropped silently
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_markdown_renders_the_usual_formatting() -> None:
    html = render_markdown(
        "# Title\n\n**bold** and `code`\n\n- a\n- b\n\n```python\nx = 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )

    tags = live_markup(html).tags
    assert {"h1", "strong", "code", "ul", "li", "pre", "table", "td"} <= set(tags)
    assert 'class="language-python"' in html


def test_links_are_kept_only_for_safe_urls_and_open_in_a_new_tab() -> None:
    html = render_markdown("[site](https://example.com) [mail](mailto:a@b.c) [rel](docs/x.md) [bad](javascript:x)")

    markup = live_markup(html)
    assert markup.urls == ["https://example.com", "mailto:a@b.c", "docs/x.md"]
    assert ("a", "rel", "noopener noreferrer nofollow") in markup.attributes


def test_images_render_as_links_so_nothing_is_fetched_when_shown() -> None:
    html = render_markdown("![a cat](https://example.com/cat.png)")

    assert live_markup(html).tags == ["p", "a"]
    assert "[image: a cat]" in html


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://example.com", True),
        ("HTTP://EXAMPLE.COM", True),
        ("mailto:x@y.z", True),
        ("relative/path", True),
        ("#anchor", True),
        ("/absolute?q=a:b", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("data:text/html,hi", False),
        ("vbscript:x", False),
        ("file:///etc/passwd", False),
        ("java\nscript:x", False),
    ],
)
def test_is_safe_url(url: str, safe: bool) -> None:
    assert is_safe_url(url) is safe


async def test_static_forms_of_a_malicious_reply_are_inert() -> None:
    @miniagent
    async def attacker(ctx) -> None:
        ctx.reply(Message(MALICIOUS_REPLY, role="assistant", agent_alias='EVIL"><script>alert(13)</script>'))

    async with MiniAgents():
        widget = await MessageStreamWidget(attacker.inquire()).adone()

        data, _ = widget._repr_mimebundle_()
        assert_inert(data["text/html"])
        assert "&lt;script&gt;alert(13)&lt;/script&gt;" in data["text/html"]
        assert data["text/plain"].startswith('EVIL"><script>alert(13)</script> (assistant):\nLook: <img src=x')
        assert_inert(widget.state["messages"]["m1"]["html"])


def test_header_names_the_agent_then_the_role_then_a_fallback() -> None:
    assert MessageHeader.from_metadata({"agent_alias": "A", "role": "assistant", "model": "m"}).as_text() == (
        "A (assistant · m)"
    )
    assert MessageHeader.from_metadata({"role": "user"}).as_text() == "user"
    assert MessageHeader.from_metadata({"role": "user"}, fallback_sender="USER").as_text() == "USER (user)"
    assert MessageHeader.from_metadata({}).as_text() == "MESSAGE"


def test_text_block_marks_streaming_and_failed_messages() -> None:
    header = MessageHeader(sender="A")
    assert message_block_text(header, "partial", "streaming") == "A:\npartial\n[streaming...]"
    assert message_block_text(header, "", "failed", "ValueError: boom") == "A:\n[failed: ValueError: boom]"


_PLAIN_ALPHABET = "aZ09 ,.;:?!'()/-_*#>&<\"`[]\n\t\\|~=+é"


@given(st.text(alphabet=_PLAIN_ALPHABET, max_size=30))
@settings(max_examples=400, deadline=None)
def test_render_markdown_renders_every_text_as_markdown_it_does(text: str) -> None:
    # (a plain one-line text skips the parser: the HTML must be exactly the parser's)
    assert render_markdown(text) == _MARKDOWN.render(text)


_METADATA_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5).filter(lambda text: not any(0xD800 <= ord(char) <= 0xDFFF for char in text)),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2),
)


@given(st.dictionaries(st.sampled_from(["role", "model", "zeta", "alpha", "n", "nested"]), _METADATA_VALUES))
@settings(max_examples=200, deadline=None)
def test_message_metadata_is_its_serialized_json_without_the_text(fields: dict[str, object]) -> None:
    message = Message(text="hi", **fields)
    expected = {k: _plain(v) for k, v in json.loads(message.serialized).items() if k not in ("text", "text_template")}
    metadata = _metadata_of(message)
    assert metadata == expected
    assert list(metadata) == list(expected)  # (the same order: sorted keys)
