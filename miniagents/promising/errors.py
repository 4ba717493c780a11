"""The errors of the promising layer: one small hierarchy rooted at `PromisingError`."""


class PromisingError(Exception):
    """Base class of every error raised by the promising machinery."""


class FunctionNotProvidedError(PromisingError):
    """A streamer or resolver was neither passed in nor implemented by a subclass."""


class AppenderNotOpenError(PromisingError):
    """`append()` was called on a StreamAppender that has not been opened yet."""


class AppenderClosedError(PromisingError):
    """`append()` was called on a StreamAppender that is already closed."""


class PromiseCancelledError(PromisingError):
    """
    A promise's resolution or stream (or the agent producing it) was cancelled before it finished;
    every consumer gets this error, at the position where the stream was cut.
    """
