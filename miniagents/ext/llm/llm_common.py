"""
What every LLM agent shares: the agent skeleton and the create_* plumbing (the role-typed messages live in
`llm_messages` and are re-exported here).

The skeleton is where the opt-in extras hook in, the same way for every provider: each model turn is first
turned into an `LLMRequest` (model + messages + parameters in the provider's own shape); the response
cache (`llm_cache`) may answer it from a recording, otherwise the provider streams the tokens; the
call log (`llm_log`) gets the request and the outcome either way. With tools to run or an output type to
check, the agent function runs the tool loop (`tool_loop`): several model turns and tool calls in one call.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import inspect
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Sequence
from contextlib import aclosing
from typing import Any, ClassVar

from miniagents.agent_call import AgentCall, attach_agent_trace
from miniagents.ext.llm.llm_cache import LLMResponseCache
from miniagents.ext.llm.llm_log import LLMLogFolder
from miniagents.ext.llm.llm_messages import (
    AssistantMessage,
    SystemMessage,
    ToolCallRequest,
    ToolResultMessage,
    UserMessage,
)
from miniagents.ext.llm.llm_request import LLMRequest, message_role, plain_data
from miniagents.ext.llm.structured import ModelTurn, OutputSpec
from miniagents.ext.llm.tool_loop import arun_tool_loop
from miniagents.ext.llm.tools import Toolbox
from miniagents.messages import Message, MessagePromise
from miniagents.miniagents import InteractionContext, MiniAgent, MiniAgents, miniagent
from miniagents.promising.ownership import current_owner

__all__ = [
    "AgentSDKClient",
    "AssistantMessage",
    "LLMAgent",
    "LLMIncompleteReplyError",
    "LLMRequest",
    "SystemMessage",
    "ToolResultMessage",
    "UserMessage",
    "check_loop_options",
    "create_llm_agent",
    "import_sdk",
    "message_role",
    "plain_data",
    "require_sdk",
    "sdk_call_kwargs",
]


class LLMIncompleteReplyError(RuntimeError):
    """
    A provider ended a reply without a finish reason (OpenAI `finish_reason`, Anthropic `stop_reason`): the
    server stopped generating before the reply was complete (a prompt over its context window, a request it
    aborted for another one, a feature it gave up on mid-stream). What streamed before stays readable.
    """


# fields of a Message that the provider's response must never overwrite
_PROTECTED_FIELDS = frozenset({"text", "text_template", "class_"})


class LLMAgent:
    """
    Skeleton of an LLM agent. Each model turn is ONE streamed message whose preliminary metadata (role, model,
    agent alias) is known before the first token, and whose resolved metadata adds the provider's fields (and
    `tool_calls`, in the neutral shape of `llm_messages`, when the model asked for tools).

    Without tools to run and without an output type, a call is one model turn, streamed when its reply is
    consumed. Otherwise the agent function runs the tool loop (`tool_loop`): model turns, tool calls and tool
    results, all replied in order.

    Subclasses set `provider`, and implement `_build_payload(messages)` (tools and output type included),
    `_aproduce_tokens(request, response)`, which yields text tokens and fills `response` with the provider's
    response fields, `_finish_reason(response)`: a reply the provider streamed without one is an error
    (LLMIncompleteReplyError), never a message, and `_tool_calls(response)`. Call-time kwargs named in
    `client_options` (such as `max_retries`, `timeout`) are kept out of the request: they configure the SDK
    client of the call.
    """

    provider: ClassVar[str] = "llm"
    response_message_class: type[Message] = AssistantMessage
    # whether MINIAGENTS_LLM_CACHE_DIR applies when no cache is given (not for a deterministic stand-in)
    cache_from_env: ClassVar[bool] = True
    # kwargs that configure the SDK client (applied with `client.with_options`), never sent in the request
    client_options: ClassVar[frozenset[str]] = frozenset()
    # whether a structured answer comes as a call of an output tool (Anthropic) rather than as text
    output_via_tool: ClassVar[bool] = False

    def __init__(
        self,
        ctx: InteractionContext,
        model: str,
        stream: bool | None = None,
        reply_metadata: dict[str, Any] | None = None,
        system: str | Sequence[Any] | None = None,
        response_cache: LLMResponseCache | None = None,
        llm_logger: LLMLogFolder | None = None,
        tools: Sequence[Any] | None = None,
        output_type: type[Any] | None = None,
        max_tool_rounds: int = 10,
        raise_tool_errors: bool = False,
        output_retries: int = 1,
        **provider_kwargs: Any,
    ) -> None:
        self.ctx = ctx
        self.alias = ctx.this_agent.alias
        self.model = model
        self.stream = MiniAgents.get_current().stream_llm_tokens_by_default if stream is None else stream
        self.reply_metadata = dict(reply_metadata or {})
        self.system = system
        if response_cache is None and self.cache_from_env:
            response_cache = LLMResponseCache.from_env()
        self.response_cache = response_cache
        self.llm_logger = llm_logger if llm_logger is not None else LLMLogFolder.from_env()
        self.call_options = {name: provider_kwargs.pop(name) for name in self.client_options & provider_kwargs.keys()}
        self.provider_kwargs = provider_kwargs
        check_loop_options(self.alias, max_tool_rounds, raise_tool_errors, output_retries)
        self.toolbox = Toolbox(tools, self.alias)
        self.output = OutputSpec.of(output_type, self.alias)
        self.max_tool_rounds = max_tool_rounds
        self.raise_tool_errors = raise_tool_errors
        self.output_retries = output_retries
        self._agent_call: AgentCall | None = None

    async def arun(self) -> None:
        """
        Reply with one streamed message promise (the model is called when it streams); or, with tools to run or
        an output type, run the tool loop until the model answers.
        """
        owner = current_owner()  # in the agent function's task: this agent's call
        self._agent_call = owner if isinstance(owner, AgentCall) else None
        if self.toolbox.runs_tools or self.output is not None:
            await arun_tool_loop(self)
        else:
            self.ctx.reply(self.turn_promise(None))

    def turn_promise(self, history: tuple[Message, ...] | None, turn: ModelTurn | None = None) -> MessagePromise:
        """
        The streamed reply of one model turn on `history` (None: the call's input messages). `turn` receives the
        tool calls asked for and, with an output type, the outcome of the validation.
        """
        metadata = {"role": "assistant", "model": self.model, "agent_alias": self.alias, **self.reply_metadata}
        streamer = functools.partial(self._atoken_streamer, history, turn)
        if turn is None or self.output is None:
            return self.response_message_class.promise(message_token_streamer=streamer, **metadata)
        output, message_class, via_tool = self.output, self.response_message_class, self.output_via_tool

        def output_message(**fields: Any) -> Message:  # the resolved reply: an output instance when it validates
            return output.finish(message_class(**fields), turn, via_tool)

        return MessagePromise(message_token_streamer=streamer, message_class=output_message, **metadata)

    async def _atoken_streamer(
        self, history: tuple[Message, ...] | None, turn: ModelTurn | None, metadata_so_far: dict[str, Any]
    ) -> AsyncIterator[str]:
        try:
            messages = await self.ctx.messages.aresolve_messages() if history is None else history
            request = LLMRequest(
                provider=self.provider,
                agent_alias=self.alias,
                stream=self.stream,
                payload=self._build_payload(messages),
                messages=messages,
            )
        except Exception as exc:
            self._attach_agent_trace(exc)
            raise
        response: dict[str, Any] = {}
        tokens: list[str] = []
        error: BaseException | None = None
        replayed = False
        try:
            recording = self.response_cache.lookup(request) if self.response_cache is not None else None
            if recording is not None:
                replayed = True
                response.update(recording.response)
                source = recording.atokens(request.stream)
            else:
                source = self._aproduce_tokens(request, response)
            async with aclosing(source):
                async for token in source:
                    tokens.append(token)
                    yield token
            if not replayed and self._finish_reason(response) is None:
                raise self._incomplete_reply_error(request, response, tokens)
        except BaseException as exc:
            error = exc
            if isinstance(exc, Exception):
                self._attach_agent_trace(exc)
            raise
        finally:
            if self.llm_logger is not None:
                self.llm_logger.log_call(request, tokens, response, error, replayed, self._secrets())
        if self.response_cache is not None and not replayed:
            self.response_cache.record(request, tokens, response, self._secrets())
        context = MiniAgents.get_current_or_none()
        if isinstance(context, MiniAgents):  # the run's totals (SPEC 4.4)
            context.token_usage.add(response.get("model") or self.model, response.get("usage"))
        for name, value in response.items():
            # a server that leaves a field empty (`model: ""`) does not erase what was known before
            if name not in _PROTECTED_FIELDS and not (name in metadata_so_far and _is_empty(value)):
                metadata_so_far[name] = value
        tool_calls = self._tool_calls(response)
        if tool_calls:
            metadata_so_far["tool_calls"] = tuple(call.as_dict() for call in tool_calls)
        if turn is not None:
            turn.tool_calls = tool_calls
        metadata_so_far.update(self.reply_metadata)  # what the caller asked for wins

    def _attach_agent_trace(self, exc: Exception) -> None:
        """The reply streams after the agent function returned: its errors get the agent trace here."""
        if self._agent_call is not None:
            attach_agent_trace(exc, self._agent_call)

    def _incomplete_reply_error(
        self, request: LLMRequest, response: dict[str, Any], tokens: list[str]
    ) -> LLMIncompleteReplyError:
        reported = response.get("model")
        model = repr(request.model) + (f" (reported as {reported!r})" if reported and reported != request.model else "")
        received = "".join(tokens)
        return LLMIncompleteReplyError(
            f"{request.agent_alias}: the {request.provider} reply of model {model} ended without a finish reason: "
            f"the server stopped before the reply was complete (a prompt over its context window, a request it "
            f"aborted, or a parameter it gave up on); {len(received)} characters arrived before the end"
            + (f": {received[:80]!r}" if received else "")
        )

    def _build_payload(self, messages: tuple[Message, ...]) -> dict[str, Any]:
        raise NotImplementedError

    def _aproduce_tokens(self, request: LLMRequest, response: dict[str, Any]) -> AsyncGenerator[str, None]:
        raise NotImplementedError

    def _finish_reason(self, response: dict[str, Any]) -> Any:
        """Why the provider ended the reply (None: it did not say, so the reply is incomplete)."""
        raise NotImplementedError

    def _tool_calls(self, response: dict[str, Any]) -> tuple[ToolCallRequest, ...]:
        """The tool calls the model asked for in a response, in order."""
        return ()

    def _secrets(self) -> tuple[str, ...]:
        """Credentials that must never be written to a log or a recording."""
        return ()


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, tuple, dict)) and not value)


class AgentSDKClient:
    """
    The SDK client of one LLM agent: the client given at creation, or else one made on first use (from the
    SDK's own settings: `OPENAI_API_KEY`...) and reused by every later call. A made client is made again only
    when a call runs in another event loop, since a client's connections belong to the loop that opened them.
    """

    def __init__(self, given: Any | None, make: Callable[..., Any], construction_options: Collection[str] = ()) -> None:
        """
        `make(**options)` makes a client; it receives the call's options named in `construction_options`
        (credentials, endpoint), so that a key given only as a kwarg is enough to make one.
        """
        self.given = given
        self._make = make
        self._construction_options = frozenset(construction_options)
        self._made: Any = None
        self._made_in: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def for_call(self, options: dict[str, Any]) -> Any:
        """The client for one call: `options` (`max_retries`, `timeout`...) applied with `with_options`."""
        client = self.given
        if client is None:
            loop = asyncio.get_running_loop()
            if self._made is None or self._made_in is None or self._made_in() is not loop:
                made = self._make(**{k: v for k, v in options.items() if k in self._construction_options})
                self._made, self._made_in = made, weakref.ref(loop)
            client = self._made
        return client.with_options(**options) if options else client

    def credentials(self, options: dict[str, Any]) -> tuple[str, ...]:
        """The keys and tokens of the clients in use and of a call's `options` (to scrub from logs and recordings)."""
        found: list[str] = []
        for name in ("api_key", "auth_token"):
            for value in (getattr(self.given, name, None), getattr(self._made, name, None), options.get(name)):
                if isinstance(value, str) and value:
                    found.append(value)
        return tuple(found)


def sdk_call_kwargs(method: Callable[..., Any], payload: dict[str, Any]) -> dict[str, Any]:
    """
    `payload` as keyword arguments of an SDK method. Parameters the method does not declare go into
    `extra_body`, so that parameters newer than the installed SDK (or known only to an
    OpenAI-compatible server) still reach the API unchanged.
    """
    parameters = inspect.signature(method).parameters
    if "extra_body" not in parameters:
        return payload
    known = {name: value for name, value in payload.items() if name in parameters}
    unknown = {name: value for name, value in payload.items() if name not in parameters}
    if unknown:
        known["extra_body"] = {**unknown, **(payload.get("extra_body") or {})}
    return known


def import_sdk(module: str, extra: str) -> Any:
    """Import a provider SDK; raises ImportError naming the extra to install when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"the {module!r} package is needed for this agent: pip install 'miniagents[{extra}]'"
        ) from exc


def require_sdk(module: str, extra: str) -> None:
    """Fail early (without importing anything) when a provider SDK is not installed."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImportError(f"the {module!r} package is needed for this agent: pip install 'miniagents[{extra}]'")


_MINIAGENT_OPTIONS = frozenset(
    name
    for name, parameter in inspect.signature(MiniAgent.__init__).parameters.items()
    if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD or parameter.kind is inspect.Parameter.KEYWORD_ONLY
) - {"self", "func", "alias"}


def create_llm_agent(
    agent_class: Callable[..., LLMAgent],
    alias: str,
    description: str,
    reply_metadata: dict[str, Any] | None,
    agent_objects: dict[str, Any],
    defaults: dict[str, Any],
) -> MiniAgent:
    """
    A MiniAgent that runs `agent_class` for each call.

    `defaults` holds the `**miniagent_kwargs` of a create_* function: MiniAgent's own options (such as
    `description`) go to the MiniAgent; everything else is a default for the call-time kwargs, which
    override it (`reply_metadata` is merged). `agent_objects` (SDK client, cache, logger) are passed to
    the agent class as they are: they are not data, so they are never bound as function kwargs. `tools` and
    `output_type` (functions, agents, classes: not data either) are the agent's non-freezable kwargs, so they
    may be given per call too; they are checked here, so a bad one fails at creation.
    """
    defaults = dict(defaults)
    options = {name: defaults.pop(name) for name in list(defaults) if name in _MINIAGENT_OPTIONS}
    options.setdefault("description", description)
    tools = defaults.pop("tools", None)
    if tools is not None:
        tools = Toolbox(tools, alias).entries  # raises now for a tool that is not one; wrapped once, here
    OutputSpec.of(defaults.get("output_type"), alias)
    check_loop_options(
        alias,
        defaults.get("max_tool_rounds", 10),
        defaults.get("raise_tool_errors", False),
        defaults.get("output_retries", 1),
    )
    options["non_freezable_kwargs"] = {
        "tools": tools,
        "output_type": defaults.pop("output_type", None),
        **(options.get("non_freezable_kwargs") or {}),
    }
    default_reply_metadata = dict(reply_metadata or {})

    async def llm_agent(ctx: InteractionContext, **call_kwargs: Any) -> None:
        kwargs = {**defaults, **call_kwargs}
        kwargs["reply_metadata"] = {**default_reply_metadata, **(call_kwargs.get("reply_metadata") or {})}
        await agent_class(ctx, **agent_objects, **kwargs).arun()

    return miniagent(llm_agent, alias=alias, **options)


def check_loop_options(agent_alias: str, max_tool_rounds: Any, raise_tool_errors: Any, output_retries: Any) -> None:
    """Raise ValueError / TypeError, naming the agent, for a tool-loop option that makes no sense."""
    for name, value in (("max_tool_rounds", max_tool_rounds), ("output_retries", output_retries)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{agent_alias}: {name} must be a whole number >= 0, got {value!r:.40}")
    if not isinstance(raise_tool_errors, bool):
        raise TypeError(f"{agent_alias}: raise_tool_errors must be True or False, got {raise_tool_errors!r:.40}")
