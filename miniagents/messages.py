"""Messages: immutable, content-addressed, and promised token by token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from miniagents.promising.ext.frozen import Frozen
from miniagents.promising.promising import PromisingContext, StreamedPromise
from miniagents.promising.sentinels import DEFAULT, NO_VALUE, Sentinel
from miniagents.promising.sequence import acollect_pieces

MessageTokenStreamer = Callable[[dict[str, Any]], AsyncIterator[str]]


class Message(Frozen):
    """
    An immutable message: `Message("text", **metadata)` or `Message(text=..., **metadata)`.

    Nested messages are serialized git-style, by reference: a field holding a Message becomes
    `<field>__hash_key`, a tuple of Messages `<field>__hash_keys`; `hash_key` is computed over that.
    """

    __slots__ = ("_as_promise_cache", "_persisted")

    text: str | None = None
    text_template: str | None = None

    def __init__(self, text: str | None = None, /, **metadata: Any) -> None:
        if text is not None:
            if "text" in metadata:
                raise TypeError("text was given both positionally and as a keyword")
            metadata["text"] = text
        super().__init__(**metadata)

    def _as_string(self) -> str:
        if self.text is not None:
            return self.text
        if self.text_template is not None:
            return self.text_template.format(**dict(self.frozen_fields_and_values()))
        return self.full_json

    def serialize(self) -> dict[str, Any]:
        """Plain dict of this message with nested messages replaced by their hash keys."""
        return _externalize_fields(self)

    def sub_messages(self) -> Iterator[Message]:
        """Every nested message, depth-first, children before their parents."""
        for name, value in self.frozen_fields_and_values():
            if value is self:
                raise ValueError(f"field {name!r} holds the message itself: a reference cycle")
            yield from _nested_messages(value)

    @classmethod
    def promise(
        cls,
        start_asap: bool | Sentinel = DEFAULT,
        message_token_streamer: MessageTokenStreamer | None = None,
        **preliminary_metadata: Any,
    ) -> MessagePromise:
        """
        A streaming MessagePromise of this class when `message_token_streamer` is given; otherwise an
        already resolved promise of `cls(**preliminary_metadata)`.
        """
        if message_token_streamer is None:
            return cls(**preliminary_metadata).as_promise
        return MessagePromise(
            start_asap=start_asap,
            message_token_streamer=message_token_streamer,
            message_class=cls,
            **preliminary_metadata,
        )

    @property
    def as_promise(self) -> MessagePromise:
        """An already resolved MessagePromise of this very message (created once, then cached)."""
        try:
            promise = self._as_promise_cache
            if promise.context is PromisingContext.get_current_or_none():
                return promise
        except AttributeError:
            pass
        promise = MessagePromise(prefill_message=self)  # resolved in (and observed by) the active context
        object.__setattr__(self, "_as_promise_cache", promise)
        return promise

    def mark_persisted(self, scope: object) -> bool:
        """
        Record that this very instance was handed to the persistence handlers of `scope` (a context's
        token); returns False if it already was. MiniAgents persists each instance once per context.
        """
        scopes: tuple[object, ...] = getattr(self, "_persisted", ())
        if scope in scopes:
            return False
        object.__setattr__(self, "_persisted", (*scopes, scope))
        return True


def _externalize_fields(model: Frozen) -> dict[str, Any]:
    serialized: dict[str, Any] = {}
    extra = model.__pydantic_extra__
    for name, value in (*model.__dict__.items(), *extra.items()) if extra else model.__dict__.items():
        if type(value) in _JSON_SCALARS:
            if name[0] != "_":
                serialized[name] = value
        elif name[0] == "_":  # set by hand on the instance: not a field
            continue
        elif isinstance(value, Message):
            if value is model:
                raise ValueError(f"field {name!r} holds the message itself: a reference cycle cannot be hashed")
            serialized[f"{name}__hash_key"] = value.hash_key
        elif type(value) is tuple and value and all(isinstance(item, Message) for item in value):
            serialized[f"{name}__hash_keys"] = [item.hash_key for item in value]
        else:
            serialized[name] = _externalize_value(value)
    return serialized


_JSON_SCALARS = frozenset((str, int, float, bool, type(None)))


def _externalize_value(value: Any) -> Any:
    value_type = type(value)
    if value_type in _JSON_SCALARS:
        return value
    if value_type is tuple:
        return [item if type(item) in _JSON_SCALARS else _externalize_value(item) for item in value]
    if isinstance(value, Message):  # a message inside a mixed tuple
        return {"__hash_key": value.hash_key}
    if isinstance(value, Frozen):
        return _externalize_fields(value)
    return value


def _nested_messages(value: Any) -> Iterator[Message]:
    if isinstance(value, Message):
        yield from value.sub_messages()
        yield value
    elif isinstance(value, Frozen):
        for _, item in value.frozen_fields_and_values():
            yield from _nested_messages(item)
    elif type(value) is tuple:
        for item in value:
            yield from _nested_messages(item)


class MessagePromise(StreamedPromise[str, Message]):
    """
    A promise of a Message whose text can be consumed token by token: `async for token in promise`.

    `preliminary_metadata` is readable before any token arrives; `await promise` gives the Message.
    """

    __slots__ = ("_message_class", "_metadata_so_far", "_preliminary_metadata", "_token_streamer")

    def __init__(
        self,
        start_asap: bool | Sentinel = DEFAULT,
        message_token_streamer: MessageTokenStreamer | None = None,
        prefill_message: Message | None = None,
        message_class: type[Message] = Message,
        **preliminary_metadata: Any,
    ) -> None:
        self._message_class = message_class
        self._token_streamer = message_token_streamer
        if prefill_message is not None:
            self._preliminary_metadata: Frozen | None = None  # derived from the message when asked
            self._metadata_so_far: dict[str, Any] = {}
            if prefill_message.text is not None:
                super().__init__(prefill_pieces=(prefill_message.text,), prefill_result=prefill_message)
            else:  # its text (e.g. a JSON rendering) is only computed if somebody iterates the tokens
                super().__init__(prefill_result=prefill_message, start_asap=False)  # `_streamer` yields it
            return
        if message_token_streamer is None:
            raise TypeError("MessagePromise needs either prefill_message or message_token_streamer")
        self._preliminary_metadata = Frozen(**preliminary_metadata)
        self._metadata_so_far = dict(self._preliminary_metadata.frozen_fields_and_values())
        super().__init__(start_asap=start_asap)

    @property
    def preliminary_metadata(self) -> Frozen:
        """The metadata known before streaming (role, model, agent alias...), as a Frozen."""
        metadata = self._preliminary_metadata
        if metadata is None:
            message = self._result
            fields = {k: v for k, v in message.frozen_fields_and_values() if k not in ("text", "text_template")}
            metadata = self._preliminary_metadata = Frozen(**fields)
        return metadata

    async def _streamer(self) -> AsyncIterator[str]:
        if self._token_streamer is None:  # a prefilled message without `text`
            yield str(self._result)
            return
        tokens = self._token_streamer(self._metadata_so_far)
        if not hasattr(tokens, "__aiter__"):
            if hasattr(tokens, "close"):
                tokens.close()  # e.g. a coroutine: close it so no "never awaited" warning follows
            raise TypeError(
                "message_token_streamer must be an async generator function that yields str tokens "
                f"(`async def streamer(metadata_so_far): yield ...`); it returned {type(tokens).__name__}"
            )
        async for token in tokens:
            if type(token) is not str and not isinstance(token, str):
                raise TypeError(
                    f"message_token_streamer must yield str tokens, got {type(token).__name__}: {token!r:.60}"
                )
            yield token

    async def _resolver(self) -> Message:
        if not self._state.done:
            async for _ in self:
                pass
        pieces = self._state.pieces
        try:
            text = "".join(pieces)
        except TypeError:
            for piece in pieces:
                if isinstance(piece, BaseException):
                    raise piece from None
            raise
        return self._message_class(**{**self._metadata_so_far, "text": text})  # the streamed tokens are the text

    def __repr__(self) -> str:
        if self._result is not NO_VALUE:
            return f"<MessagePromise of {self._result!r}>"
        return f"<MessagePromise {self._preliminary_metadata!r} {'streamed' if self._state.done else 'streaming'}>"


class MessageSequencePromise(StreamedPromise[MessagePromise, tuple[MessagePromise, ...]]):
    """A promise of a sequence of MessagePromises: `async for message_promise in sequence`."""

    __slots__ = ()

    async def _resolver(self) -> tuple[MessagePromise, ...]:
        return await acollect_pieces(self)

    async def aresolve_messages(self) -> tuple[Message, ...]:
        """Every message of the sequence, resolved; raises the first error met."""
        return tuple([await message_promise async for message_promise in self])

    def as_single_promise(
        self,
        delimiter: str | None = "\n\n",
        strip_leading_newlines: bool = False,
        reference_original_messages: bool = True,
        start_asap: bool | Sentinel = DEFAULT,
        message_class: type[Message] = Message,
        **message_metadata: Any,
    ) -> MessagePromise:
        """One MessagePromise that streams the tokens of all messages, `delimiter` between them."""

        async def token_streamer(metadata_so_far: dict[str, Any]) -> AsyncIterator[str]:
            originals = []
            first_message = True
            async for message_promise in self:
                if not first_message and delimiter:
                    yield delimiter
                first_message = False
                leading = strip_leading_newlines
                async for token in message_promise:
                    if leading:
                        token = token.lstrip("\n")
                        if not token:
                            continue
                        leading = False
                    yield token
                if reference_original_messages:
                    originals.append(await message_promise)
            if reference_original_messages:
                metadata_so_far["original_messages"] = tuple(originals)

        return message_class.promise(start_asap=start_asap, message_token_streamer=token_streamer, **message_metadata)
