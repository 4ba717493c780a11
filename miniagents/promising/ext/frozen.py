"""Frozen: an immutable pydantic model with a content-derived, git-style `hash_key`."""

from __future__ import annotations

import hashlib
import json
import types
import typing
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from miniagents.promising.promising import PromisingContext


class Frozen(BaseModel):
    """
    An immutable pydantic model that accepts arbitrary extra fields.

    Values are frozen recursively at construction (`dict` -> `Frozen`, `list`/`tuple` -> `tuple`);
    allowed leaves are `None, str, int, float, bool` and `Frozen`. Anything else is rejected with a
    `ValidationError` naming the field and the type. Every instance carries `class_`, its class name.
    """

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)
    # caches live in slots, not pydantic private attributes: no per-instance private dict to allocate
    __slots__ = ("_hash_key_cache",)

    class_: str = ""

    # field name -> Frozen subclass a dict given for that declared field is turned into
    _dict_targets: ClassVar[dict[str, type[Frozen]]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        targets = {}
        for name, field in cls.model_fields.items():
            target = _frozen_class_in_annotation(field.annotation)
            if target is not None:
                targets[name] = target
        cls._dict_targets = targets

    @model_validator(mode="before")
    @classmethod
    def _freeze_input(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__} expects keyword fields, got {type(data).__name__}")
        class_name = cls.__name__
        given_class = data.get("class_", class_name)
        if given_class != class_name:
            raise ValueError(f"class_ must be {class_name!r} for {class_name}, got {given_class!r}")
        targets = cls._dict_targets
        frozen = {"class_": class_name}
        for name, value in data.items():
            if name != "class_":
                try:
                    frozen[name] = freeze_value(value, name, targets.get(name, Frozen))
                except RecursionError:
                    raise ValueError(
                        f"field {name!r}: the value is nested too deeply to be frozen (or refers to itself)"
                    ) from None
        return frozen

    # ------------------------------------------------------------------ fields

    def frozen_fields(self) -> tuple[str, ...]:
        """The names of all fields that are set, declared ones first, `class_` included."""
        return tuple(name for name, _ in self.frozen_fields_and_values(exclude_class=False))

    def frozen_fields_and_values(self, exclude_class: bool = True) -> Iterator[tuple[str, Any]]:
        """(name, value) of every field, declared ones first; `class_` left out unless asked for."""
        for name, value in self.__dict__.items():
            if name[0] != "_" and not (exclude_class and name == "class_"):  # `_x` set by hand: not a field
                yield name, value
        if self.__pydantic_extra__:
            yield from self.__pydantic_extra__.items()

    # ----------------------------------------------------------- serialization

    def serialize(self) -> dict[str, Any]:
        """A plain dict of this model (`class_` included), nested models as dicts, tuples as lists."""
        return self.model_dump(mode="json")

    @property
    def serialized(self) -> str:
        """`serialize()` as JSON text: sorted keys, non-ASCII characters kept as they are."""
        try:
            return json.dumps(self.serialize(), ensure_ascii=False, sort_keys=True)
        except RecursionError:
            raise ValueError(
                f"{type(self).__name__} cannot be serialized: a reference cycle (it contains itself) or "
                "nesting too deep"
            ) from None

    @property
    def full_json(self) -> str:
        """The whole model, nested models inline, as indented JSON text."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, sort_keys=True, indent=2)

    @property
    def hash_key(self) -> str:
        """sha256 hex digest of `serialized`; 40 characters unless the context wants longer keys."""
        try:
            return self._hash_key_cache
        except AttributeError:
            pass
        hash_key = hashlib.sha256(self.serialized.encode("utf-8")).hexdigest()
        context = PromisingContext.get_current_or_none()
        if context is None or not context.longer_hash_keys:
            hash_key = hash_key[:40]
        object.__setattr__(self, "_hash_key_cache", hash_key)
        return hash_key

    # ------------------------------------------------------------ presentation

    @property
    def as_string(self) -> str:
        """How this model reads as text; subclasses customise it through `_as_string()`."""
        return self._as_string()

    def _as_string(self) -> str:
        return self.full_json

    def __str__(self) -> str:
        return self.as_string

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Only the fields that differ from their defaults, and never `class_`."""
        fields = type(self).model_fields
        for name, value in self.frozen_fields_and_values():
            field = fields.get(name)
            if field is None or field.is_required() or value != field.default:
                yield name, value


def freeze_value(value: Any, path: str, dict_class: type[Frozen] = Frozen) -> Any:
    """
    Return `value` frozen: dicts become `dict_class` models, lists and tuples become tuples.

    Raises ValueError naming `path` (the field, e.g. `meta.tags[2]`) and the offending type.
    """
    try:
        if dict_class is not Frozen and isinstance(value, dict):
            return dict_class(**{key: _freeze(item) for key, item in _str_keyed(value).items()})
        return _freeze(value)
    except _Unfreezable as exc:
        raise ValueError(f"field {path + exc.location()!r}: {exc.reason}") from None


class _Unfreezable(Exception):
    """Internal: raised deep inside `_freeze`; each level adds its key, so no path is built on success."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.keys: list[str] = []

    def location(self) -> str:
        return "".join(reversed(self.keys))


_SCALARS = frozenset((float, bool, type(None)))
_SMALL_INT = 1 << 62  # ints below this need no size check


def _freeze(value: Any) -> Any:
    value_type = type(value)
    if value_type is str:
        if not value.isascii():
            _check_encodable(value)
        return value
    if value_type in _SCALARS:
        return value
    if value_type is int:
        if value.bit_length() > _MAX_INT_BITS:
            raise _Unfreezable(f"an int of about {int(value.bit_length() * 0.30103)} digits is too large for JSON")
        return value
    if value_type is tuple or value_type is list:
        frozen: list[Any] = []
        try:
            for item in value:
                item_type = type(item)
                if (
                    item_type in _SCALARS
                    or (item_type is str and item.isascii())
                    or (item_type is int and -_SMALL_INT < item < _SMALL_INT)
                ):
                    frozen.append(item)
                else:
                    frozen.append(_freeze(item))
        except _Unfreezable as exc:
            exc.keys.append(f"[{len(frozen)}]")
            raise
        return tuple(frozen)
    if isinstance(value, Frozen):
        return value
    if isinstance(value, dict):
        fields: dict[str, Any] = {"class_": "Frozen"}
        key = None
        try:
            for key, item in _str_keyed(value).items():
                item_type = type(item)
                if (
                    item_type in _SCALARS
                    or (item_type is str and item.isascii())
                    or (item_type is int and -_SMALL_INT < item < _SMALL_INT)
                ):
                    fields[key] = item
                else:
                    fields[key] = _freeze(item)
        except _Unfreezable as exc:
            exc.keys.append(f".{key}")
            raise
        if "class_" in value and value["class_"] != "Frozen":
            raise _Unfreezable(f"a nested dict cannot set class_ (got {value['class_']!r})")
        return _construct_frozen(fields)
    if isinstance(value, (str, int, float)):  # subclasses (e.g. str enums)
        return value
    if isinstance(value, (list, tuple)):
        return _freeze(list(value))
    raise _Unfreezable(
        f"values of type {value_type.__name__} cannot be frozen "
        "(allowed: None, str, int, float, bool, dict, list, tuple and Frozen models)"
    )


def _construct_frozen(fields: dict[str, Any]) -> Frozen:
    """A plain Frozen from already frozen values, without validating them a second time."""
    model = Frozen.__new__(Frozen)
    extra = dict(fields)
    del extra["class_"]
    object.__setattr__(model, "__dict__", {"class_": "Frozen"})
    object.__setattr__(model, "__pydantic_extra__", extra)
    object.__setattr__(model, "__pydantic_fields_set__", set(fields))
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def _str_keyed(value: dict[Any, Any]) -> dict[Any, Any]:
    for key in value:
        if not isinstance(key, str):
            raise _Unfreezable(f"dict keys must be str, got {type(key).__name__} ({key!r})")
    return value


_MAX_INT_BITS = 14_000  # ~4,200 decimal digits: Python refuses to turn longer ints into text


def _check_encodable(text: str) -> None:
    """Reject text that is not valid Unicode (lone surrogates): it could be neither hashed nor stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _Unfreezable(
            f"text is not valid Unicode: {text[exc.start : exc.end]!r} (a lone surrogate) at position "
            f"{exc.start}; decode provider output with errors='replace' first"
        ) from None


def _frozen_class_in_annotation(annotation: Any) -> type[Frozen] | None:
    """The Frozen subclass named by an annotation like `Message`, `Message | None`, `tuple[Message, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, Frozen):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, tuple, list):
        for argument in typing.get_args(annotation):
            found = _frozen_class_in_annotation(argument)
            if found is not None:
                return found
    return None
