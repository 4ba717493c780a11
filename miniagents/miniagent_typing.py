"""Type aliases and protocols of the agent layer."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from miniagents.messages import Message, MessagePromise

if TYPE_CHECKING:
    from miniagents.miniagents import InteractionContext

SingleMessageType = str | dict[str, Any] | BaseModel | Message | MessagePromise | BaseException
MessageType = SingleMessageType | Iterable[Any] | AsyncIterable[Any]
"""Anything that can be sent to or replied by an agent; (async) iterables nest to any depth."""


class AgentFunction(Protocol):
    """`async def agent(ctx, **kwargs)`: what `@miniagent` turns into a MiniAgent."""

    def __call__(self, ctx: InteractionContext, **kwargs: Any) -> Awaitable[None]: ...


class PersistMessageEventHandler(Protocol):
    def __call__(self, promise: Any, message: Message) -> Awaitable[None]: ...
