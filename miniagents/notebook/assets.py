"""
Where the widgets' front-end files are: `widgets/` at the top of a source checkout, shipped inside the
wheel as `miniagents/notebook/widgets/`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_CANDIDATES = (_HERE / "widgets", _HERE.parent.parent / "widgets")

# Front-end code shared by every widget; each widget's ES module is this file followed by its own file.
SHARED_MODULE = "live.js"
# How messages, trees and transcripts look: used by the live widgets and embedded in their static HTML.
STYLESHEET = "messages.css"
# What only the live widgets need (a chat's input and buttons, the cursor of a streaming message).
LIVE_STYLESHEET = "controls.css"
# What the tree of agent calls adds (references to forwarded replies, failure marks, folded calls, totals).
TREE_STYLESHEET = "tree.css"

_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_CSS_SPACE = re.compile(r"\s*([{};,>])\s*|\s+")


@cache
def widgets_dir() -> Path:
    """The directory holding the ES modules and the stylesheet. Raises FileNotFoundError if missing."""
    for candidate in _CANDIDATES:
        if (candidate / STYLESHEET).is_file():
            return candidate
    raise FileNotFoundError(f"the MiniAgents widget files were not found in any of {[str(c) for c in _CANDIDATES]}")


def read_widget_file(name: str) -> str:
    """The text of one file of `widgets/`."""
    return (widgets_dir() / name).read_text(encoding="utf-8")


def widget_module(name: str) -> str:
    """The ES module of one widget: the shared live-document code, then the widget's own file `name`."""
    return f"{read_widget_file(SHARED_MODULE)}\n// ---- {name} ----\n{read_widget_file(name)}"


def stylesheet() -> str:
    """The CSS of the live widgets (stream, tree, chat)."""
    return f"{read_widget_file(STYLESHEET)}\n{read_widget_file(TREE_STYLESHEET)}\n{read_widget_file(LIVE_STYLESHEET)}"


@cache
def static_stylesheet() -> str:
    """The CSS a widget's static HTML carries along: `messages.css` and `tree.css` without comments and extra spaces."""
    css = _CSS_COMMENT.sub("", f"{read_widget_file(STYLESHEET)}\n{read_widget_file(TREE_STYLESHEET)}")
    return _CSS_SPACE.sub(lambda match: match.group(1) or " ", css).strip()
