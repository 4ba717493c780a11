"""
The offline stand-in as a full test double (SPEC §4.3): scripted tool calls, structured output, usage, a failure after
N tokens, a delay per token, and every request recorded for assertions; tool loops run on it like on a real model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from miniagents import Message, MiniAgents
from miniagents.ext.llm import LLMResponseCache, OutputValidationError, SystemMessage, ToolResultMessage
from miniagents.ext.llm.offline import (
    OfflineMessage,
    OfflineModel,
    OfflineReply,
    OfflineRequest,
    OfflineScriptError,
    OfflineToolCall,
    create_offline_agent,
    default_reply,
)
from tests.support.llm_agent_testing import aread_replies, asingle_reply, within


async def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"18 C in {city}"


def recordings(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


class Weather(BaseModel):
    city: str
    temperature: int


# --- scripts and reply functions -------------------------------------------------------------------------------


async def test_a_script_answers_each_model_turn_in_order_and_the_tool_loop_runs_on_it() -> None:
    model = OfflineModel(
        [OfflineReply(tool_calls=[OfflineToolCall("get_weather", {"city": "Paris"})]), "It is 18 C in Paris."]
    )
    agent = create_offline_agent(model, tools=[get_weather])
    async with MiniAgents():
        messages = await within(agent.inquire("Weather in Paris?").aresolve_messages())
    assert [type(message) for message in messages] == [OfflineMessage, ToolResultMessage, OfflineMessage]
    call = messages[0].tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_1_0",
        "get_weather",
        {"city": "Paris"},
    )
    assert messages[0].stop_reason == "tool_use" and messages[2].stop_reason == "end_turn"
    assert (messages[1].text, messages[1].tool_call_id) == ("18 C in Paris", "call_1_0")
    assert messages[2].text == "It is 18 C in Paris." and model.replies_left == 0


async def test_last_request_records_the_messages_tools_output_schema_and_parameters() -> None:
    model = OfflineModel([OfflineReply(tool_calls=[OfflineToolCall("get_weather", {"city": "Oslo"})]), "Cold."])
    agent = create_offline_agent(model, tools=[get_weather], temperature=0.2)
    async with MiniAgents():
        await within(agent.inquire("Weather?", system="Be brief.", seed=7).aresolve_messages())
    first, last = model.requests
    assert first.tool_names == last.tool_names == ("get_weather",)
    assert last.tools[0]["description"] == "The current weather in a city."
    assert last.tools[0]["parameters"]["required"] == ["city"]
    assert (last.parameters, last.system, last.model, last.stream) == (
        {"temperature": 0.2, "seed": 7},
        "Be brief.",
        "offline-stand-in",
        True,
    )
    assert [type(message) for message in last.messages] == [Message, Message, OfflineMessage, ToolResultMessage]
    assert last.messages[0].role == "system" and str(last.messages[0]) == "Be brief."
    assert last.output_schema is None and model.last_request is last


async def test_a_reply_function_taking_the_request_sees_the_output_schema() -> None:
    seen: list[OfflineRequest] = []

    def answer(messages: tuple[Message, ...], request: OfflineRequest) -> OfflineReply:
        seen.append(request)
        return OfflineReply(output={"city": "Oslo", "temperature": -3})

    agent = create_offline_agent(answer, output_type=Weather)
    async with MiniAgents():
        (message,) = await within(agent.inquire("Weather in Oslo?").aresolve_messages())
    assert message.output == Weather(city="Oslo", temperature=-3)  # type: ignore[attr-defined]
    assert seen[0].output_schema is not None and seen[0].output_schema["required"] == ["city", "temperature"]


async def test_an_async_reply_function_works_like_a_sync_one() -> None:
    async def answer(messages: tuple[Message, ...]) -> str:
        await asyncio.sleep(0)
        return f"{len(messages)} message(s)"

    async with MiniAgents():
        _, message = await asingle_reply(create_offline_agent(answer).inquire(["a", "b"]))
    assert message.text == "2 message(s)"


async def test_a_script_that_runs_out_names_the_request() -> None:
    model = OfflineModel(["only one"])
    agent = create_offline_agent(model)
    async with MiniAgents():
        await within(agent.inquire("first").aresolve_messages())
        chunks, error = await within(aread_replies(agent.inquire("second question")))
    assert chunks == [[]] and isinstance(error, OfflineScriptError)
    assert str(error) == (
        "the offline model's script has no reply left for request 2 (it has 1 replies); the request's last message: "
        "'second question'"
    )


async def test_a_reply_function_returning_something_else_is_a_clear_error() -> None:
    agent = create_offline_agent(lambda messages: 42)
    async with MiniAgents():
        _, error = await within(aread_replies(agent.inquire("hi")))
    assert isinstance(error, OfflineScriptError) and "returned a int (42); return a str or an OfflineReply" in str(
        error
    )


@pytest.mark.parametrize(
    ("make", "error_type", "expected"),
    [
        (lambda: OfflineModel("just text"), TypeError, "a script is a list of replies"),
        (lambda: OfflineModel([1]), TypeError, "script[0] is a int"),
        (lambda: OfflineReply(fail_after_tokens=-1), ValueError, "fail_after_tokens must be >= 0"),
        (lambda: OfflineReply(error=RuntimeError("x")), ValueError, "needs `fail_after_tokens`"),
        (lambda: OfflineReply(tool_calls=[("f", {})]), TypeError, "must be OfflineToolCall objects"),  # type: ignore[list-item]
        (lambda: OfflineReply(token_delay=-0.5), ValueError, "token_delay must be >= 0"),
    ],
    ids=["text-as-script", "int-in-script", "negative-failure", "error-without-count", "tuple-call", "negative-delay"],
)
def test_a_bad_script_is_refused_when_it_is_made(
    make: Callable[[], object], error_type: type[Exception], expected: str
) -> None:
    with pytest.raises(error_type, match=expected.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_last_request_before_any_request_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="no request yet"):
        OfflineModel().last_request  # noqa: B018


# --- usage, failures, pace -------------------------------------------------------------------------------------


async def test_usage_figures_are_scripted_or_counted_in_words() -> None:
    model = OfflineModel([OfflineReply(text="two words", usage={"input_tokens": 120, "output_tokens": 7}), "a b c"])
    agent = create_offline_agent(model)
    async with MiniAgents():
        _, scripted = await asingle_reply(agent.inquire("hi"))
        _, counted = await asingle_reply(agent.inquire("one two three four"))
    assert (scripted.usage.input_tokens, scripted.usage.output_tokens) == (120, 7)
    assert (counted.usage.input_tokens, counted.usage.output_tokens) == (4, 3)


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_a_failure_after_n_tokens_streams_them_then_raises(stream: bool) -> None:
    error = ConnectionResetError("peer went away")
    model = OfflineModel([OfflineReply(text="one two three four", fail_after_tokens=2, error=error)])
    async with MiniAgents():
        chunks, raised = await within(aread_replies(create_offline_agent(model).inquire("hi", stream=stream)))
    assert raised is error
    assert chunks == ([["one", " two"]] if stream else [[]])


async def test_a_failure_without_an_error_is_a_scripted_connection_error() -> None:
    model = OfflineModel([OfflineReply(text="a b", fail_after_tokens=0)])
    async with MiniAgents():
        chunks, raised = await within(aread_replies(create_offline_agent(model).inquire("hi")))
    assert chunks == [[]] and isinstance(raised, ConnectionError) and "after 0 token(s)" in str(raised)


async def test_a_delay_per_token_holds_the_reply_back_while_other_agents_finish() -> None:
    slow = create_offline_agent(OfflineModel([OfflineReply(text="slow reply", token_delay=3600)]), alias="SLOW")
    fast = create_offline_agent(OfflineModel(["fast reply"]), alias="FAST")
    async with MiniAgents():
        slow_call = slow.initiate_inquiry().send_message("hi")
        (slow_promise,) = await within(slow_call.reply_sequence())
        (fast_message,) = await within(fast.inquire("hi").aresolve_messages())
        assert fast_message.text == "fast reply"
        assert slow_promise.snapshot() == ((), False)  # not one token of the slow reply yet
        slow_call.cancel()


# --- structured output and caching on the double ---------------------------------------------------------------


async def test_structured_output_is_validated_and_retried_on_the_double() -> None:
    model = OfflineModel(
        [OfflineReply(output={"city": "Oslo"}), OfflineReply(output=Weather(city="Oslo", temperature=-3))]
    )
    agent = create_offline_agent(model, output_type=Weather)
    async with MiniAgents():
        invalid, retry, valid = await within(agent.inquire("Weather?").aresolve_messages())
    assert type(invalid) is OfflineMessage and "temperature: Field required" in str(retry)
    assert valid.output == Weather(city="Oslo", temperature=-3)  # type: ignore[attr-defined]
    assert str(model.last_request.messages[-1]) == str(retry)


async def test_invalid_json_arguments_from_the_model_reach_it_as_an_error_result() -> None:
    model = OfflineModel([OfflineReply(tool_calls=[OfflineToolCall("get_weather", "{city: Paris")]), "Sorry."])
    async with MiniAgents():
        messages = await within(create_offline_agent(model, tools=[get_weather]).inquire("hi").aresolve_messages())
    assert messages[1].is_error and "the arguments of get_weather are not valid JSON" in str(messages[1])


async def test_a_whole_tool_loop_replays_from_the_cache_with_the_same_tool_results(tmp_path: Path) -> None:
    script = [OfflineReply(tool_calls=[OfflineToolCall("get_weather", {"city": "Rome"})]), "Warm in Rome."]
    recorder = create_offline_agent(
        OfflineModel(script), tools=[get_weather], response_cache=LLMResponseCache(tmp_path)
    )
    replaying_model = OfflineModel([])  # any request reaching it fails: everything must come from the recordings
    replayer = create_offline_agent(
        replaying_model, tools=[get_weather], response_cache=LLMResponseCache(tmp_path, mode="replay")
    )
    async with MiniAgents():
        recorded = await within(recorder.inquire("Rome?").aresolve_messages())
        replayed = await within(replayer.inquire("Rome?").aresolve_messages())
    assert replayed == recorded and replaying_model.requests == []
    assert len(recordings(tmp_path)) == 2


# --- the default reply, and any text ---------------------------------------------------------------------------


def test_the_default_reply_is_labelled_as_not_a_real_model() -> None:
    assert default_reply((SystemMessage("rules"), Message("hi"))).startswith(
        "[offline stand-in LLM, not a real model] I received 2 message(s)."
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60), fail_after=st.none() | st.integers(min_value=0, max_value=12))
def test_any_scripted_text_streams_back_exactly_up_to_the_failure(text: str, fail_after: int | None) -> None:
    model = OfflineModel([OfflineReply(text=text, fail_after_tokens=fail_after)])

    async def run() -> tuple[list[list[str]], BaseException | None]:
        async with MiniAgents():
            return await within(aread_replies(create_offline_agent(model).inquire("hi")))

    chunks, error = asyncio.run(run())
    streamed = "".join(chunks[0])
    if fail_after is None:
        assert error is None and streamed == text
    else:
        assert isinstance(error, ConnectionError) and text.startswith(streamed)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["city", "temperature", "x"]), inner),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None)
@given(answer=JSON_VALUES)
def test_any_json_answer_either_validates_or_fails_naming_fields(answer: object) -> None:
    model = OfflineModel([OfflineReply(output=json.dumps(answer))])
    agent = create_offline_agent(model, output_type=Weather, output_retries=0)

    async def run() -> tuple[list[list[str]], BaseException | None]:
        async with MiniAgents():
            return await within(aread_replies(agent.inquire("hi")))

    chunks, error = asyncio.run(run())
    try:
        expected: Weather | None = Weather.model_validate(answer)
    except ValueError:
        expected = None
    if expected is not None:
        assert error is None and len(chunks) == 1
    else:
        assert isinstance(error, OutputValidationError) and "does not validate as Weather" in str(error)
        assert error.fields and len(chunks) == 1
