"""
Chat histories: where a conversation is recorded and read back from.

A `ChatHistory` stores messages in order (`alog_message`) and gives them back
(`aload_chat_history`). Its `logging_agent` records whatever it is sent and replies with the same
messages, so it can sit in a chain of agents without holding the stream up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from functools import cached_property

from miniagents.messages import Message
from miniagents.miniagent_typing import MessageType
from miniagents.miniagents import InteractionContext, MessageSequence, MiniAgent, miniagent

__all__ = ["ChatHistory", "InMemoryChatHistory"]


class ChatHistory(ABC):
    """A conversation store: append messages in order, load them all back."""

    @abstractmethod
    async def alog_message(self, message: Message) -> None:
        """Append one (resolved) message to the history."""

    @abstractmethod
    async def aload_chat_history(self) -> tuple[Message, ...]:
        """Every message of the history, oldest first."""

    async def alog_messages(self, messages: MessageType) -> tuple[Message, ...]:
        """
        Append any MessageType to the history, message by message, in order; return the messages.

        Each message is appended as soon as it is resolved, so the ones before an error are kept;
        the error (from a failed message promise, say) is then raised.
        """
        logged = []
        async for message_promise in MessageSequence.turn_into_sequence_promise(messages):
            message = await message_promise
            await self.alog_message(message)
            logged.append(message)
        return tuple(logged)

    @cached_property
    def logging_agent(self) -> MiniAgent:
        """
        An agent that records the messages it receives and replies with the very same messages.

        It replies at once (tokens keep streaming through it) and logs each message when it is
        complete; its call finishes only when everything it received is in the history.
        """
        return miniagent(
            self._alogging_agent,
            alias=f"{type(self).__name__.upper()}_LOGGING_AGENT",
            description="Records the messages it receives in a chat history and replies with them.",
        )

    async def _alogging_agent(self, ctx: InteractionContext) -> None:
        ctx.reply(ctx.messages)
        await self.alog_messages(ctx.messages)


class InMemoryChatHistory(ChatHistory):
    """A chat history kept in a list in memory (lost when the process ends)."""

    def __init__(self, messages: Iterable[Message] = ()) -> None:
        self._messages: list[Message] = list(messages)

    async def alog_message(self, message: Message) -> None:
        """Append one message to the in-memory list."""
        self._messages.append(message)

    async def aload_chat_history(self) -> tuple[Message, ...]:
        """Every message logged so far, oldest first."""
        return tuple(self._messages)
