"""MiniAgents: async multi-agent framework with immutable messages and token streaming end to end."""

from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.miniagent_typing import MessageType
from miniagents.miniagents import (
    AgentCall,
    AgentCallNode,
    AgentReplyNode,
    ErrorMessage,
    InteractionContext,
    MessageSequence,
    MiniAgent,
    MiniAgents,
    miniagent,
)
from miniagents.promising.errors import (
    AppenderClosedError,
    AppenderNotOpenError,
    FunctionNotProvidedError,
    PromiseCancelledError,
    PromisingError,
)
from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.promising import Promise, PromisingContext, StreamAppender, StreamedPromise
from miniagents.promising.sentinels import AWAIT, CLEAR

__all__ = [
    "AWAIT",
    "CLEAR",
    "AgentCall",
    "AgentCallNode",
    "AgentReplyNode",
    "AppenderClosedError",
    "AppenderNotOpenError",
    "ErrorMessage",
    "Frozen",
    "FunctionNotProvidedError",
    "InteractionContext",
    "Message",
    "MessagePromise",
    "MessageSequence",
    "MessageSequencePromise",
    "MessageType",
    "MiniAgent",
    "MiniAgents",
    "Promise",
    "PromiseCancelledError",
    "PromisingContext",
    "PromisingError",
    "StreamAppender",
    "StreamedPromise",
    "miniagent",
]
