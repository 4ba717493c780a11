"""Generic promise machinery: knows nothing about messages or agents."""

from miniagents.promising.errors import (
    AppenderClosedError,
    AppenderNotOpenError,
    FunctionNotProvidedError,
    PromiseCancelledError,
    PromisingError,
)
from miniagents.promising.ownership import TaskOwner
from miniagents.promising.promising import (
    ParkingLot,
    Promise,
    PromisingContext,
    StreamAppender,
    StreamedPromise,
    StreamWriter,
)
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
    "ParkingLot",
    "Promise",
    "PromiseCancelledError",
    "PromisingContext",
    "PromisingError",
    "Sentinel",
    "StreamAppender",
    "StreamWriter",
    "StreamedPromise",
    "TaskOwner",
]
