"""
The loop an LLM agent runs inside its own agent function when it has tools to run or an output type to check.

    model turn -> tool calls? -> each runs as an agent call (the calls of one turn in parallel) -> one
    ToolResultMessage per call -> model turn again ... -> an answer without tool calls (validated against the
    output type, sent back with the errors up to `output_retries` times)

Every model turn and every tool result is replied as it starts, so the reply sequence is the whole exchange in
order and streams live. The tool calls are calls made by the LLM agent's call: it owns them (they are cancelled
with it) and they are in the interaction graph under it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from miniagents.ext.llm.llm_messages import RetryPromptMessage, ToolCallRequest, ToolResultMessage
from miniagents.ext.llm.structured import ModelTurn
from miniagents.ext.llm.tools import MaxToolRoundsError, Tool, ToolArgumentsError, ToolCallError
from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.miniagents import ErrorMessage

if TYPE_CHECKING:
    from miniagents.ext.llm.llm_common import LLMAgent

__all__ = ["arun_tool_loop"]


async def arun_tool_loop(agent: LLMAgent) -> None:
    """Run model turns and tool calls until the model answers (see the module docstring)."""
    ctx = agent.ctx
    history: list[Message] = list(await ctx.messages.aresolve_messages())
    rounds = 0
    attempts = 0
    while True:
        turn = ModelTurn()
        reply = agent.turn_promise(tuple(history), turn)
        ctx.reply(reply)
        message = await reply
        history.append(message)
        calls = [] if turn.output_call is not None else list(turn.tool_calls)  # (an answer: no tools to run)
        if calls:
            rounds += 1
            if rounds > agent.max_tool_rounds:
                raise MaxToolRoundsError(
                    f"{agent.alias}: the model asked for tools again after {agent.max_tool_rounds} round(s) of tool "
                    f"calls (max_tool_rounds={agent.max_tool_rounds}); it asked for: "
                    f"{', '.join(call.name for call in calls)}. Raise max_tool_rounds, or find out why the model "
                    "does not answer (failed tool calls count as rounds too)"
                )
            results = _start_calls(agent, calls)
            ctx.reply(results)
            for result in results:
                history.append(await result)
            if any(call.name in agent.toolbox.passthrough_names for call in calls):
                return  # the caller runs those: the model cannot go on without their results
            continue
        output = agent.output
        if output is None or turn.output_error is None:
            return
        attempts += 1
        if attempts > agent.output_retries:
            raise output.exhausted_error(agent.alias, agent.model, attempts, turn.output_error)
        retry_text = output.retry_text(turn.output_error)
        if turn.output_call is not None:  # the answer came as a call of the output tool: answer that call
            retry: Message = _result_message(turn.output_call, retry_text, is_error=True)
        else:
            retry = RetryPromptMessage(text=retry_text)
        ctx.reply(retry)
        history.append(retry)


def _start_calls(agent: LLMAgent, calls: list[ToolCallRequest]) -> list[MessagePromise]:
    """
    Start the tool calls of one turn, all at once (so they run in parallel), and return one result promise per
    call that is ours to run. Unknown tools and invalid arguments get an error result without a call, or raise
    ToolCallError (before anything starts) with `raise_tool_errors`.
    """
    toolbox = agent.toolbox
    prepared: list[tuple[ToolCallRequest, Tool | None, dict[str, Any] | str]] = []
    for call in calls:
        tool = toolbox.tools.get(call.name)
        if tool is None:
            if call.name in toolbox.passthrough_names:
                continue  # returned to the caller, who runs it
            if agent.output is not None and call.name == agent.output.name:
                problem = f"{call.name} must be called on its own, once the results of the other tools have come back"
            else:
                problem = f"there is no tool named {call.name!r}; the tools are: {', '.join(toolbox.names())}"
            prepared.append((call, None, problem))
            continue
        try:
            prepared.append((call, tool, tool.validate_arguments(call.arguments)))
        except ToolArgumentsError as exc:
            prepared.append((call, tool, str(exc)))
    if agent.raise_tool_errors:
        for call, _, arguments in prepared:
            if isinstance(arguments, str):
                raise ToolCallError(f"{agent.alias}: the model's call of tool {call.name!r} failed: {arguments}")
    results: list[MessagePromise] = []
    for call, tool, arguments in prepared:
        if tool is None or isinstance(arguments, str):
            text = f"Error: {arguments}." + ("" if tool is None else " Call it again with valid arguments.")
            results.append(_result_message(call, text, is_error=True).as_promise)
        else:
            results.append(_result_promise(call, tool, tool.call(arguments), agent.raise_tool_errors))
    return results


def _result_message(call: ToolCallRequest, text: str, is_error: bool = False) -> ToolResultMessage:
    return ToolResultMessage(text=text, tool_call_id=call.id, tool_name=call.name, is_error=is_error)


def _result_promise(
    call: ToolCallRequest, tool: Tool, replies: MessageSequencePromise, raise_errors: bool
) -> MessagePromise:
    """A ToolResultMessage that streams the tool's replies (joined), and the tool's error if it fails."""

    async def result_tokens(metadata_so_far: dict[str, Any]) -> AsyncIterator[str]:
        wrote = False
        try:
            async for message_promise in replies:
                separator = "\n\n" if wrote else ""
                async for token in message_promise:
                    if separator:
                        yield separator
                        separator = ""
                    wrote = True
                    yield token
                if isinstance(await message_promise, ErrorMessage):  # an agent with errors_as_messages
                    metadata_so_far["is_error"] = True
        except Exception as exc:
            if raise_errors:
                raise
            metadata_so_far["is_error"] = True
            yield ("\n\n" if wrote else "") + f"Error: {tool.name} failed: {type(exc).__name__}: {exc}"

    return ToolResultMessage.promise(  # (the role too, so that it is known, and shown, while the result streams)
        message_token_streamer=result_tokens, role="tool", tool_call_id=call.id, tool_name=call.name, is_error=False
    )
