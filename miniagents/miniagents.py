"""Agents: `@miniagent` and MiniAgent, plus the names of the agent layer (re-exported from their modules)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, overload

from miniagents.agent_call import (
    AgentCall,
    AgentCallNode,
    AgentReplyNode,
    AgentTimeoutError,
    InteractionContext,
)
from miniagents.message_sequence import MessageSequence
from miniagents.messages import MessageSequencePromise
from miniagents.miniagent_typing import MessageType
from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.sentinels import DEFAULT, Sentinel
from miniagents.run_context import MiniAgents

__all__ = [
    "AgentCall",
    "AgentCallNode",
    "AgentReplyNode",
    "AgentTimeoutError",
    "InteractionContext",
    "MessageSequence",
    "MiniAgent",
    "MiniAgents",
    "miniagent",
]


class MiniAgent:
    """An agent: an `async def f(ctx, **kwargs)` function with an alias, a description and bound kwargs."""

    def __init__(
        self,
        func: Callable[..., Awaitable[None]],
        alias: str | None = None,
        description: str | None = None,
        uppercase_func_name: bool = True,
        normalize_spaces_in_docstring: bool = True,
        interaction_metadata: dict[str, Any] | None = None,
        call_timeout: float | None = None,
        **partial_kwargs: Any,
    ) -> None:
        """
        `call_timeout`: seconds each call's agent function may run; past it the call fails with
        AgentTimeoutError (in its reply sequence). `partial_kwargs` are bound to the function.
        """
        if inspect.isasyncgenfunction(func):
            raise TypeError(
                f"agent {func.__name__!r} is an async generator (it uses `yield`); an agent replies with "
                "ctx.reply(...) instead: `async def f(ctx, ...): ctx.reply(...)`"
            )
        if not inspect.iscoroutinefunction(func):
            name = getattr(func, "__name__", repr(func))
            raise TypeError(
                f"an agent must be an async function (`async def {name}(ctx, ...)`), got {name!r} "
                f"of type {type(func).__name__}"
            )
        self._func = func
        if alias is None:
            alias = func.__name__.upper() if uppercase_func_name else func.__name__
        if description is None:
            description = inspect.getdoc(func) or ""
            if normalize_spaces_in_docstring:
                description = " ".join(description.split())
        self.alias = alias
        self._description_template = description  # forks with another alias fill `{AGENT_ALIAS}` anew
        self.description = description.replace("{AGENT_ALIAS}", alias)
        self.interaction_metadata = Frozen(**(interaction_metadata or {}))
        if call_timeout is not None and not call_timeout > 0:
            raise ValueError(f"{alias}: call_timeout must be a positive number of seconds, got {call_timeout!r}")
        self.call_timeout = call_timeout
        self._partial_kwargs = partial_kwargs
        self.__name__ = alias
        self.__doc__ = self.description

    @property
    def func(self) -> Callable[..., Awaitable[None]]:
        """The agent function."""
        return self._func

    @property
    def partial_kwargs(self) -> dict[str, Any]:
        """The kwargs bound to the function (call-time kwargs override them)."""
        return self._partial_kwargs

    def inquire(
        self, messages: MessageType | None = None, start_asap: bool | Sentinel = DEFAULT, **function_kwargs: Any
    ) -> MessageSequencePromise:
        """Call the agent; returns its reply sequence at once (the agent starts in the background)."""
        return AgentCall(self, start_asap, function_kwargs, messages).reply_sequence()

    def initiate_inquiry(self, start_asap: bool | Sentinel = DEFAULT, **function_kwargs: Any) -> AgentCall:
        """Start a call whose input messages are sent afterwards with `send_message()`."""
        return AgentCall(self, start_asap, function_kwargs)

    def fork(
        self,
        alias: str | None = None,
        description: str | None = None,
        call_timeout: float | Sentinel | None = DEFAULT,
        **partial_kwargs: Any,
    ) -> MiniAgent:
        """The same function as a new agent with more bound kwargs (later values override earlier ones)."""
        return MiniAgent(
            self._func,
            alias=alias or self.alias,
            description=description if description is not None else self._description_template,
            interaction_metadata=dict(self.interaction_metadata.frozen_fields_and_values()),
            call_timeout=self.call_timeout if call_timeout is DEFAULT else call_timeout,
            **{**self._partial_kwargs, **partial_kwargs},
        )

    def __repr__(self) -> str:
        return f"MiniAgent({self.alias!r})"


@overload
def miniagent(func: Callable[..., Awaitable[None]], /, **kwargs: Any) -> MiniAgent: ...
@overload
def miniagent(func: None = None, /, **kwargs: Any) -> Callable[[Callable[..., Awaitable[None]]], MiniAgent]: ...
def miniagent(func: Any = None, /, **kwargs: Any) -> Any:
    """Turn `async def f(ctx, **kwargs)` into a MiniAgent: `@miniagent` or `@miniagent(alias=...)`."""
    if func is None:
        return lambda actual_func: MiniAgent(actual_func, **kwargs)
    return MiniAgent(func, **kwargs)
