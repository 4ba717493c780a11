"""
What a tool looks like to the model (`Tool`, SPEC §4.1): the JSON schema of a function's signature and its docstring,
what is left out of it (the context, bound keywords), how a call runs, and the clear errors for what cannot be a tool.
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from miniagents import InteractionContext, MiniAgents, miniagent
from miniagents.ext.llm import Tool
from miniagents.ext.llm.offline import OfflineModel, OfflineReply, OfflineToolCall, create_offline_agent
from miniagents.ext.llm.openai import create_openai_agent
from miniagents.ext.llm.tools import ToolArgumentsError
from tests.support.llm_agent_testing import within


async def search(query: str, limit: int = 5, language: Literal["en", "fr"] = "en") -> list[str]:
    """
    Search the web.

    Results come ranked.

    Args:
        query: What to search for.
        limit: How many results
            to return at most.
        language: The language of the results.

    Returns:
        The titles of the results.
    """
    return [f"{query} #{n}" for n in range(limit)]


async def arun_tool(tool: Any, arguments: dict[str, Any], **agent_kwargs: Any) -> list[Any]:
    """One model turn calling `tool` with `arguments`, then an answer; returns the reply sequence's messages."""
    name = tool.name if isinstance(tool, Tool) else getattr(tool, "alias", None) or tool.__name__
    model = OfflineModel([OfflineReply(tool_calls=[OfflineToolCall(name, arguments)]), "done"])
    async with MiniAgents():
        agent = create_offline_agent(model, tools=[tool], **agent_kwargs)
        return list(await within(agent.inquire("go").aresolve_messages()))


# --- schemas ---------------------------------------------------------------------------------------------------


def test_a_functions_schema_comes_from_its_type_hints_and_its_docstring() -> None:
    tool = Tool(search)
    assert (tool.name, tool.description) == ("search", "Search the web. Results come ranked.")
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to search for."},
            "limit": {"type": "integer", "default": 5, "description": "How many results to return at most."},
            "language": {
                "type": "string",
                "enum": ["en", "fr"],
                "default": "en",
                "description": "The language of the results.",
            },
        },
        "required": ["query"],
        "additionalProperties": False,
    }
    assert tool.strict is False  # optional parameters: OpenAI's strict mode needs every one required


def test_sphinx_style_parameter_descriptions_are_read_too() -> None:
    def convert(amount: float, currency: str) -> str:
        """Convert money.

        :param amount: How much.
        :param str currency: Into which currency.
        :returns: the converted amount
        """
        return f"{amount} {currency}"

    tool = Tool(convert)
    assert tool.description == "Convert money."
    assert [tool.parameters["properties"][name]["description"] for name in ("amount", "currency")] == [
        "How much.",
        "Into which currency.",
    ]
    assert tool.strict is True


def test_the_context_and_bound_keywords_are_not_part_of_the_schema() -> None:
    async def lookup(ctx: InteractionContext, table: str, key: str, *, database: object) -> str:
        """Look a key up."""
        return key

    async def lookup_with_untyped_ctx(ctx, key: str) -> str:  # type: ignore[no-untyped-def]
        """Look a key up."""
        return key

    bound = Tool(functools.partial(lookup, database=object()), name="lookup")
    assert list(bound.parameters["properties"]) == ["table", "key"]
    assert list(Tool(lookup_with_untyped_ctx).parameters["properties"]) == ["key"]


class Address(BaseModel):
    street: str
    city: str


def test_a_pydantic_model_parameter_is_described_by_its_schema() -> None:
    def ship(address: Address, express: bool) -> str:
        """Ship a parcel."""
        return address.city

    tool = Tool(ship)
    assert tool.strict is True
    address = tool.parameters["$defs"]["Address"]
    assert address["additionalProperties"] is False and address["required"] == ["street", "city"]


def test_an_agent_is_a_tool_taking_one_input_string_by_default() -> None:
    @miniagent
    async def summarizer(ctx: InteractionContext) -> None:
        """Summarizes {AGENT_ALIAS}'s input."""

    tool = Tool(summarizer)
    assert (tool.name, tool.description) == ("SUMMARIZER", "Summarizes SUMMARIZER's input.")
    assert tool.parameters["required"] == ["input"] and tool.strict is True


# --- calls ---------------------------------------------------------------------------------------------------


async def test_a_function_is_called_with_validated_python_values_and_its_result_is_json() -> None:
    messages = await arun_tool(search, {"query": "otters", "limit": 2})
    assert json.loads(str(messages[1])) == ["otters #0", "otters #1"]


async def test_a_sync_function_runs_in_a_worker_thread() -> None:
    threads: list[threading.Thread] = []

    def where(label: str) -> str:
        """Where this runs."""
        threads.append(threading.current_thread())
        return label

    messages = await arun_tool(where, {"label": "here"})
    assert str(messages[1]) == "here" and threads[0] is not threading.main_thread()


@pytest.mark.parametrize(
    ("returned", "text"),
    [(None, "null"), ({"a": [1, 2]}, '{"a":[1,2]}'), (3.5, "3.5"), ("plain text", "plain text")],
    ids=["none", "dict", "float", "str"],
)
async def test_a_result_that_is_not_text_is_sent_as_json(returned: Any, text: str) -> None:
    def give() -> Any:
        """Give the value."""
        return returned

    messages = await arun_tool(give, {})
    assert str(messages[1]) == text


async def test_a_tool_gets_its_call_context_and_its_bound_keywords() -> None:
    @miniagent
    async def echo(ctx: InteractionContext) -> None:
        ctx.reply(ctx.messages)

    async def ask(ctx: InteractionContext, question: str, *, prefix: str) -> Any:
        """Ask the echo agent."""
        return echo.inquire(f"{prefix}{question}")  # a call made by the tool's own call

    messages = await arun_tool(Tool(functools.partial(ask, prefix="Q: "), name="ask"), {"question": "why?"})
    assert str(messages[1]) == "Q: why?"


async def test_positional_only_parameters_are_passed_positionally() -> None:
    def power(base: int, exponent: int, /) -> int:
        """base ** exponent."""
        return base**exponent

    messages = await arun_tool(power, {"base": 2, "exponent": 10})
    assert str(messages[1]) == "1024"


async def test_an_agent_with_an_arguments_model_gets_them_as_its_kwargs() -> None:
    class Order(BaseModel):
        item: str
        quantity: int = 1

    @miniagent
    async def shop(ctx: InteractionContext, item: str, quantity: int) -> None:
        """Orders things."""
        ctx.reply(f"{quantity} x {item}")

    messages = await arun_tool(Tool(shop, arguments=Order), {"item": "tea"})
    assert str(messages[1]) == "1 x tea"


# --- what cannot be a tool ---------------------------------------------------------------------------------------


def untyped(city):  # type: ignore[no-untyped-def]
    """No hints."""
    return city


def star_args(*cities: str) -> str:
    """Variadic."""
    return ""


def reserved(start_asap: bool) -> str:
    """Uses a reserved name."""
    return ""


def locally_typed() -> Any:
    class Local(BaseModel):
        x: int

    def use(value: Local) -> int:
        """Uses a class defined in a function."""
        return value.x

    return use


@pytest.mark.parametrize(
    ("make", "error_type", "expected"),
    [
        (lambda: Tool(untyped), TypeError, "tool 'untyped': parameter 'city' has no type hint"),
        (lambda: Tool(star_args), TypeError, "tool 'star_args': *cities / **cities cannot be described to a model"),
        (lambda: Tool(lambda city: city), ValueError, "give the tool"),
        (lambda: Tool(search, name="web search"), ValueError, "tool name 'web search' is not accepted"),
        (lambda: Tool(reserved), ValueError, "the parameter name 'start_asap' is reserved"),
        (lambda: Tool(locally_typed()), TypeError, "name 'Local' is not defined (with `from __future__ import"),
        (lambda: Tool(42), TypeError, "a tool must be a MiniAgent or a function, got int"),  # type: ignore[arg-type]
        (lambda: Tool(miniagent(search), arguments=dict), TypeError, "`arguments` must be a pydantic model class"),  # type: ignore[arg-type]
    ],
    ids=["no-hint", "star-args", "lambda", "bad-name", "reserved-name", "local-type", "int", "arguments-not-a-model"],
)
def test_what_cannot_be_a_tool_is_refused_with_a_clear_error(
    make: Any, error_type: type[Exception], expected: str
) -> None:
    with pytest.raises(error_type) as raised:
        make()
    assert expected in str(raised.value)


async def _not_used(city: str) -> str:
    """Unused."""
    return city


@pytest.mark.parametrize(
    ("tools", "error_type", "expected"),
    [
        ([_not_used, 42], TypeError, "WEATHER: tools[1] is a int (42)"),
        ("get_weather", TypeError, "WEATHER: `tools` must be a list of tools, got str"),
        ([_not_used, Tool(_not_used)], ValueError, "WEATHER: two tools are named '_not_used'"),
    ],
    ids=["int", "str", "duplicate"],
)
def test_bad_tools_are_refused_when_the_agent_is_created(
    tools: Any, error_type: type[Exception], expected: str
) -> None:
    with pytest.raises(error_type) as raised:
        create_openai_agent(alias="WEATHER", tools=tools)
    assert str(raised.value).startswith(expected)


@pytest.mark.parametrize(
    ("option", "error_type", "expected"),
    [
        ({"max_tool_rounds": -1}, ValueError, "WEATHER: max_tool_rounds must be a whole number >= 0, got -1"),
        ({"output_retries": 1.5}, ValueError, "WEATHER: output_retries must be a whole number >= 0, got 1.5"),
        ({"raise_tool_errors": "yes"}, TypeError, "WEATHER: raise_tool_errors must be True or False, got 'yes'"),
    ],
)
def test_bad_loop_options_are_refused_when_the_agent_is_created(
    option: dict[str, Any], error_type: type[Exception], expected: str
) -> None:
    with pytest.raises(error_type) as raised:
        create_offline_agent(alias="WEATHER", **option)
    assert str(raised.value) == expected


async def test_bad_tools_given_per_call_fail_that_call() -> None:
    async with MiniAgents():
        agent = create_offline_agent(alias="WEATHER")
        with pytest.raises(TypeError, match=r"WEATHER: tools\[0\] is a int"):
            await within(agent.inquire("hi", tools=[42]).aresolve_messages())


# --- any arguments ---------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@given(arguments=st.text(max_size=40) | JSON_VALUES.map(json.dumps))
def test_any_arguments_text_either_validates_or_is_refused_with_a_tool_arguments_error(arguments: str) -> None:
    tool = Tool(search)
    try:
        validated = tool.validate_arguments(arguments)
    except ToolArgumentsError as error:
        assert str(error).startswith(("the arguments of search", "invalid arguments for search: "))
    else:
        assert isinstance(validated, dict) and isinstance(validated["query"], str)
