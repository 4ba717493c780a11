"""
MessageStreamWidget: a reply (a message promise or a sequence of them) rendered live, token by token.

It is what an agent's reply shows as when it is the value of a cell (see `activation`). The cell
returns at once; tasks owned by the widget follow the sequence and each of its messages.
"""

from __future__ import annotations

import asyncio
from typing import Any

from miniagents.messages import Message, MessagePromise, MessageSequencePromise
from miniagents.miniagent_typing import MessageType
from miniagents.miniagents import MessageSequence
from miniagents.notebook import assets
from miniagents.notebook.live_widget import IdList, LiveWidget
from miniagents.notebook.message_record import MessageRecord, apieces
from miniagents.notebook.rendering import entry_html, static_html


class MessageStreamWidget(LiveWidget):
    """
    Live view of any MessageType: one block per message, headed by sender / role / model, text growing
    as tokens arrive and rendered as (sanitised) markdown once the message is complete. An error in the
    sequence shows as a failed block at its position.

    `sender` labels messages whose metadata names no agent (e.g. the alias of the agent that replied).
    """

    _esm = assets.widget_module("stream.js")

    def __init__(self, messages: MessageType, sender: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sender = sender
        self._order = IdList("order")
        self._sequence_done = False
        self._done = asyncio.Event()
        if isinstance(messages, (MessagePromise, Message)):
            self._add(messages if isinstance(messages, MessagePromise) else messages.as_promise)
            self._sequence_done = True
        else:
            sequence = MessageSequence.turn_into_sequence_promise(messages)
            primed = self._prime(sequence)
            if not self._sequence_done:
                self._start(self._afeed(sequence, skip=primed))
        self._check_done()
        self._flush()

    # ------------------------------------------------------------ feeding

    def _prime(self, sequence: MessageSequencePromise) -> int:
        """Show what the sequence already holds; returns how many pieces that was."""
        pieces, self._sequence_done = sequence.snapshot()  # (a lazy sequence shows nothing and is not started)
        for piece in pieces:
            self._add(piece)
        return len(pieces)

    async def _afeed(self, sequence: MessageSequencePromise, skip: int) -> None:
        try:
            async for piece in apieces(sequence):
                if skip:
                    skip -= 1
                else:
                    self._add(piece)
        finally:
            self._sequence_done = True
            self._check_done()

    def _add(self, piece: MessagePromise | BaseException) -> None:
        if isinstance(piece, MessagePromise):
            record, new = self._record_for(piece, self._sender)
            if not new:
                return
        else:
            record = self._error_record(piece)
        self._order.ids.append(record.id)
        self._mark_changed(self._order)

    def _mark_changed(self, entity: Any) -> None:
        super()._mark_changed(entity)
        if isinstance(entity, MessageRecord) and not entity.is_streaming:
            self._check_done()

    def _check_done(self) -> None:
        if not self._done.is_set() and not self._is_live():
            self._done.set()
            self._flush()

    # ------------------------------------------------------------ reading

    def _is_live(self) -> bool:
        return not self._sequence_done or super()._is_live()

    def _snapshot(self) -> dict[str, Any]:
        return {**super()._snapshot(), "order": list(self._order.ids)}

    @property
    def done(self) -> bool:
        """Whether the sequence ended and every message in it finished (or failed)."""
        return self._done.is_set()

    async def adone(self) -> MessageStreamWidget:
        """Wait until the stream is complete; returns the widget (its static forms are then final)."""
        await self._done.wait()
        return self

    @property
    def text(self) -> str:
        """The text of all the messages so far, separated by blank lines."""
        return "\n\n".join(entry.text for entry in self._entries(self._order.ids) if isinstance(entry, MessageRecord))

    def to_text(self) -> str:
        blocks = [entry.to_text() for entry in self._entries(self._order.ids)]
        if not blocks:
            return "(no messages)" if self.done else "(waiting for messages...)"
        return "\n\n".join(blocks)

    def to_html(self) -> str:
        blocks = "".join(entry_html(entry) for entry in self._entries(self._order.ids))
        return static_html("miniagents-stream", blocks, status="done" if self.done else "streaming")

    def __repr__(self) -> str:
        count = sum(isinstance(entry, MessageRecord) for entry in self._entries(self._order.ids))
        return f"<MessageStreamWidget: {count} message(s), {'done' if self.done else 'streaming'}>"


def show_reply(messages: MessageType, sender: str | None = None) -> MessageStreamWidget:
    """
    Display `messages` (a reply, any MessageType) in the current cell as a MessageStreamWidget and return it.
    The output is kept holding the widget's static form, so a saved notebook shows the final text.
    """
    widget = MessageStreamWidget(messages, sender=sender)
    widget.show()
    return widget
