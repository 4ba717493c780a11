"""Agents: `@miniagent` and MiniAgent, plus the names of the agent layer (re-exported from their modules)."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, overload

from miniagents.agent_call import (
    AgentCall,
    AgentCallNode,
    AgentReplyNode,
    AgentTimeoutError,
    ErrorMessage,
    InteractionContext,
)
from miniagents.message_sequence import MessageSequence
from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.miniagent_typing import MessageType
from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.ownership import current_owner_var
from miniagents.promising.sentinels import DEFAULT, Default, Sentinel
from miniagents.run_context import MiniAgents

__all__ = [
    "AgentCall",
    "AgentCallNode",
    "AgentReplyNode",
    "AgentTimeoutError",
    "DeferredReplies",
    "ErrorMessage",
    "InteractionContext",
    "MessageSequence",
    "MiniAgent",
    "MiniAgents",
    "miniagent",
]


class MiniAgent:
    """
    An agent: an `async def f(ctx, **kwargs)` function (or a class whose async `__call__(self)` is the body)
    with an alias, a description and bound kwargs.
    """

    def __init__(
        self,
        func: Callable[..., Awaitable[None]] | type,
        alias: str | None = None,
        description: str | None = None,
        uppercase_func_name: bool = True,
        normalize_spaces_in_docstring: bool = True,
        interaction_metadata: dict[str, Any] | None = None,
        call_timeout: float | None = None,
        errors_as_messages: bool | None = None,
        non_freezable_kwargs: dict[str, Any] | None = None,
        **partial_kwargs: Any,
    ) -> None:
        """
        `call_timeout`: seconds each call's agent function may run; past it the call fails with
        AgentTimeoutError (in its reply sequence). `errors_as_messages`: this agent's exceptions become
        ErrorMessages in its replies (None: the context's setting). `non_freezable_kwargs`: objects that cannot
        be frozen (SDK clients, connections) passed to the function as they are, kept out of hashes and of the
        interaction graph; call-time kwargs of these names may be unfreezable too. `partial_kwargs` are bound
        to the function.
        """
        name = getattr(func, "__name__", repr(func))
        if inspect.isclass(func):
            self._agent_class: type | None = func
            body = func.__call__
            if not inspect.iscoroutinefunction(body):
                raise TypeError(
                    f"a class-based agent needs an `async def __call__(self)` (the agent's body); {name}.__call__ "
                    "is not async"
                )
            func = _class_agent_body(func)
        else:
            self._agent_class = None
            if inspect.isasyncgenfunction(func):
                raise TypeError(
                    f"agent {name!r} is an async generator (it uses `yield`); an agent replies with "
                    "ctx.reply(...) instead: `async def f(ctx, ...): ctx.reply(...)`"
                )
            if not inspect.iscoroutinefunction(func):
                raise TypeError(
                    f"an agent must be an async function (`async def {name}(ctx, ...)`) or a class with an async "
                    f"__call__, got {name!r} of type {type(func).__name__}"
                )
        self.func: Callable[..., Awaitable[None]] = func  # for a class-based agent: builds and calls an instance
        agent_alias: str = alias if alias is not None else (name.upper() if uppercase_func_name else name)
        if description is None:
            description = inspect.getdoc(self._agent_class or func) or ""
            if normalize_spaces_in_docstring:
                description = " ".join(description.split())
        self.alias = agent_alias
        self._description_template = description  # forks with another alias fill `{AGENT_ALIAS}` anew
        self.description = description.replace("{AGENT_ALIAS}", agent_alias)
        self.interaction_metadata = Frozen(**(interaction_metadata or {}))
        if call_timeout is not None and not call_timeout > 0:
            raise ValueError(f"{agent_alias}: call_timeout must be a positive number of seconds, got {call_timeout!r}")
        self.call_timeout = call_timeout
        if errors_as_messages is not None and not isinstance(errors_as_messages, bool):
            raise TypeError(
                f"{agent_alias}: errors_as_messages must be True, False or None, got {errors_as_messages!r}"
            )
        self.errors_as_messages = errors_as_messages
        if non_freezable_kwargs is not None and not isinstance(non_freezable_kwargs, dict):
            raise TypeError(
                f"{agent_alias}: non_freezable_kwargs must be a dict of name -> object, "
                f"got {type(non_freezable_kwargs).__name__}"
            )
        self.non_freezable_kwargs: dict[str, Any] = dict(non_freezable_kwargs or {})
        self.partial_kwargs: dict[str, Any] = partial_kwargs  # bound to the function; call-time kwargs win
        self.__name__ = agent_alias
        self.__doc__ = self.description

    def inquire(
        self, messages: MessageType | None = None, start_asap: bool | Sentinel = DEFAULT, **function_kwargs: Any
    ) -> MessageSequencePromise:
        """
        Call the agent; returns its reply sequence at once (the agent starts in the background).

        With no context active (e.g. `MiniAgents().run(agent.inquire("hi").aresolve_messages())` in a script),
        the call is made when its replies are first used inside one: see `DeferredReplies`.
        """
        if current_owner_var.get() is None:  # no context active
            return DeferredReplies(self, messages, start_asap, function_kwargs)  # type: ignore[return-value]
        return AgentCall(self, start_asap, function_kwargs, messages).replies  # (its input is finished already)

    def initiate_inquiry(self, start_asap: bool | Sentinel = DEFAULT, **function_kwargs: Any) -> AgentCall:
        """Start a call whose input messages are sent afterwards with `send_message()`."""
        return AgentCall(self, start_asap, function_kwargs)

    def trigger(
        self,
        messages: MessageType | None = None,
        start_soon: bool | Sentinel = DEFAULT,
        **function_kwargs: Any,
    ) -> MessageSequencePromise:
        """`inquire()` under its MiniAgents 0.0.35 name (`start_soon` is `start_asap`)."""
        return self.inquire(messages, start_asap=start_soon, **function_kwargs)

    def initiate_call(self, start_soon: bool | Sentinel = DEFAULT, **function_kwargs: Any) -> AgentCall:
        """`initiate_inquiry()` under its MiniAgents 0.0.35 name (`start_soon` is `start_asap`)."""
        return self.initiate_inquiry(start_asap=start_soon, **function_kwargs)

    def fork(
        self,
        alias: str | None = None,
        description: str | None = None,
        call_timeout: float | Default | None = DEFAULT,
        errors_as_messages: bool | Default | None = DEFAULT,
        non_freezable_kwargs: dict[str, Any] | None = None,
        **partial_kwargs: Any,
    ) -> MiniAgent:
        """The same function as a new agent with more bound kwargs (later values override earlier ones)."""
        return MiniAgent(
            self._agent_class or self.func,
            alias=alias or self.alias,
            description=description if description is not None else self._description_template,
            interaction_metadata=dict(self.interaction_metadata.frozen_fields_and_values()),
            call_timeout=self.call_timeout if call_timeout is DEFAULT else call_timeout,
            errors_as_messages=self.errors_as_messages if errors_as_messages is DEFAULT else errors_as_messages,
            non_freezable_kwargs={**self.non_freezable_kwargs, **(non_freezable_kwargs or {})},
            **{**self.partial_kwargs, **partial_kwargs},
        )

    def __repr__(self) -> str:
        return f"MiniAgent({self.alias!r})"


class DeferredReplies:
    """
    The replies of an agent called while no context was active. The call is made, once per context, when the
    replies are first used inside one (awaited, iterated, `aresolve_messages()`), e.g. by `MiniAgents().run()`.
    Using them with no context active raises the usual "No MiniAgents context is active" RuntimeError; replies
    that are never used are reported with a RuntimeWarning, like a coroutine that was never awaited.
    """

    __slots__ = ("_agent", "_function_kwargs", "_made", "_messages", "_start_asap", "_used")

    def __init__(
        self, agent: MiniAgent, messages: Any, start_asap: bool | Sentinel, function_kwargs: dict[str, Any]
    ) -> None:
        self._agent = agent
        self._messages = messages
        self._start_asap = start_asap
        self._function_kwargs = function_kwargs
        self._made: tuple[MiniAgents, MessageSequencePromise] | None = None
        self._used = False

    def replies(self) -> MessageSequencePromise:
        """The reply sequence in the active context (the call is made on first use in that context)."""
        self._used = True
        context = MiniAgents.get_current()
        made = self._made
        if made is None or made[0] is not context:
            sequence = self._agent.inquire(self._messages, start_asap=self._start_asap, **self._function_kwargs)
            made = self._made = (context, sequence)
        return made[1]

    def __await__(self) -> Generator[Any, None, tuple[MessagePromise, ...]]:
        return self.replies().__await__()

    def __aiter__(self) -> AsyncIterator[MessagePromise]:
        return self.replies().__aiter__()

    async def aresolve_messages(self) -> tuple[Message, ...]:
        """Every message of the reply sequence, resolved (the call is made now if it was not yet)."""
        return await self.replies().aresolve_messages()

    def __del__(self) -> None:
        if not self._used:
            warnings.warn(
                f"{self._agent.alias} was called with no MiniAgents context active and its replies were never "
                "used, so it never ran: use them inside a context (`MiniAgents().run(...)`, "
                "`async with MiniAgents():`)",
                RuntimeWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        return f"<DeferredReplies of {self._agent.alias}>"


def _class_agent_body(agent_class: type) -> Callable[..., Awaitable[None]]:
    """The agent function of a class-based agent: each call builds an instance with `ctx=` and the kwargs."""

    async def run_class_agent(ctx: InteractionContext, **kwargs: Any) -> None:
        await agent_class(ctx=ctx, **kwargs)()

    run_class_agent.__name__ = agent_class.__name__
    run_class_agent.__qualname__ = agent_class.__qualname__
    run_class_agent.__doc__ = agent_class.__doc__
    return run_class_agent


@overload
def miniagent(func: Callable[..., Awaitable[None]] | type, /, **kwargs: Any) -> MiniAgent: ...
@overload
def miniagent(func: None = None, /, **kwargs: Any) -> Callable[[Callable[..., Awaitable[None]] | type], MiniAgent]: ...
def miniagent(func: Any = None, /, **kwargs: Any) -> Any:
    """Turn `async def f(ctx, **kwargs)` into a MiniAgent: `@miniagent` or `@miniagent(alias=...)`."""
    if func is None:
        return lambda actual_func: MiniAgent(actual_func, **kwargs)
    return MiniAgent(func, **kwargs)
