"""Messages: immutable, content-addressed, and promised token by token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from pydantic import ValidationInfo, field_validator

from miniagents.promising.ext.frozen import (
    LONG_HASH_KEY_LENGTH,
    Frozen,
    freeze_fields,
    hash_key_length,
    reference_key,
    referenced_models_below,
    set_model_state,
)
from miniagents.promising.ownership import current_owner_var
from miniagents.promising.promising import StreamedPromise
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

    nested_by_hash_key = True  # the text of a model holding a message references it by its hash key

    text: str | None = None
    text_template: str | None = None

    def __init__(self, text: str | None = None, /, **metadata: Any) -> None:
        if text is not None:
            if "text" in metadata:
                raise TypeError("text was given both positionally and as a keyword")
            metadata["text"] = text
        elif len(metadata) == 1 and type(self) is Message:
            text = metadata.get("text")
        if type(self) is Message:
            if len(metadata) == 1 and type(text) is str and text.isascii():
                _set_text_only(self, text)
                _AS_PROMISE_CACHE.__set__(self, None)  # (as_promise then finds no promise without an error)
                return
            if _set_frozen_fields(self, metadata):
                return
        super().__init__(**metadata)

    def _as_string(self) -> str:
        if self.text is not None:
            return self.text
        if self.text_template is not None:
            return self.text_template.format(**dict(self.frozen_fields_and_values()))
        return self.full_json

    @field_validator("text", "text_template", mode="before")
    @classmethod
    def _text_is_str(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or isinstance(value, str):
            return value
        # pydantic alone would decode bytes into text; a message's text is only ever given as a str
        raise ValueError(f"field {info.field_name!r} must be a string (str) or None, got {type(value).__name__}")

    def serialize(self) -> dict[str, Any]:
        """
        What `model_dump()` gives (tuples stay tuples, leaves stay Python values), except that nested
        messages, at any depth, are referenced by hash key: `<field>__hash_key`, `<field>__hash_keys`
        (a tuple), `{"__hash_key": ...}` inside a mixed tuple.
        """
        return _externalize_fields(self, hash_key_length() == LONG_HASH_KEY_LENGTH)

    def sub_messages(self, skip: Callable[[Message], bool] | None = None) -> Iterator[Message]:
        """
        Every nested message, depth-first, children before their parents, each instance once. A message
        for which `skip(message)` is true is left out together with everything below it (e.g. messages
        already persisted). Iterative: reference chains of any depth work. Raises ValueError on a cycle.
        """
        return referenced_models_below(self, skip)  # type: ignore[arg-type,return-value]  # (messages only)

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
            # through the slot itself: a missing attribute would otherwise go through pydantic's __getattr__
            promise = _AS_PROMISE_CACHE.__get__(self, Message)
        except AttributeError:
            promise = None
        if promise is not None:
            owner = current_owner_var.get()
            if owner is not None and promise.context is owner.context:
                return promise
        if self.text is None:  # its text (e.g. a JSON rendering) is only computed if somebody iterates the tokens
            promise = MessagePromise(prefill_message=self)  # resolved in (and observed by) the active context
        else:
            promise = MessagePromise.of_message(self)
        _set_attribute(self, "_as_promise_cache", promise)
        return promise

    def mark_persisted(self, scope: object) -> bool:
        """
        Record that this very instance was handed to the persistence handlers of `scope` (a context's
        token); returns False if it already was. MiniAgents persists each instance once per context.
        """
        try:
            scopes: tuple[object, ...] = _PERSISTED.__get__(self, Message)
        except AttributeError:
            scopes = ()
        if scope in scopes:
            return False
        object.__setattr__(self, "_persisted", (*scopes, scope))
        return True


def _set_frozen_fields(message: Message, metadata: dict[str, Any]) -> bool:
    """
    Set on a plain Message what pydantic's validation would set (the same freezing, without pydantic's machinery; a
    property test holds the two ways equal), if its texts are plain str or None; False if they are not, or if the
    fields are refused: then validation runs and raises its error, worded as always.
    """
    text = metadata.get("text")
    text_template = metadata.get("text_template")
    if not ((text is None or type(text) is str) and (text_template is None or type(text_template) is str)):
        return False
    try:
        extra = freeze_fields(Message, metadata)
    except ValueError:
        return False
    fields_set = set(extra)
    del extra["class_"]
    if "text" in extra:
        del extra["text"]
    if "text_template" in extra:
        del extra["text_template"]
    set_model_state(message, {"class_": "Message", "text": text, "text_template": text_template}, extra, fields_set)
    _AS_PROMISE_CACHE.__set__(message, None)
    return True


def _set_text_only(message: Message, text: str) -> None:
    """
    Set on a plain Message what validation sets for `Message(text=text)`, `text` an ASCII str: the commonest message of
    all (an agent replying a string) has nothing to validate or freeze (a property test holds the two ways equal).
    The extra fields and the set of given names are shared: a frozen model never changes them.
    """
    set_model_state(message, {"class_": "Message", "text": text, "text_template": None}, _NO_EXTRA, _TEXT_ONLY_GIVEN)


_new_message = Message.__new__
_set_attribute = object.__setattr__  # (for what a frozen model sets on itself)
_NO_EXTRA: dict[str, Any] = {}
_TEXT_ONLY_GIVEN = {"class_", "text"}
_NO_METADATA: dict[str, Any] = {}
_AS_PROMISE_CACHE = Message.__dict__["_as_promise_cache"]
_PERSISTED = Message.__dict__["_persisted"]


def _externalize_fields(model: Frozen, longer_hash_keys: bool) -> dict[str, Any]:
    """The fields of `model` with nested messages replaced by their hash keys (for `serialize()`)."""
    serialized: dict[str, Any] = {}
    own = model.__dict__
    if len(own) != len(type(model).__pydantic_fields__):  # `_x` attributes set by hand: not fields
        own = {name: value for name, value in own.items() if name[0] != "_"}
    extra = model.__pydantic_extra__
    for name, value in (*own.items(), *extra.items()) if extra else own.items():
        if type(value) in _JSON_SCALARS:
            serialized[name] = value
        elif isinstance(value, Message):
            if value is model:
                raise ValueError(f"field {name!r} holds the message itself: a reference cycle cannot be hashed")
            serialized[f"{name}__hash_key"] = reference_key(value, longer_hash_keys)
        elif type(value) is tuple and value and all(isinstance(item, Message) for item in value):
            keys = [reference_key(item, longer_hash_keys) for item in value]
            serialized[f"{name}__hash_keys"] = tuple(keys)
        else:
            serialized[name] = _externalize_value(value, longer_hash_keys)
    return serialized


_JSON_SCALARS = frozenset((str, int, float, bool, type(None)))


def _externalize_value(value: Any, longer_hash_keys: bool) -> Any:
    value_type = type(value)
    if value_type in _JSON_SCALARS:
        return value
    if value_type is tuple:
        items = [item if type(item) in _JSON_SCALARS else _externalize_value(item, longer_hash_keys) for item in value]
        return tuple(items)
    if isinstance(value, Message):  # a message inside a mixed tuple
        return {"__hash_key": reference_key(value, longer_hash_keys)}
    if isinstance(value, Frozen):
        return _externalize_fields(value, longer_hash_keys)
    return value


class MessagePromise(StreamedPromise[str, Message]):
    """
    A promise of a Message whose text can be consumed token by token: `async for token in promise`.

    `preliminary_metadata` is readable before any token arrives; `await promise` gives the Message.
    `message_class` builds that Message once the tokens are complete, called with the metadata so far and
    `text=` the joined tokens: a Message subclass, or any callable returning a Message (a hook that can
    check or replace the message the promise resolves to, e.g. validating structured output).
    """

    __slots__ = ("_message_class", "_metadata_so_far", "_preliminary_metadata", "_token_streamer")

    errors_end_the_stream = True  # a token stream fails only when its streamer raises: that error is its last piece

    def __init__(
        self,
        start_asap: bool | Sentinel = DEFAULT,
        message_token_streamer: MessageTokenStreamer | None = None,
        prefill_message: Message | None = None,
        message_class: Callable[..., Message] = Message,
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

    @classmethod
    def of_message(cls, message: Message) -> MessagePromise:
        """The resolved promise of `message` (which has a text), in the active context: the quick way."""
        promise = cls.completed(message)  # (its one token, the text, is only made into a stream if asked)
        cls._set_up_resolved(promise)
        return promise

    @classmethod
    def of_text(cls, text: str) -> MessagePromise:
        """`Message(text=text).as_promise`, the quickest way (the commonest reply of all: an agent replying a str)."""
        if type(text) is not str or not text.isascii():
            return Message(text=text).as_promise
        message = _new_message(Message)
        _set_text_only(message, text)
        promise = cls.completed(message)  # (of_message(), inlined: this runs for every reply)
        cls._set_up_resolved(promise)
        _AS_PROMISE_CACHE.__set__(message, promise)
        return promise

    def _pieces_of_result(self) -> tuple[str, ...]:
        return (self._result.text,)  # (a resolved promise of a message with a text: see of_message())

    def _set_up_resolved(self) -> None:
        self._message_class = Message
        self._token_streamer = None
        self._preliminary_metadata = None  # derived from the message when asked
        self._metadata_so_far = _NO_METADATA  # (shared: only a streaming promise's is ever written to)

    @property
    def preliminary_metadata(self) -> Frozen:
        """The metadata known before streaming (role, model, agent alias...), as a Frozen."""
        metadata = self._preliminary_metadata
        if metadata is None:
            message = self._result
            fields = {k: v for k, v in message.frozen_fields_and_values() if k not in ("text", "text_template")}
            metadata = self._preliminary_metadata = Frozen(**fields)
        return metadata

    @property
    def known_beforehand(self) -> Frozen:
        """`preliminary_metadata` under its MiniAgents 0.0.35 name."""
        return self.preliminary_metadata

    async def _streamer(self) -> AsyncIterator[str]:
        if self._token_streamer is None:  # a prefilled message without `text`
            yield str(self._result)
            return
        tokens = self._token_streamer(self._metadata_so_far)
        if not hasattr(tokens, "__aiter__"):
            close = getattr(tokens, "close", None)
            if close is not None:
                close()  # e.g. a coroutine: close it so no "never awaited" warning follows
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
        state = self.stream_state
        if not state.done:
            async for _ in self:
                pass
        pieces = state.pieces
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
        return f"<MessagePromise {self._preliminary_metadata!r} {'streamed' if self.stream_done else 'streaming'}>"


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
