"""Generic promise machinery: knows nothing about messages or agents."""

from miniagents.promising.errors import (
    AppenderClosedError,
    AppenderNotOpenError,
    FunctionNotProvidedError,
    PromisingError,
)
from miniagents.promising.promising import Promise, PromisingContext, StreamAppender, StreamedPromise
from miniagents.promising.sentinels import AWAIT, CLEAR, DEFAULT, END_OF_QUEUE, FAILED, NO_VALUE, Sentinel

__all__ = [
    "AWAIT",
    "CLEAR",
    "DEFAULT",
    "END_OF_QUEUE",
    "FAILED",
    "NO_VALUE",
    "AppenderClosedError",
    "AppenderNotOpenError",
    "FunctionNotProvidedError",
    "Promise",
    "PromisingContext",
    "PromisingError",
    "Sentinel",
    "StreamAppender",
    "StreamedPromise",
]
