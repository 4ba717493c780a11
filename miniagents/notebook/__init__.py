"""
MiniAgents in Jupyter: a kernel-wide context, live widgets for replies, the tree of agent calls of a
run, and a chat in a cell.

    import miniagents.notebook
    miniagents.notebook.activate()          # or: %load_ext miniagents.notebook

    agent.inquire("hi")                     # as a cell's value: a live, streaming widget
    tree = miniagents.notebook.show_tree()  # the calls of the next runs, live
    miniagents.notebook.Timeline()          # ... as a waterfall (as a cell's value)
    miniagents.notebook.chat(agent)         # a chat with `agent` in this cell
    df = await miniagents.notebook.amap(agent, inputs)  # a batch run, with its progress live

Only this package imports IPython, ipywidgets and anywidget; `import miniagents` never does.
"""

from miniagents.notebook.activation import (
    activate,
    active_context,
    deactivate,
    load_ipython_extension,
    unload_ipython_extension,
)
from miniagents.notebook.batch_widget import BatchProgressWidget, amap, last_batch
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
from miniagents.notebook.timeline import Timeline
from miniagents.notebook.tree_export import MermaidDiagram
from miniagents.notebook.tree_widget import MessageTree, show_tree

__all__ = [
    "BatchProgressWidget",
    "ChatStopped",
    "ChatWidget",
    "MermaidDiagram",
    "MessageStreamWidget",
    "MessageTree",
    "NotebookUserAgent",
    "RunScope",
    "StoredRunTree",
    "Timeline",
    "activate",
    "active_context",
    "amap",
    "chat",
    "create_notebook_user_agent",
    "deactivate",
    "is_safe_url",
    "last_batch",
    "load_ipython_extension",
    "render_markdown",
    "show_reply",
    "show_tree",
    "unload_ipython_extension",
]
