"""
MiniAgents in Jupyter: a kernel-wide context, live widgets for replies, the tree of agent calls of a
run, and a chat in a cell.

    import miniagents.notebook
    miniagents.notebook.activate()          # or: %load_ext miniagents.notebook

    agent.inquire("hi")                     # as a cell's value: a live, streaming widget
    tree = miniagents.notebook.show_tree()  # the calls of the next runs, live
    miniagents.notebook.chat(agent)         # a chat with `agent` in this cell

Only this package imports IPython, ipywidgets and anywidget; `import miniagents` never does.
"""

from miniagents.notebook.activation import (
    activate,
    active_context,
    deactivate,
    load_ipython_extension,
    unload_ipython_extension,
)
from miniagents.notebook.chat import (
    ChatStopped,
    ChatWidget,
    NotebookUserAgent,
    chat,
    create_notebook_user_agent,
)
from miniagents.notebook.rendering import is_safe_url, render_markdown
from miniagents.notebook.run_scope import RunScope
from miniagents.notebook.stored_run import StoredRunTree
from miniagents.notebook.stream_widget import MessageStreamWidget, show_reply
from miniagents.notebook.tree_export import MermaidDiagram
from miniagents.notebook.tree_widget import MessageTree, show_tree

__all__ = [
    "ChatStopped",
    "ChatWidget",
    "MermaidDiagram",
    "MessageStreamWidget",
    "MessageTree",
    "NotebookUserAgent",
    "RunScope",
    "StoredRunTree",
    "activate",
    "active_context",
    "chat",
    "create_notebook_user_agent",
    "deactivate",
    "is_safe_url",
    "load_ipython_extension",
    "render_markdown",
    "show_reply",
    "show_tree",
    "unload_ipython_extension",
]
