"""
Saved notebooks read without a kernel, and the widgets read in the dark theme (issue 13, acceptance 1 and 4):
- a notebook run, saved and reopened (its kernel gone) in JupyterLab and Notebook 7 shows every widget's final
  content, and no "Error displaying widget";
- `nbconvert --to html` of every committed notebook, opened in Chromium with the network cut off, shows the
  final messages (no blank widget placeholders, no message still "streaming") with the widgets' own styles;
- in the dark theme the text of messages, links, code, status pills, the chat's input and buttons keeps a
  readable contrast with what is behind it. Screenshots (light and dark) of the chat and the stream widget
  land in test-artifacts/browser/ (docs/images/ keeps copies for the README).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .notebook_page import ARTIFACTS_DIR, NotebookPage
from .test_widgets_in_browser import SETUP_CELL
from .wheel_venv import PROJECT_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator

pytestmark = pytest.mark.timeout(300)  # the first test of a run also builds the venv and starts JupyterLab

OpenNotebook = Callable[..., NotebookPage]
UIS = ["lab", "notebook"]
COMMITTED_NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
POEM = "Tokens arrive fast,\nstreaming flows word by word:\nthe promise replays."
MARKDOWN_REPLY = (
    "Roses are red,\nviolets are **blue**:\n\n| model | tokens |\n|---|---|\n| `offline` | 42 |\n\n"
    "See [the docs](https://example.com/docs) and run `pip install miniagents`."
)

AGENTS_CELL = (
    SETUP_CELL
    + "from miniagents.notebook.stream_widget import show_reply\n"
    + f"poet = create_offline_agent(reply_function=lambda messages: {POEM!r}, token_delay=0.02, alias='POET')\n"
    + f"writer = create_offline_agent(reply_function=lambda messages: {MARKDOWN_REPLY!r}, token_delay=0.01, "
    "alias='WRITER')\n"
    + "assistant = create_offline_agent(reply_function=lambda messages: 'You said: ' + str(messages[-1]), "
    "token_delay=0.02, alias='ASSISTANT')\n"
    + """

@miniagent
async def fact_checker(ctx: InteractionContext) -> None:
    raise RuntimeError("no sources found")
"""
)


def send_and_stop(notebook: NotebookPage, cell: int, text: str) -> None:
    """Chat one turn in the chat of `cell`, then press Stop."""
    output = notebook.output(cell)
    chat_input = output.locator(".miniagents-chat[data-phase=waiting] textarea.miniagents-chat-input")
    chat_input.click()
    chat_input.fill(text)
    chat_input.press("Enter")
    output.locator(".miniagents-message[data-status=done]", has_text="You said:").wait_for()
    output.locator(".miniagents-chat[data-phase=waiting] button.miniagents-chat-stop").click()
    output.locator(".miniagents-chat[data-phase=stopped]").wait_for()


# ----------------------------------------------------------------------------------------- save and reopen


@pytest.mark.parametrize("ui", UIS)
def test_saved_and_reopened_notebook_shows_final_content_without_errors(open_notebook: OpenNotebook, ui: str) -> None:
    notebook = open_notebook(
        [
            AGENTS_CELL,
            "tree = mn.show_tree()",
            "poem = show_reply(poet.inquire('a poem'))",
            "chat = mn.chat(assistant)",
            "await poem.adone()\nawait chat.adone()\nawait tree.aquiet()\n'all quiet'",
        ],
        ui,
    )
    for cell in range(4):
        notebook.run_cell(cell)
    notebook.wait_executed(3)
    send_and_stop(notebook, 3, "hello\nfrom the browser")
    notebook.run_cell(4)
    notebook.wait_executed(4)

    notebook.save()
    saved = notebook.saved_notebook()
    notebook.reopen()
    panel = notebook.page.locator(f"#{notebook.panel_id}")
    notebook.output(2).locator(".miniagents-message[data-status=done]").wait_for()
    notebook.screenshot(focus=notebook.output(1))

    assert not [
        output for cell in saved["cells"] for output in cell.get("outputs", []) if WIDGET_VIEW in output.get("data", {})
    ]
    assert "Error displaying widget" not in panel.inner_text()
    tree = notebook.output(1).locator(".miniagents-tree")
    assert tree.locator('.miniagents-call[data-agent="POET"][data-status="finished"]').count() == 1
    # the chat's turns belong to the chat's own cell: a tree made in another cell is not cluttered with them
    assert tree.locator('.miniagents-call[data-agent="ASSISTANT"]').count() == 0
    assert notebook.output(2).locator(".miniagents-message-body").inner_text().strip() == POEM
    chat = notebook.output(3).locator('.miniagents-chat[data-phase="stopped"]')
    assert [text.strip() for text in chat.locator(".miniagents-message-body").all_inner_texts()] == [
        "hello\nfrom the browser",
        "You said: hello\nfrom the browser",
    ]


# -------------------------------------------------------------------------------------- nbconvert, offline

OFFLINE_PAGE_FACTS = """() => {
    const roots = [...document.querySelectorAll('.miniagents-stream, .miniagents-tree, .miniagents-chat')];
    const message = document.querySelector('.miniagents-message');
    return {
        widgetPlaceholders: document.querySelectorAll(
            'script[type="application/vnd.jupyter.widget-view+json"], .jupyter-widgets').length,
        widgetErrors: document.body.innerText.includes('Error displaying widget'),
        roots: roots.length,
        emptyRoots: roots.filter(root => root.innerText.trim() === '').length,
        notFinal: [...document.querySelectorAll('[data-status]')]
            .filter(el => (el.getAttribute('class') || '').startsWith('miniagents-'))  // (SVG elements too)
            .filter(el => ['streaming', 'running', 'pending'].includes(el.dataset.status))
            .map(el => el.getAttribute('class') + ' ' + el.dataset.status + ': ' + el.textContent.slice(0, 80)),
        messages: document.querySelectorAll('.miniagents-message').length,
        styled: message ? getComputedStyle(message).borderLeftWidth === '3px' : null,
    };
}"""


@pytest.mark.parametrize("path", COMMITTED_NOTEBOOKS, ids=lambda path: path.name)
def test_nbconvert_html_of_committed_notebook_shows_final_messages_offline(
    browser: Browser, path: Path, tmp_path: Path
) -> None:
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir", str(tmp_path), str(path)],
        check=True,
        capture_output=True,
    )
    html_file = tmp_path / f"{path.stem}.html"
    context = browser.new_context(offline=True)  # what the page loads from the network (MathJax...) fails
    try:
        page = context.new_page()
        page.goto(html_file.as_uri(), wait_until="load")
        facts: dict[str, Any] = page.evaluate(OFFLINE_PAGE_FACTS)
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS_DIR / f"nbconvert-{path.stem}.png"), full_page=True)
    finally:
        context.close()

    assert facts["widgetPlaceholders"] == 0 and not facts["widgetErrors"]
    assert facts["emptyRoots"] == 0
    assert facts["notFinal"] == []
    if facts["messages"]:
        assert facts["styled"], "the static HTML's own stylesheet did not apply"


# ------------------------------------------------------------------------------------------------ themes

CONTRAST = """(element) => {
    const parse = (value) => {
        let match = /^rgba?\\(([^)]*)\\)$/.exec(value);
        if (match) {
            const [r, g, b, a = 1] = match[1].split(/[\\s,/]+/).filter(Boolean).map(Number);
            return {r, g, b, a};
        }
        match = /^color\\(srgb ([^)]*)\\)$/.exec(value);  // what color-mix() computes to
        if (match) {
            const [r, g, b, a = 1] = match[1].split(/[\\s/]+/).filter(Boolean).map(Number);
            return {r: r * 255, g: g * 255, b: b * 255, a};
        }
        return null;
    };
    const layers = [];
    for (let node = element; node; node = node.parentElement) {
        const color = parse(getComputedStyle(node).backgroundColor);
        if (color && color.a > 0) {
            layers.push(color);
            if (color.a >= 1) break;
        }
    }
    let background = {r: 255, g: 255, b: 255};
    for (const layer of layers.reverse()) {
        background = {
            r: layer.a * layer.r + (1 - layer.a) * background.r,
            g: layer.a * layer.g + (1 - layer.a) * background.g,
            b: layer.a * layer.b + (1 - layer.a) * background.b,
        };
    }
    const text = parse(getComputedStyle(element).color);
    const over = {
        r: text.a * text.r + (1 - text.a) * background.r,
        g: text.a * text.g + (1 - text.a) * background.g,
        b: text.a * text.b + (1 - text.a) * background.b,
    };
    const luminance = ({r, g, b}) => [r, g, b]
        .map(v => v / 255).map(v => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
        .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
    const [light, dark] = [luminance(over), luminance(background)].sort((x, y) => y - x);
    return {contrast: (light + 0.05) / (dark + 0.05), background: luminance(background)};
}"""

# what is read in each widget, and the contrast it needs (WCAG AA: 4.5 for text, 3 for secondary details)
READ_IN_DARK = [
    (2, ".miniagents-message-body p", 4.5),
    (2, ".miniagents-sender", 4.5),
    (2, ".miniagents-details", 3.0),
    (2, ".miniagents-message-body a", 4.5),
    (2, ".miniagents-message-body p code", 4.5),
    (2, ".miniagents-message-body td", 4.5),
    (1, '.miniagents-call[data-status="finished"] .miniagents-call-status', 4.5),
    (1, '.miniagents-call[data-status="failed"] .miniagents-call-status', 4.5),
    (1, ".miniagents-call-agent", 4.5),
    (1, ".miniagents-call-error", 4.5),
    (3, ".miniagents-chat-input", 4.5),
    (3, ".miniagents-chat-send", 4.5),
    (3, ".miniagents-chat-stop", 4.5),
    (3, ".miniagents-message-body p", 4.5),
]


def widget_screenshot(notebook: NotebookPage, locator: Locator, name: str) -> Path:
    """Save a picture of one widget as test-artifacts/browser/<name>.png (the README shows some)."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    return path


@pytest.mark.parametrize("ui", UIS)
def test_widgets_are_readable_in_the_dark_theme(open_notebook: OpenNotebook, ui: str) -> None:
    notebook = open_notebook(
        [
            AGENTS_CELL,
            "tree = mn.show_tree()\n_ = poet.inquire('a poem'), fact_checker.inquire('is it true?')",
            "replies = show_reply(writer.inquire('a table please'))",
            "chat = mn.chat(assistant)",
        ],
        ui,
    )
    notebook.run_all_and_wait()
    notebook.output(2).locator(".miniagents-message[data-status=done]").wait_for()
    notebook.output(1).locator('.miniagents-call[data-agent="POET"][data-status="finished"]').wait_for()
    chat_input = notebook.output(3).locator("textarea.miniagents-chat-input")
    chat_input.click()
    chat_input.fill("hi there")
    chat_input.press("Enter")
    notebook.output(3).locator(".miniagents-message[data-status=done]", has_text="You said:").wait_for()
    notebook.output(3).locator(".miniagents-chat[data-phase=waiting]").wait_for()
    chat_input.fill("a question typed, not sent yet")
    try:
        for theme, label in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
            notebook.set_theme(theme)
            widget_screenshot(notebook, notebook.output(3), f"chat-{ui}-{label}")
            widget_screenshot(notebook, notebook.output(2), f"stream-{ui}-{label}")
        readings = {
            f"cell {cell} {selector}": (
                notebook.output(cell).locator(selector).first.evaluate(CONTRAST),
                needed,
            )
            for cell, selector, needed in READ_IN_DARK
        }
    finally:
        notebook.set_theme("JupyterLab Light")  # the theme is a user setting: the next tests start light

    too_faint = {
        name: round(reading["contrast"], 2)
        for name, (reading, needed) in readings.items()
        if reading["contrast"] < needed
    }
    assert too_faint == {}
    light_backgrounds = {name for name, (reading, _) in readings.items() if reading["background"] > 0.3}
    assert light_backgrounds == set(), "light boxes left in the dark theme"
