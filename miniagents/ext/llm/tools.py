"""
Tools an LLM agent can call: MiniAgents, plain Python functions, and raw provider tool dicts.

A `Tool` is what the model sees (a name, a description, a JSON schema of the arguments) together with the
MiniAgent that runs a call: a tool call is an agent call. A Python function becomes a MiniAgent whose reply is
the function's result (a string as it is, anything else as JSON). A MiniAgent used as a tool takes one string
argument, `input`, which becomes its input message (`Tool(agent, arguments=SomeModel)` passes validated
arguments as the agent function's kwargs instead). A raw provider tool dict is passed through untouched: the
model's calls to it are returned to the caller, not run.

`Toolbox` holds the tools of one call and checks them (unknown kinds, duplicate names) with clear errors.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from miniagents.ext.llm.llm_messages import UserMessage
from miniagents.ext.llm.llm_request import plain_data
from miniagents.ext.llm.structured import clean_schema, describe_validation_error, strict_schema
from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.miniagents import InteractionContext, MiniAgent, miniagent
from miniagents.promising.ext.frozen import Frozen

__all__ = [
    "TOOL_NAME_PATTERN",
    "MaxToolRoundsError",
    "Tool",
    "ToolArgumentsError",
    "ToolCallError",
    "Toolbox",
    "raw_tool_name",
]

# what both OpenAI and Anthropic accept as a tool name
TOOL_NAME_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_RESERVED_PARAMETERS = frozenset({"start_asap"})  # a keyword of `initiate_inquiry()`, which makes the call


class ToolCallError(ValueError):
    """
    The model called a tool that does not exist, or with invalid arguments, and the agent was asked to raise
    (`raise_tool_errors=True`) instead of sending the error back to the model.
    """


class ToolArgumentsError(ValueError):
    """A tool call's arguments are not a JSON object, or do not validate against the tool's schema."""

    def __init__(self, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields


class MaxToolRoundsError(RuntimeError):
    """The model still asked for tools after `max_tool_rounds` rounds of tool calls."""


class Tool:
    """
    A tool an LLM agent can call: a MiniAgent or a Python function, with the name, description and JSON
    schema of its arguments that the model sees.

    `Tool(function)`: the schema comes from the function's type hints (through pydantic), the description from
    its docstring (an `Args:` section describes the parameters); a parameter named `ctx` (or annotated
    `InteractionContext`) receives the tool call's context, and the keywords bound with `functools.partial`
    are left out. A sync function runs in a worker thread (`asyncio.to_thread`), an async one in the loop.

    `Tool(agent)`: the model sends one string, `input`, which becomes the agent's input message (a
    `UserMessage`); the description is the agent's description. With `arguments=SomeModel` (a pydantic
    model class) the model sends that model's fields instead, and they are passed, validated, as the agent
    function's kwargs.

    Raises TypeError for something that is neither, or a function parameter without a type hint; ValueError
    for a name the providers refuse (`TOOL_NAME_PATTERN`) or a parameter named `start_asap`.
    """

    def __init__(
        self,
        target: MiniAgent | Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        arguments: type[BaseModel] | None = None,
    ) -> None:
        self.target = target
        if isinstance(target, MiniAgent):
            self.name = name or target.alias
            self.description = target.description if description is None else description
            if arguments is None:
                self.arguments_model: type[BaseModel] = _agent_input_model(self.name)
                self._input_message = True
            else:
                if not (isinstance(arguments, type) and issubclass(arguments, BaseModel)):
                    raise TypeError(
                        f"Tool {self.name!r}: `arguments` must be a pydantic model class, got {arguments!r:.80}"
                    )
                self.arguments_model = arguments
                self._input_message = False
            self.agent = target
        elif callable(target):
            function_name = _function_name(target)
            self.name = name or function_name
            summary, parameter_docs = _parse_docstring(inspect.getdoc(_unwrapped(target)) or "")
            self.description = summary if description is None else description
            self.arguments_model, context_parameter = _signature_model(target, self.name, parameter_docs)
            self._input_message = False
            self.agent = _function_agent(target, self.name, self.description, self.arguments_model, context_parameter)
        else:
            raise TypeError(
                f"a tool must be a MiniAgent or a function, got {type(target).__name__} ({target!r:.80}); raw "
                "provider tool dicts are given in `tools=[...]` directly"
            )
        if not TOOL_NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"tool name {self.name!r} is not accepted by the providers: use 1-64 letters, digits, '_' or '-' "
                "(give one with Tool(..., name=...))"
            )
        reserved = _RESERVED_PARAMETERS & set(self.arguments_model.model_fields)
        if reserved:
            raise ValueError(f"tool {self.name!r}: the parameter name {sorted(reserved)[0]!r} is reserved; rename it")
        # the JSON schema of the arguments (`additionalProperties: false` on its objects), and whether it also
        # fits OpenAI's strict mode
        self.parameters, self.strict = strict_schema(clean_schema(self.arguments_model.model_json_schema()))

    def validate_arguments(self, arguments: str) -> dict[str, Any]:
        """
        The arguments of a call (JSON text) validated against the schema: the kwargs of `call()`, JSON data.

        Raises ToolArgumentsError naming the failing fields (or saying the text is not a JSON object).
        """
        try:
            parsed = pydantic_core.from_json(arguments or "{}")
        except ValueError as exc:
            raise ToolArgumentsError(
                f"the arguments of {self.name} are not valid JSON ({exc}): {arguments!r:.200}"
            ) from None
        if not isinstance(parsed, dict):
            raise ToolArgumentsError(f"the arguments of {self.name} must be a JSON object, got {arguments!r:.200}")
        try:
            validated = self.arguments_model.model_validate(parsed)
        except ValidationError as exc:
            summary, fields = describe_validation_error(exc)
            raise ToolArgumentsError(f"invalid arguments for {self.name}: {summary}", fields) from None
        if isinstance(self.target, MiniAgent):
            return validated.model_dump(mode="json")
        return parsed  # the function's own agent validates them again, into Python values

    def call(self, arguments: dict[str, Any]) -> MessageSequencePromise:
        """Call the tool's agent with validated arguments (in the caller's agent call: it owns the call)."""
        if self._input_message:
            return self.agent.inquire(UserMessage(text=str(arguments.get("input", ""))))
        return self.agent.initiate_inquiry(**arguments).reply_sequence()

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def raw_tool_name(tool: dict[str, Any]) -> str | None:
    """The name in a raw provider tool dict (OpenAI `function.name`, Anthropic / neutral `name`)."""
    function = tool.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return function["name"]
    name = tool.get("name")
    return name if isinstance(name, str) else None


class Toolbox:
    """
    The tools of one LLM call, in the order given: `Tool`s (MiniAgents and functions are wrapped) and raw provider
    tool dicts, passed through. (The tools given to `create_*_agent` are wrapped once, there.)

    Raises TypeError naming the position of an item that is not a tool, ValueError for two tools of one name.
    """

    def __init__(self, tools: Iterable[Any] | None, agent_alias: str) -> None:
        self.entries: list[Tool | dict[str, Any]] = []
        self.tools: dict[str, Tool] = {}
        self.passthrough_names: set[str] = set()
        if tools is None:
            return
        if isinstance(tools, (str, bytes, dict)) or not isinstance(tools, Iterable):
            raise TypeError(f"{agent_alias}: `tools` must be a list of tools, got {type(tools).__name__}")
        seen: set[str] = set()
        for index, item in enumerate(tools):
            entry = _as_tool_entry(item, agent_alias, index)
            name = entry.name if isinstance(entry, Tool) else raw_tool_name(entry)
            if name is not None:
                if name in seen:
                    raise ValueError(f"{agent_alias}: two tools are named {name!r}; tool names must be unique")
                seen.add(name)
            self.entries.append(entry)
            if isinstance(entry, Tool):
                self.tools[entry.name] = entry
            elif name is not None:
                self.passthrough_names.add(name)

    @property
    def runs_tools(self) -> bool:
        """Whether any tool here is run by the agent (rather than passed through to the caller)."""
        return bool(self.tools)

    def specs(self, render: Callable[[Tool], dict[str, Any]]) -> list[dict[str, Any]]:
        """The `tools` parameter of a request: each Tool rendered by `render`, raw dicts as given."""
        return [render(entry) if isinstance(entry, Tool) else entry for entry in self.entries]

    def names(self) -> list[str]:
        """The names of every tool, in order."""
        return [*self.tools, *sorted(self.passthrough_names)]

    def __bool__(self) -> bool:
        return bool(self.entries)


def _as_tool_entry(item: Any, agent_alias: str, index: int) -> Tool | dict[str, Any]:
    if isinstance(item, Tool):
        return item
    if isinstance(item, dict):
        return item
    if isinstance(item, Frozen):  # a provider tool dict that was frozen on its way
        return plain_data(item)
    if isinstance(item, MiniAgent) or callable(item):
        return Tool(item)
    raise TypeError(
        f"{agent_alias}: tools[{index}] is a {type(item).__name__} ({item!r:.60}); a tool is a MiniAgent, a "
        "function with type hints, a Tool, or a provider tool dict"
    )


def _agent_input_model(name: str) -> type[BaseModel]:
    return create_model(
        f"{name}_input",
        __config__=ConfigDict(extra="forbid"),
        input=(str, Field(description=f"What to ask {name}, in plain words.")),
    )


def _unwrapped(function: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(function, functools.partial):
        function = function.func
    return function


def _function_name(function: Callable[..., Any]) -> str:
    name = getattr(_unwrapped(function), "__name__", None)
    if not isinstance(name, str) or name == "<lambda>":
        raise ValueError(f"give the tool {function!r:.60} a name: Tool(function, name=...)")
    return name


def _bound_keywords(function: Callable[..., Any]) -> set[str]:
    names: set[str] = set()
    while isinstance(function, functools.partial):
        names.update(function.keywords)
        function = function.func
    return names


def _is_context(name: str, annotation: Any) -> bool:
    return annotation is InteractionContext or (name == "ctx" and annotation in (inspect.Parameter.empty, Any))


def _signature_model(
    function: Callable[..., Any], name: str, parameter_docs: dict[str, str]
) -> tuple[type[BaseModel], str | None]:
    """The pydantic model of a function's arguments, and the name of its context parameter (if it has one)."""
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(_unwrapped(function), include_extras=True)
    except Exception as exc:  # an annotation naming something undefined (or only defined inside a function)
        raise TypeError(
            f"tool {name!r}: its type hints cannot be read: {exc} (with `from __future__ import annotations`, the "
            "types a tool's hints name must be defined at module level)"
        ) from exc
    bound = _bound_keywords(function)
    fields: dict[str, Any] = {}
    context_parameter = None
    for parameter in signature.parameters.values():
        if parameter.name in bound:
            continue
        annotation = hints.get(parameter.name, parameter.annotation)
        if _is_context(parameter.name, annotation):
            context_parameter = parameter.name
            continue
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise TypeError(
                f"tool {name!r}: *{parameter.name} / **{parameter.name} cannot be described to a model; "
                "declare each parameter with a type hint"
            )
        if annotation is inspect.Parameter.empty:
            raise TypeError(
                f"tool {name!r}: parameter {parameter.name!r} has no type hint; the model needs one to know what "
                "to send (annotate it, e.g. `city: str`)"
            )
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, Field(default, description=parameter_docs.get(parameter.name)))
    try:
        model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        model.model_json_schema()
    except Exception as exc:  # a type pydantic cannot describe
        raise TypeError(f"tool {name!r}: its parameters cannot be described as JSON schema: {exc}") from exc
    return model, context_parameter


_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Returns?|Raises|Yields|Examples?|Notes?|See Also)\s*:\s*$",
    re.IGNORECASE,
)
_PARAMETER_LINE = re.compile(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAMETER = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def _parse_docstring(docstring: str) -> tuple[str, dict[str, str]]:
    """A docstring's description (whitespace normalised) and its parameter descriptions (Google or Sphinx style)."""
    description: list[str] = []
    parameters: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in docstring.splitlines():
        stripped = line.strip()
        header = _SECTION.match(stripped)
        sphinx = _SPHINX_PARAMETER.match(stripped)
        if header and not line.startswith((" ", "\t")):
            section, current = header.group(1).lower(), None
        elif sphinx:
            name, text = sphinx.group(1), sphinx.group(2)
            parameters[name], current = text, name
        elif stripped.startswith(":") and section is None:
            current = None  # another Sphinx field (:returns:, :raises:)
        elif section is None:
            if current is not None and stripped:
                parameters[current] += " " + stripped
            else:
                description.append(line)
        elif section in ("args", "arguments", "parameters", "params", "keyword args"):
            match = _PARAMETER_LINE.match(line)
            if match and len(line) - len(line.lstrip()) <= 4:
                name, text = match.group(1), match.group(2)
                parameters[name], current = text, name
            elif current is not None and stripped:
                parameters[current] += " " + stripped
    return " ".join(" ".join(description).split()), {k: " ".join(v.split()) for k, v in parameters.items()}


def _function_agent(
    function: Callable[..., Any],
    name: str,
    description: str,
    arguments_model: type[BaseModel],
    context_parameter: str | None,
) -> MiniAgent:
    """The MiniAgent that runs `function` with validated arguments and replies with its result."""
    positional_only = [
        parameter.name
        for parameter in inspect.signature(function).parameters.values()
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY
    ]
    is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(_unwrapped(function))

    async def run_function_tool(ctx: InteractionContext, **arguments: Any) -> None:
        validated = arguments_model.model_validate(plain_data(arguments))
        values = {field: getattr(validated, field) for field in arguments_model.model_fields}
        if context_parameter is not None:
            values[context_parameter] = ctx
        args = [values.pop(parameter) for parameter in positional_only if parameter in values]
        if is_async:
            result = await function(*args, **values)
        else:
            result = await asyncio.to_thread(function, *args, **values)
            if inspect.isawaitable(result):
                result = await result
        ctx.reply(_result_as_reply(result))

    run_function_tool.__name__ = name
    return miniagent(run_function_tool, alias=name, description=description, normalize_spaces_in_docstring=False)


def _result_as_reply(result: Any) -> Any:
    """A tool function's result as a reply: text and messages as they are, anything else as JSON text."""
    if isinstance(result, (str, Message, MessagePromise, MessageSequencePromise)):
        return result
    if isinstance(result, Sequence) and result and all(isinstance(item, Message) for item in result):
        return list(result)
    return pydantic_core.to_json(result, fallback=repr).decode()
