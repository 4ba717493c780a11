"""
Frozen: an immutable pydantic model with a content-derived, git-style `hash_key`.

One rule for everything a Frozen holds: a key or value is either accepted and round-trips exactly (same
value, same `serialized` text, same `hash_key` after `Frozen(**model.serialize())` or after a store), or it
is rejected at construction with a `ValueError` (pydantic's `ValidationError`) naming the field path and
saying why. Nothing is dropped and nothing fails later, inside `hash_key`.

Keys (field names and the keys of nested dicts): any `str` that is valid Unicode, `""` and `_id` included,
except names ending in `__hash_key` / `__hash_keys` (reserved for references to nested messages, see
`miniagents.messages`) and a nested `class_` other than `"Frozen"`.

Values: `None`, `bool`, `str` (valid Unicode: no lone surrogates), `int` (up to ~4,200 digits), finite
`float`, `dict` (-> Frozen), `list`/`tuple` (-> tuple), Frozen models (kept as the same object), and the
leaves below. Each leaf stays the Python value on the model (`model.when` is a `datetime`); in the JSON
text that is hashed it has one stable form, a one-key object that no Frozen can produce (every Frozen
object carries `class_`):

| leaf                         | JSON form                                                              |
|------------------------------|------------------------------------------------------------------------|
| `datetime`                   | `{"__datetime": "2024-05-01T12:30:00.000001+02:00"}` (`isoformat()`)   |
| `date`                       | `{"__date": "2024-05-01"}`                                             |
| `time`                       | `{"__time": "12:30:00+02:00"}`                                         |
| `UUID`                       | `{"__uuid": "12345678-1234-5678-1234-567812345678"}`                   |
| `Decimal` (finite)           | `{"__decimal": "1.10"}` (`str()`: exponent and trailing zeros kept)    |
| `Enum` member                | `{"__enum": ["Color", "RED"]}` (class `__name__`, member name)         |
| `pathlib` path               | `{"__path": "docs/a.md"}` (`as_posix()`, loaded back as `Path`)        |
| `bytes`                      | `{"__bytes": "aGk="}` (standard base64, padded)                        |

An aware `datetime`/`time` keeps its UTC offset, not the name of its zone. `from_json_form` turns JSON data
back into these values. docs/frozen.md has the table and the rejected inputs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
import types
import typing
from collections.abc import Callable, Collection, Iterator
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from itertools import repeat
from operator import itemgetter
from pathlib import Path, PurePath
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, model_validator

from miniagents.promising.promising import PromisingContext

__all__ = [
    "Frozen",
    "freeze_fields",
    "freeze_value",
    "from_json_form",
    "hash_key_length",
    "set_model_state",
    "to_json_form",
]

SHORT_HASH_KEY_LENGTH = 40
LONG_HASH_KEY_LENGTH = 64

_MISSING: Any = object()


def hash_key_length() -> int:
    """The length of the hash keys read now: 64 if the active context has `longer_hash_keys`, else 40."""
    context = PromisingContext.get_current_or_none()
    return LONG_HASH_KEY_LENGTH if context is not None and context.longer_hash_keys else SHORT_HASH_KEY_LENGTH


class Frozen(BaseModel):
    """
    An immutable pydantic model that accepts arbitrary extra fields (see the module docstring for what it
    may hold). Every instance carries `class_`, its class name. Read-only mapping access works over the
    fields without `class_`: `m["k"]`, `m.get("k")`, `"k" in m`, `m.keys()`, `len(m)`, `for k in m`.
    """

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)
    # caches live in slots, not pydantic private attributes: no per-instance private dict to allocate.
    # The digests are full sha256 hex digests; the cut to 40 characters happens when `hash_key` is read.
    # Two of them because a message's text embeds its children's keys, whose length depends on the context.
    __slots__ = ("_digest", "_digest_with_long_keys")

    class_: str = ""

    nested_by_hash_key: ClassVar[bool] = False
    """
    True for models (messages) that the JSON text of a model holding them references by hash key instead
    of writing them out: a field holding one becomes `<field>__hash_key: key`, a non-empty tuple of only
    such models `<field>__hash_keys: [keys]`, one inside any other tuple `{"__hash_key": key}`. It applies
    to their own text at any depth (inside plain models and tuples); a plain model writes everything out.
    """

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
        return freeze_fields(cls, data)

    # ------------------------------------------------------------ equality

    def __eq__(self, other: object) -> bool:
        """
        pydantic's equality (the same class, equal fields and extra fields: `1 == 1.0`), with nested models
        compared by a loop instead of recursion, so that reference chains of any depth compare.
        """
        if not isinstance(other, BaseModel):
            return NotImplemented
        if type(other) is not type(self):
            return False
        mine = _field_values(self)
        if _JSON_SCALARS.issuperset(map(type, mine.values())):  # nothing nested (most models): compared in C
            return mine == _field_values(other)
        pairs: list[tuple[Any, Any]] = [(self, other)]
        while pairs:
            left, right = pairs.pop()
            if left is right:
                continue
            if isinstance(left, Frozen):
                if type(right) is not type(left):
                    return False
                left_fields, right_fields = _field_values(left), _field_values(right)
                if left_fields.keys() != right_fields.keys():
                    return False
                pairs.extend((value, right_fields[name]) for name, value in left_fields.items())
            elif type(left) is tuple:
                if type(right) is not tuple or len(left) != len(right):
                    return False
                pairs.extend(zip(left, right, strict=True))
            elif isinstance(right, Frozen) or left != right:
                return False
        return True

    def __hash__(self) -> int:
        """
        A hash over the declared fields (as pydantic's; equal models hash alike), nested models hashed by a
        loop instead of recursion, so that reference chains of any depth hash.
        """
        parts = _hashed_parts(self)
        if _JSON_SCALARS.issuperset(map(type, parts)):  # nothing nested (most models)
            return hash((type(self), parts))
        hashes: dict[int, int] = {}  # id of a model or tuple below -> its hash (they are alive meanwhile)
        stack: list[tuple[Any, bool]] = [(self, False)]
        while stack:
            value, children_done = stack.pop()
            parts = _hashed_parts(value)
            if not children_done:
                stack.append((value, True))
                stack.extend((part, False) for part in parts if _hashed_by_parts(part) and id(part) not in hashes)
                continue
            hashes[id(value)] = hash(
                (type(value), tuple(hashes[id(part)] if _hashed_by_parts(part) else part for part in parts))
            )
        return hashes[id(self)]

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

    def holds_models(self) -> bool:
        """Whether a field holds a Frozen model (a nested dict, a message), directly or inside tuples."""
        extra = self.__pydantic_extra__
        for values in (self.__dict__.values(), extra.values()) if extra else (self.__dict__.values(),):
            for value in values:
                value_type = type(value)
                if value_type in _JSON_SCALARS:
                    continue
                if value_type is tuple:
                    if _holds_models(value):
                        return True
                elif isinstance(value, Frozen):
                    return True
        return False

    # ---------------------------------------------------------- mapping access

    def __getitem__(self, name: str) -> Any:
        value = self._field_value(name)
        if value is _MISSING:
            raise KeyError(f"{type(self).__name__} has no field {_short_repr(name)}")
        return value

    def get(self, name: str, default: Any = None) -> Any:
        """The value of field `name`, or `default` if there is no such field."""
        value = self._field_value(name)
        return default if value is _MISSING else value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._field_value(name) is not _MISSING

    def keys(self) -> tuple[str, ...]:
        """The field names, declared ones first, without `class_`."""
        return tuple(name for name, _ in self.frozen_fields_and_values())

    def __len__(self) -> int:
        return len(self.keys())

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]  # a mapping iterates its keys (pydantic: pairs)
        return iter(self.keys())

    def __bool__(self) -> bool:
        return True  # a model with no fields is still a value, not an empty container

    def _field_value(self, name: str) -> Any:
        extra = self.__pydantic_extra__
        if extra and name in extra:
            return extra[name]
        if name != "class_" and name in type(self).__pydantic_fields__:
            return self.__dict__[name]
        return _MISSING

    # ----------------------------------------------------------- serialization

    def serialize(self) -> dict[str, Any]:
        """What `model_dump()` gives: a plain dict (`class_` included), nested models as dicts, tuples kept."""
        return self.model_dump()

    @property
    def serialized(self) -> str:
        """The JSON text `hash_key` digests: sorted keys, non-ASCII kept, leaves in their JSON forms."""
        return self._serialized_text(hash_key_length() == LONG_HASH_KEY_LENGTH)

    @property
    def full_json(self) -> str:
        """The whole model, nested models inline, as indented JSON text."""
        return json.dumps(_json_inline(self), ensure_ascii=False, sort_keys=True, indent=2)

    def _json_data(self, longer_hash_keys: bool) -> dict[str, Any]:
        """The JSON-ready dict `serialized` is the text of; Message overrides it to reference nested messages."""
        return _json_inline(self)

    def _serialized_text(self, longer_hash_keys: bool) -> str:
        try:
            cls = type(self)
            if cls.nested_by_hash_key:
                return _referencing_text(self, longer_hash_keys)
            if cls._json_data is _FROZEN_JSON_DATA:
                return _inline_text(_inline_fields(self))
            return _json_text(self._json_data(longer_hash_keys))
        except RecursionError:
            raise ValueError(
                f"{type(self).__name__} cannot be serialized: a reference cycle (it contains itself) or "
                "nesting too deep"
            ) from None

    @property
    def hash_key(self) -> str:
        """sha256 hex digest of `serialized`: 40 characters, or 64 if the active context has longer_hash_keys."""
        return self.hash_key_for(hash_key_length() == LONG_HASH_KEY_LENGTH)

    def hash_key_for(self, longer_hash_keys: bool) -> str:
        """The `hash_key` as read in a context whose `longer_hash_keys` is the one given (whatever is active)."""
        # the slot descriptors are read directly: an unset slot must not go through pydantic's __getattr__
        try:
            if longer_hash_keys:
                return _get_long_digest(self)
            return _get_digest(self)[:SHORT_HASH_KEY_LENGTH]
        except AttributeError:
            digest = self._compute_digest(longer_hash_keys)
            return digest if longer_hash_keys else digest[:SHORT_HASH_KEY_LENGTH]

    def serialized_and_hash_key_for(self, longer_hash_keys: bool) -> tuple[str, str]:
        """
        `(serialized, hash_key)` as read in a context whose `longer_hash_keys` is the one given, the text
        made once and the key its digest (remembered, like `hash_key_for`). For stores, which need both.
        Raises ValueError if the model cannot be serialized (a reference cycle set behind pydantic's back).
        """
        if type(self).nested_by_hash_key:  # (a message: `_serialized_text` without its calls)
            try:
                text = _referencing_text(self, longer_hash_keys)
            except RecursionError:
                text = self._serialized_text(longer_hash_keys)  # raises the ValueError that says why
        else:
            text = self._serialized_text(longer_hash_keys)
        # digested whether or not it was already: cheaper than asking (an unset slot raises AttributeError)
        digest = _sha256(text.encode()).hexdigest()  # (UTF-8)
        if longer_hash_keys:
            _set_long_digest(self, digest)
            return text, digest
        _set_digest(self, digest)
        return text, digest[:SHORT_HASH_KEY_LENGTH]

    def hash_key_cached(self, longer_hash_keys: bool) -> bool:
        """Whether `hash_key_for(longer_hash_keys)` is computed already (reading it then costs nothing)."""
        try:
            (_LONG_DIGEST_SLOT if longer_hash_keys else _DIGEST_SLOT).__get__(self)
        except AttributeError:
            return False
        return True

    def _compute_digest(self, longer_hash_keys: bool) -> str:
        digest = _sha256(self._serialized_text(longer_hash_keys).encode()).hexdigest()  # (UTF-8)
        (_set_long_digest if longer_hash_keys else _set_digest)(self, digest)
        return digest

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
        fields = type(self).__pydantic_fields__
        for name, value in self.frozen_fields_and_values():
            field = fields.get(name)
            if field is None or field.is_required() or value != field.default:
                yield name, value


def _field_values(model: Frozen) -> dict[str, Any]:
    """The fields of `model` (not `_x` attributes set by hand on the instance) and its extra fields, by name."""
    own = vars(model)  # (its __dict__, typed as a dict)
    if len(own) != len(type(model).__pydantic_fields__):  # `_x` attributes set by hand: not fields
        own = {name: value for name, value in own.items() if name[0] != "_"}
    extra = model.__pydantic_extra__
    return {**own, **extra} if extra else own


def _hashed_by_parts(value: Any) -> bool:
    return isinstance(value, Frozen) or type(value) is tuple


def _hashed_parts(value: Any) -> tuple[Any, ...]:
    """What the hash of a model (its declared fields, as pydantic's) or a tuple (its items) is made of."""
    if type(value) is tuple:
        return value
    own = value.__dict__
    return tuple(own[name] for name in type(value).__pydantic_fields__ if name in own)


_FROZEN_JSON_DATA = Frozen._json_data
_FROZEN_HASH_KEY_FOR = Frozen.hash_key_for
_DIGEST_SLOT = Frozen.__dict__["_digest"]
_LONG_DIGEST_SLOT = Frozen.__dict__["_digest_with_long_keys"]
_get_digest, _set_digest = _DIGEST_SLOT.__get__, _DIGEST_SLOT.__set__
_get_long_digest, _set_long_digest = _LONG_DIGEST_SLOT.__get__, _LONG_DIGEST_SLOT.__set__


# ====================================================================== freezing


def freeze_fields(model_class: type[Frozen], data: dict[str, Any]) -> dict[str, Any]:
    """
    The fields `model_class(**data)` is validated with: `class_` first, then every field of `data` in its order,
    its value frozen (a dict given for a declared field of a Frozen subclass becomes that class). What the model
    keeps is these values. Raises ValueError naming the field and saying why a key or a value was refused.
    """
    class_name = model_class.__name__
    given_class = data.get("class_", class_name)
    if given_class != class_name:
        raise ValueError(f"class_ must be {class_name!r} for {class_name}, got {_short_repr(given_class)}")
    targets = model_class._dict_targets
    frozen: dict[str, Any] = {"class_": class_name}
    for name, value in data.items():
        value_type = type(value)
        if type(name) is not str or not name.isascii() or "__hash_key" in name:
            try:
                _check_key(name)
            except _Unfreezable as exc:
                raise ValueError(f"field {_short_repr(name)}: {exc.reason}") from None
        if (
            (value_type is str and value.isascii())
            or (value_type is int and -_SMALL_INT < value < _SMALL_INT)
            or value is None
            or value_type is bool
        ):
            frozen[name] = value
            continue
        try:
            target = targets.get(name)
            if target is not None and isinstance(value, dict):
                frozen[name] = target(**{key: _freeze(item) for key, item in _str_keyed(value).items()})
            elif value_type is dict:
                frozen[name] = _freeze_dict(value)
            elif value_type is list or value_type is tuple:
                frozen[name] = _freeze_list(value)[0]
            else:
                frozen[name] = _freeze(value)
        except _Unfreezable as exc:
            path = name if name.isidentifier() else f"[{name!r}]"
            raise ValueError(f"field '{path}{exc.location()}': {exc.reason}") from None
        except RecursionError:
            raise ValueError(
                f"field {name!r}: the value is nested too deeply to be frozen (or refers to itself)"
            ) from None
    return frozen


def freeze_value(value: Any, path: str, dict_class: type[Frozen] = Frozen) -> Any:
    """
    Return `value` frozen: dicts become `dict_class` models, lists and tuples become tuples.

    Raises ValueError naming `path` (the field, e.g. `meta.tags[2]`) and saying why the value was refused.
    """
    try:
        if dict_class is not Frozen and isinstance(value, dict):
            return dict_class(**{key: _freeze(item) for key, item in _str_keyed(value).items()})
        return _freeze(value)
    except _Unfreezable as exc:
        raise ValueError(f"field '{path}{exc.location()}': {exc.reason}") from None


class _Unfreezable(Exception):
    """Internal: raised deep inside `_freeze`; each level adds its key, so no path is built on success."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.keys: list[str] = []
        self.in_key = False

    def location(self) -> str:
        return "".join(reversed(self.keys))


_SMALL_INT = 1 << 62  # ints below this need no size check
_MAX_INT_BITS = 14_000  # ~4,200 decimal digits: Python refuses to turn longer ints into text
_RESERVED_SUFFIXES = ("__hash_key", "__hash_keys")
_ALLOWED = (
    "allowed: None, str, int, float, bool, dict, list, tuple, Frozen models, datetime, date, time, UUID, "
    "Decimal, Enum members, pathlib paths and bytes"
)


def _freeze(value: Any) -> Any:
    # containers first: scalars rarely get here, the loops below keep them on their fast paths
    value_type = type(value)
    if value_type is dict:
        return _freeze_dict(value)
    if value_type is tuple or value_type is list:
        return _freeze_list(value)[0]
    if value_type is str:
        if not value.isascii():
            _check_text(value)
        return value
    if value_type is bool or value is None:
        return value
    if value_type is int:
        if value.bit_length() > _MAX_INT_BITS:
            raise _Unfreezable(f"an int of about {int(value.bit_length() * 0.30103)} digits is too large for JSON")
        return value
    if value_type is float:
        if value - value != 0.0:
            raise _Unfreezable(_non_finite_reason(value))
        return value
    if isinstance(value, Frozen):
        return value
    if value_type in _LEAF_TAGS or isinstance(value, _LEAF_TYPES):
        _check_leaf(value)
        return value
    if isinstance(value, dict):  # a dict subclass
        return _freeze_dict(value)
    if isinstance(value, str):  # a str subclass
        _check_text(value)
        return value
    if isinstance(value, int):  # an int subclass (bool and enums are handled above)
        if value.bit_length() > _MAX_INT_BITS:
            raise _Unfreezable(f"an int of about {int(value.bit_length() * 0.30103)} digits is too large for JSON")
        return value
    if isinstance(value, float):  # a float subclass (e.g. numpy.float64)
        if not math.isfinite(value):
            raise _Unfreezable(_non_finite_reason(value))
        return value
    if isinstance(value, (list, tuple)):
        return _freeze_list(list(value))[0]
    raise _Unfreezable(f"values of type {value_type.__name__} cannot be frozen ({_ALLOWED})")


# The loops below keep the common values on their fast paths: an ASCII str, a small int, a finite float, a bool,
# None, a dict or a list is frozen without a call to `_freeze`, which has the rules for everything else.


def _freeze_list(value: list[Any] | tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    """The items frozen, and whether the encoder writes them as they are (see `_written_as_they_are`)."""
    frozen: list[Any] = []
    plain = True
    try:
        for item in value:
            item_type = type(item)
            if item_type is str:
                if not item.isascii():
                    _check_text(item)
            elif item_type is int:
                if not -_SMALL_INT < item < _SMALL_INT:
                    item = _freeze(item)
            elif item_type is dict:
                item = _freeze_dict(item)
            elif not (item_type is bool or item is None or (item_type is float and item - item == 0.0)):
                item = _freeze(item)
                if plain:
                    plain = _written_as_it_is(item)
            frozen.append(item)
    except _Unfreezable as exc:
        exc.keys.append(f"[{len(frozen)}]")
        raise
    return tuple(frozen), plain


def _written_as_it_is(value: Any) -> bool:
    value_type = type(value)
    return value_type in _PLAIN_KINDS or (value_type is tuple and _written_as_they_are(value))


def _freeze_dict(value: dict[Any, Any]) -> Frozen:
    extra: dict[str, Any] = {}
    plain = True  # whether the encoder writes every value as it is
    key = None
    try:
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or "__hash_key" in key:
                _check_key(key)
            item_type = type(item)
            if item_type is str:
                if not item.isascii():
                    _check_text(item)
            elif item_type is int:
                if not -_SMALL_INT < item < _SMALL_INT:
                    item = _freeze(item)
            elif item_type is dict:
                item = _freeze_dict(item)
            elif item_type is list:
                item, items_plain = _freeze_list(item)
                if not items_plain:
                    plain = False
            elif not (item_type is bool or item is None or (item_type is float and item - item == 0.0)):
                item = _freeze(item)
                if plain:
                    plain = _written_as_it_is(item)
            extra[key] = item
    except _Unfreezable as exc:
        if exc.in_key:  # a bad key is named by the reason; the path ends at the dict holding it
            exc.in_key = False
        else:
            exc.keys.append(_key_path(key))
        raise
    if "class_" in extra:  # declared, not an extra field: only its own value is accepted
        if value["class_"] != "Frozen":
            raise _Unfreezable(f"a nested dict cannot set class_ (got {_short_repr(value['class_'])})")
        del extra["class_"]
    # the model without validating its values a second time: the state pydantic's validation sets, written
    # through the slots of BaseModel directly; which of two equal shared dicts it gets says whether the encoder
    # writes its values as they are (a frozen model never changes its __dict__)
    model = _new_object(Frozen)
    set_model_state(model, _PLAIN_DICT if plain else _FROZEN_DICT, extra, {"class_", *extra})
    return model


_new_object = object.__new__
_PLAIN_DICT = {"class_": "Frozen"}  # the declared fields of a nested dict whose values the encoder writes as they are
_FROZEN_DICT = {"class_": "Frozen"}  # the same, of any other nested dict
# the slot descriptors of BaseModel (`__dict__` and pydantic's three), found along the MRO
_set_instance_dict, _set_extra, _set_fields_set, _set_private = (
    next(klass.__dict__[name] for klass in Frozen.__mro__ if name in klass.__dict__).__set__
    for name in ("__dict__", "__pydantic_extra__", "__pydantic_fields_set__", "__pydantic_private__")
)


def set_model_state(model: Frozen, fields: dict[str, Any], extra: dict[str, Any], fields_set: set[str]) -> None:
    """
    Set on `model` the state pydantic's validation sets (its declared `fields`, its `extra` fields, the names
    given), through BaseModel's slots directly: for quick constructors whose values are frozen already (by
    `freeze_fields`) and which must end exactly where validation does. The dicts are kept, not copied.
    """
    _set_instance_dict(model, fields)
    _set_extra(model, extra)
    _set_fields_set(model, fields_set)
    _set_private(model, None)


def _str_keyed(value: dict[Any, Any]) -> dict[Any, Any]:
    for key in value:
        if type(key) is not str or not key.isascii() or "__hash_key" in key:
            _check_key(key)
    return value


def _check_key(key: Any) -> None:
    """Refuse a key that could not round-trip: not a str, not valid Unicode, or a reserved name."""
    try:
        _check_key_or_raise(key)
    except _Unfreezable as exc:
        exc.in_key = True
        raise


def _check_key_or_raise(key: Any) -> None:
    if not isinstance(key, str):
        raise _Unfreezable(f"dict keys must be str, got {type(key).__name__} ({_short_repr(key)})")
    if type(key) is not str:
        raise _Unfreezable(f"dict keys must be plain str, got the str subclass {type(key).__name__} ({key!r})")
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise _Unfreezable(
                f"the key {key!r} is not valid Unicode (it has a lone surrogate): it could be neither hashed nor stored"
            ) from None
    if key.endswith(_RESERVED_SUFFIXES):
        raise _Unfreezable(
            f"the name {key!r} is reserved: names ending in __hash_key / __hash_keys are how nested messages "
            "are referenced in the serialized form; rename the field"
        )


def _check_text(text: str) -> None:
    """Reject text that is not valid Unicode (lone surrogates): it could be neither hashed nor stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _Unfreezable(
            f"text is not valid Unicode: {text[exc.start : exc.end]!r} (a lone surrogate) at position "
            f"{exc.start}; decode provider output with errors='replace' first"
        ) from None


def _non_finite_reason(value: float) -> str:
    return f"the float {value!r} cannot be frozen: JSON has no nan or infinity (use None, or a str)"


def _short_repr(value: Any) -> str:
    """`repr(value)` for an error message: at most ~80 characters, and never an error itself."""
    try:
        text = repr(value)
    except Exception:  # e.g. an int too long to print
        return f"<{type(value).__name__} that cannot be printed>"
    return text if len(text) <= 80 else f"{text[:77]}..."


def _key_path(key: Any) -> str:
    """How a key reads inside a field path: `.name` for identifiers, `['a b']` for anything else."""
    if isinstance(key, str) and key.isidentifier():
        return f".{key}"
    return f"[{key!r}]"


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


# ============================================================ JSON forms of the leaves


def _enum_form(member: Enum) -> list[str]:
    return [type(member).__name__, member.name]


def _bytes_form(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# tag -> how a leaf of that kind becomes JSON text; subclasses use the base class's method, so a subclass
# (pandas.Timestamp, a str-valued Enum...) cannot change the form. Order matters: datetime is a date, and
# an Enum member may also be a str or an int.
_LEAF_ENCODERS: tuple[tuple[type, str, Callable[[Any], Any]], ...] = (
    (Enum, "__enum", _enum_form),
    (datetime, "__datetime", datetime.isoformat),
    (date, "__date", date.isoformat),
    (time, "__time", time.isoformat),
    (UUID, "__uuid", UUID.__str__),
    (Decimal, "__decimal", Decimal.__str__),
    (PurePath, "__path", PurePath.as_posix),
    (bytes, "__bytes", _bytes_form),
)
_LEAF_TYPES = tuple(leaf_type for leaf_type, _, _ in _LEAF_ENCODERS)
# exact type -> (tag, encoder), the fast lookup; enum members and paths are always of subclasses
_LEAF_TAGS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    leaf_type: (tag, encode) for leaf_type, tag, encode in _LEAF_ENCODERS if leaf_type not in (Enum, PurePath)
}


def _check_leaf(value: Any) -> None:
    if isinstance(value, Enum):
        members = type(value).__members__
        if not isinstance(value.name, str) or members.get(value.name) is not value:
            raise _Unfreezable(
                f"{type(value).__name__} value {_short_repr(value)} is not a single member (a combination of "
                "Flag members?); store its .value instead"
            )
    elif isinstance(value, Decimal) and not value.is_finite():
        raise _Unfreezable(f"the Decimal {value} cannot be frozen: only finite decimals round-trip (use None)")


def _json_leaf(value: Any) -> Any:
    """The one-key JSON object a leaf is written as (a subclass of str, int or float: as that scalar)."""
    found = _LEAF_TAGS.get(type(value))
    if found is not None:
        tag, encode = found
        return {tag: encode(value)}
    for leaf_type, tag, encode in _LEAF_ENCODERS:
        if isinstance(value, leaf_type):
            return {tag: encode(value)}
    if isinstance(value, (str, int, float)):  # a subclass of a scalar: JSON writes it as that scalar
        return value
    raise TypeError(f"{type(value).__name__} is not a value a Frozen can hold")


def _enum_member(form: Any) -> Enum:
    if not (isinstance(form, list) and len(form) == 2 and all(isinstance(part, str) for part in form)):
        raise ValueError(f"an __enum form must be [class name, member name], got {form!r}")
    class_name, member_name = form
    found = None
    pending: list[type[Enum]] = [Enum]
    while pending:  # the newest definition of that name with that member wins
        cls = pending.pop(0)
        if cls.__name__ == class_name and member_name in cls.__members__:
            found = cls
        pending.extend(cls.__subclasses__())
    if found is None:
        raise ValueError(
            f"no Enum class named {class_name!r} with a member {member_name!r} is defined in this process "
            "(import the module that defines it first)"
        )
    return found.__members__[member_name]


_LEAF_DECODERS: dict[str, Callable[[Any], Any]] = {
    "__datetime": datetime.fromisoformat,
    "__date": date.fromisoformat,
    "__time": time.fromisoformat,
    "__uuid": UUID,
    "__decimal": Decimal,
    "__enum": _enum_member,
    "__path": Path,
    "__bytes": lambda text: base64.b64decode(text, validate=True),
}


def from_json_form(data: Any) -> Any:
    """
    JSON data (as `json.loads(model.serialized)` gives it) back as values a Frozen accepts: the one-key
    leaf forms become their values again (datetime, UUID, ...), lists become tuples, objects stay dicts
    (their `class_` says which model they were). Raises ValueError for an object that is neither a model
    (it has `class_`) nor a leaf form, e.g. a reference to a nested message, which only a store can resolve.
    """
    if isinstance(data, list):
        return tuple(from_json_form(item) for item in data)
    if not isinstance(data, dict):
        return data
    if "class_" in data:
        return {key: from_json_form(item) for key, item in data.items()}
    if len(data) == 1:
        ((tag, form),) = data.items()
        decode = _LEAF_DECODERS.get(tag)
        if decode is not None:
            try:
                return decode(form)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{tag} form {form!r} cannot be read back: {exc}") from None
    raise ValueError(f"{json.dumps(data)[:120]} is neither a Frozen object (with class_) nor a leaf form")


# ============================================================== serialization walk


def _make_json_text(default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """
    `json.dumps(data, ensure_ascii=False, sort_keys=True, default=default)` (the canonical text), its
    encoder made once: the C encoder when there is one, without circular-reference markers (a cycle ends
    in RecursionError, as in a walk of the data would).
    """
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:  # no C accelerator: the pure-Python encoder, made once as well
        return json.JSONEncoder(ensure_ascii=False, sort_keys=True, check_circular=False, default=default).encode
    encode = make_encoder(
        None, default, json.encoder.encode_basestring, None, ": ", ", ", True, False, True
    )  # (markers, default, encode str, indent, key sep, item sep, sort_keys, skipkeys, allow_nan): as json.dumps
    join = "".join

    def json_text(data: Any) -> str:
        if type(data) is str:
            return json.encoder.encode_basestring(data)
        return join(encode(data, 0))

    return json_text


_json_text = _make_json_text()
_sha256 = hashlib.sha256

# The texts of models are written in one pass of the C encoder: each level of a model is made a dict by
# `_inline_fields` / `_referencing_fields` (which also turn leaves into their forms), and the encoder calls
# back for the models nested in it. Exact str/int/float/bool/None and tuples of them are written by the
# encoder itself; a tuple holding anything else (a leaf, an Enum that is also an int...) is converted first,
# since the encoder would write an IntEnum member as its int, not as its `__enum` form.


def _inline_fields(model: Frozen) -> dict[str, Any]:
    """One level of `model` for the inline text: nested models are left to the encoder (`_inline_default`)."""
    data: dict[str, Any] = {}
    for name, value in model.__dict__.items():
        if name[0] != "_":  # `_x` in `__dict__` was set by hand on the instance: not a field
            data[name] = value if type(value) in _JSON_SCALARS else _inline_member(value)
    extra = model.__pydantic_extra__
    if extra:
        for name, value in extra.items():
            data[name] = value if type(value) in _JSON_SCALARS else _inline_member(value)
    return data


def _inline_member(value: Any) -> Any:
    if type(value) is tuple:
        return value if _encoder_writes(value) else _json_inline_value(value)
    if isinstance(value, Frozen):
        return value
    return _json_leaf(value)


def _inline_default(value: Any) -> Any:
    if isinstance(value, Frozen):
        return _inline_fields(value)
    raise TypeError(f"{type(value).__name__} is not a value a Frozen can hold")


def _holds_models(items: tuple[Any, ...]) -> bool:
    for item in items:
        item_type = type(item)
        if item_type in _JSON_SCALARS:
            continue
        if item_type is tuple:
            if _holds_models(item):
                return True
        elif isinstance(item, Frozen):
            return True
    return False


def _encoder_writes(items: tuple[Any, ...]) -> bool:
    """Whether the encoder writes `items` as is: only exact scalars, models and such tuples in it."""
    for item in items:
        item_type = type(item)
        if item_type in _JSON_SCALARS:
            continue
        if item_type is tuple:
            if not _encoder_writes(item):
                return False
        elif not isinstance(item, Frozen):
            return False
    return True


def _referencing_fields(model: Frozen, longer_hash_keys: bool) -> dict[str, Any]:
    """One level of `model` for a referencing text: models `nested_by_hash_key` become hash keys."""
    data: dict[str, Any] = {}
    fields = _field_values(model)
    if _written_as_they_are(fields.values()):
        return fields  # e.g. a text-only message (read by the encoder only, which calls back for plain models)
    for name, value in fields.items():
        value_type = type(value)
        if value_type in _JSON_SCALARS:
            data[name] = value
        elif value_type is tuple:
            if value and _all_nested_by_hash_key(value):
                data[f"{name}__hash_keys"] = [reference_key(item, longer_hash_keys) for item in value]
            else:
                data[name] = value if _encoder_writes(value) else _referencing_value(value, longer_hash_keys)
        elif isinstance(value, Frozen):
            if value_type.nested_by_hash_key:
                if value is model:
                    raise ValueError(f"field {name!r} holds the message itself: a reference cycle cannot be hashed")
                data[f"{name}__hash_key"] = reference_key(value, longer_hash_keys)
            else:
                data[name] = value  # the encoder calls back for it (`_referencing_default`)
        else:
            data[name] = _json_leaf(value)
    return data


def _all_nested_by_hash_key(items: tuple[Any, ...]) -> bool:
    for item in items:
        if not (isinstance(item, Frozen) and type(item).nested_by_hash_key):
            return False
    return True


def _written_as_they_are(values: Collection[Any]) -> bool:
    """
    Whether the encoder writes `values` (of one model) as they are, in any text: exact scalars, plain Frozen
    models (it calls back for them) and tuples of such, at any depth. The types are gathered in C, the quick
    check the common case needs; anything else (a message, a leaf, an Enum that is also an int) says False.
    """
    kinds = set(map(type, values))
    if kinds <= _PLAIN_KINDS:
        return True
    if not kinds <= _PLAIN_KINDS_AND_TUPLE:
        return False
    for value in values:  # the tuples: most hold only scalars (checked in C), the rest is looked into
        if type(value) is tuple and not _PLAIN_KINDS.issuperset(map(type, value)) and not _written_as_they_are(value):
            return False
    return True


def _referencing_value(value: Any, longer_hash_keys: bool) -> Any:
    """A value inside a tuple of a referencing text, as the encoder may write it."""
    value_type = type(value)
    if value_type in _JSON_SCALARS:
        return value
    if value_type is tuple:
        return [_referencing_value(item, longer_hash_keys) for item in value]
    if isinstance(value, Frozen):
        return value  # the encoder calls back for it
    return _json_leaf(value)


def _make_referencing_default(longer_hash_keys: bool) -> Callable[[Any], Any]:
    def referencing_default(value: Any) -> Any:
        if type(value) is Frozen:  # a nested dict: every field but class_ is an extra one
            extra = value.__pydantic_extra__
            if extra is not None and (value.__dict__ is _PLAIN_DICT or _written_as_they_are(extra.values())):
                return {"class_": "Frozen", **extra}
            return _referencing_fields(value, longer_hash_keys)
        if isinstance(value, Frozen):
            if type(value).nested_by_hash_key:  # one inside a tuple
                return {"__hash_key": reference_key(value, longer_hash_keys)}
            return _referencing_fields(value, longer_hash_keys)
        raise TypeError(f"{type(value).__name__} is not a value a Frozen can hold")

    return referencing_default


def reference_key(model: Frozen, longer_hash_keys: bool) -> str:
    """
    The hash key a text referencing `model` embeds for it, computing it (and those below it) if needed: recursion
    for shallow nesting, the fastest way; an explicit stack past a few levels, so chains of any depth work.
    """
    if type(model).hash_key_for is not _FROZEN_HASH_KEY_FOR:  # a subclass that computes its keys its own way
        return model.hash_key_for(longer_hash_keys)
    try:
        if longer_hash_keys:
            return _get_long_digest(model)
        return _get_digest(model)[:SHORT_HASH_KEY_LENGTH]
    except AttributeError:
        pass
    # Shallow nesting (the common case) is hashed recursively, the fastest way; past a few levels the
    # models below are hashed children first from an explicit stack, so reference chains of any depth work.
    depth = getattr(_nesting, "depth", 0)
    if depth < _RECURSIVE_HASHING_DEPTH:
        _nesting.depth = depth + 1
        try:
            digest = model._compute_digest(longer_hash_keys)  # not cached: checked above
        finally:
            _nesting.depth = depth
        return digest if longer_hash_keys else digest[:SHORT_HASH_KEY_LENGTH]
    for nested in referenced_models_below(model, lambda each: each.hash_key_cached(longer_hash_keys)):
        nested.hash_key_for(longer_hash_keys)  # the models it references are hashed already: no recursion
    return model.hash_key_for(longer_hash_keys)


_RECURSIVE_HASHING_DEPTH = 32
_nesting = threading.local()  # how deep the current thread is in recursive hashing


def referenced_models_below(root: Frozen, skip: Callable[[Frozen], bool] | None = None) -> Iterator[Frozen]:
    """
    The models `nested_by_hash_key` (messages) below `root`, depth-first, children before their parents, each
    instance once. One for which `skip(model)` is true is left out with everything below it. Iterative (chains of
    any depth); ValueError on a reference cycle.
    """
    on_path = {id(root)}
    seen: set[int] = set()
    stack = [(root, _referenced_models_in(root))]
    while stack:
        parent, children = stack[-1]
        for child in children:
            child_id = id(child)
            if child_id in on_path:
                raise ValueError(
                    f"{type(child).__name__} {str(child)[:40]!r} contains itself: a reference cycle cannot be hashed"
                )
            if child_id in seen or (skip is not None and skip(child)):
                continue
            seen.add(child_id)
            on_path.add(child_id)
            stack.append((child, _referenced_models_in(child)))
            break
        else:
            stack.pop()
            on_path.discard(id(parent))
            if stack:
                yield parent


def _referenced_models_in(model: Frozen) -> Iterator[Frozen]:
    """The models `nested_by_hash_key` that `model` holds in its fields, plain models and tuples, not below."""
    stack: list[Iterator[Any]] = [(value for _, value in model.frozen_fields_and_values())]
    while stack:
        for value in stack[-1]:
            if type(value) in _JSON_SCALARS:
                continue
            if isinstance(value, Frozen):
                if type(value).nested_by_hash_key:
                    yield value
                else:
                    stack.append(value for _, value in value.frozen_fields_and_values())
                    break
            elif type(value) is tuple:
                stack.append(iter(value))
                break
        else:
            stack.pop()


_JSON_SCALARS = frozenset((str, int, float, bool, type(None)))
_PLAIN_KINDS = _JSON_SCALARS | {Frozen}  # what the encoder writes (a plain Frozen: through its callback)
_PLAIN_KINDS_AND_TUPLE = _PLAIN_KINDS | {tuple}


def _json_inline(model: Frozen) -> dict[str, Any]:
    """The JSON-ready dict of `model`, nested models (messages too) written out in full."""
    data: dict[str, Any] = {}
    for name, value in model.__dict__.items():
        if name[0] != "_":  # `_x` in `__dict__` was set by hand on the instance: not a field
            data[name] = value if type(value) in _JSON_SCALARS else _json_inline_value(value)
    extra = model.__pydantic_extra__
    if extra:
        for name, value in extra.items():
            data[name] = value if type(value) in _JSON_SCALARS else _json_inline_value(value)
    return data


def to_json_form(value: Any) -> Any:
    """
    A frozen value as JSON data: scalars as they are, tuples as lists, Frozen models as dicts (nested
    models written out in full), leaves in their one-key forms (see the module docstring).
    Raises TypeError for a value a Frozen cannot hold.
    """
    return _json_inline_value(value)


def _json_inline_value(value: Any) -> Any:
    value_type = type(value)
    if value_type in _JSON_SCALARS:
        return value
    if value_type is tuple:
        return [item if type(item) in _JSON_SCALARS else _json_inline_value(item) for item in value]
    if isinstance(value, Frozen):
        return _json_inline(value)
    return _json_leaf(value)


_inline_text = _make_json_text(_inline_default)
_REFERENCING_TEXT = (
    _make_json_text(_make_referencing_default(False)),
    _make_json_text(_make_referencing_default(True)),
)


# ============================================================== referencing texts, by shape
# The text of a model referenced by hash key (a message) is the one written most: a store writes it for every
# message. Most messages hold strings, None, ints and other messages, and the messages of one kind have the same
# fields in the same order: the same "shape". A writer made for a shape puts such a text together in one
# expression, each `"name": value` piece in the sorted order of the names, several times faster than the encoder
# (which walks and sorts a dict each time). A value a writer does not write itself (a nested plain model, a leaf, a
# tuple of neither only scalars nor only messages) hands the model to the general path (`_referencing_fields` and
# the encoder), which is the oracle: tests/test_frozen_shape_writers.py holds the two byte-for-byte equal.

_ShapeWriter = Callable[[tuple[Any, ...], Frozen, bool], "str | None"]


def _referencing_text(model: Frozen, longer_hash_keys: bool) -> str:
    """The text of a model `nested_by_hash_key`: the models it holds that are `nested_by_hash_key` as hash keys."""
    own = model.__dict__
    extra = model.__pydantic_extra__
    shape = (*own, *extra) if extra else tuple(own)
    writer = _shape_writers.get(shape) or _shape_writer(shape)
    if writer is not _GENERAL_PATH:
        text = writer((*own.values(), *extra.values()) if extra else tuple(own.values()), model, longer_hash_keys)
        if text is not None:
            return text
        _handed_over(shape)
    return _REFERENCING_TEXT[longer_hash_keys](_referencing_fields(model, longer_hash_keys))


def _general_path(values: tuple[Any, ...], model: Frozen, longer_hash_keys: bool) -> None:
    return None


_GENERAL_PATH: _ShapeWriter = _general_path  # the "writer" of a shape without one: the general path writes it

_shape_writers: dict[tuple[Any, ...], _ShapeWriter] = {}
_shapes_seen: dict[tuple[Any, ...], int] = {}  # shapes without a writer yet -> how many of their texts were written
_shapes_handed_over: dict[tuple[Any, ...], int] = {}  # shapes with a writer -> how many texts it handed over
_HANDED_OVER_BEFORE_GENERAL_PATH = 8  # a shape whose writer hands over this many texts has the general path only
_SHAPE_WRITER_AFTER = 2  # a shape gets a writer with its second text (one-off shapes do not)
_MAX_SHAPE_WRITERS = 2048  # past it, the writers made so far are forgotten (and made again when needed)
_MAX_SHAPES_SEEN = 4096
_MAX_WRITTEN_FIELDS = 64  # a model with more fields is written by the general path


def _shape_writer(shape: tuple[Any, ...]) -> _ShapeWriter:
    """The writer of `shape` from its `_SHAPE_WRITER_AFTER`-th text on; `_GENERAL_PATH` before (and if it has none)."""
    seen = _shapes_seen.get(shape, 0) + 1
    if seen < _SHAPE_WRITER_AFTER:
        if len(_shapes_seen) >= _MAX_SHAPES_SEEN:
            _shapes_seen.clear()
        _shapes_seen[shape] = seen
        return _GENERAL_PATH
    _shapes_seen.pop(shape, None)
    if len(_shape_writers) >= _MAX_SHAPE_WRITERS:
        _shape_writers.clear()
    writer = _shape_writers[shape] = _make_shape_writer(shape)
    return writer


def _handed_over(shape: tuple[Any, ...]) -> None:
    """
    Count a text of `shape` its writer handed to the general path (a value of a kind the writer does not write, e.g.
    a nested dict, which a field of that shape usually holds): from the `_HANDED_OVER_BEFORE_GENERAL_PATH`-th on,
    the shape goes to the general path directly (no slower than before writers existed).
    """
    handed_over = _shapes_handed_over.get(shape, 0) + 1
    if handed_over < _HANDED_OVER_BEFORE_GENERAL_PATH:
        if len(_shapes_handed_over) >= _MAX_SHAPES_SEEN:
            _shapes_handed_over.clear()
        _shapes_handed_over[shape] = handed_over
        return
    _shapes_handed_over.pop(shape, None)
    _shape_writers[shape] = _GENERAL_PATH


def _make_shape_writer(shape: tuple[Any, ...]) -> _ShapeWriter:
    """
    A function `(values, model, longer_hash_keys) -> text` writing the referencing text of a model whose field
    values are `values`, the fields named as in `shape`, in that order, or None as soon as a value is one only the
    general path writes. `_GENERAL_PATH` for a shape it cannot write: over `_MAX_WRITTEN_FIELDS` fields, a name
    that is not a str, that starts with "_" (never a field's: an attribute set by hand on the instance, which is not
    written), that ends in a reserved suffix or that is both a declared and an extra field (set behind pydantic's
    back).
    """
    if (
        not 2 <= len(shape) <= _MAX_WRITTEN_FIELDS
        or len(set(shape)) != len(shape)
        or not all(type(name) is str and name[:1] != "_" and not name.endswith(_RESERVED_SUFFIXES) for name in shape)
    ):
        return _GENERAL_PATH
    ordered = sorted(shape)
    plain = tuple(f"{_encode_str(name)}: " for name in ordered)
    reference: list[str | None] = []
    references: list[str | None] = []
    for position, name in enumerate(ordered):
        # as a reference, `name__hash_key(s)`, it keeps its place in the order unless the next name sorts before that
        keeps_place = position + 1 == len(ordered) or name + "__hash_keys" < ordered[position + 1]
        reference.append(f"{_encode_str(name + '__hash_key')}: " if keeps_place else None)
        references.append(f"{_encode_str(name + '__hash_keys')}: " if keeps_place else None)
    make_writer = _writer_makers.get(len(shape)) or _writer_maker(len(shape))
    return make_writer(
        itemgetter(*map(shape.index, ordered)),
        plain,
        tuple(f"{text}null" for text in plain),
        tuple(f"{text}[]" for text in plain),
        tuple(reference),
        tuple(references),
    )


# One function per number of fields makes the writers of the shapes with that many fields: each writer gets the
# pieces of its names as closure cells; what it does with a value is the same for every shape:
_FIELD_PIECE = """
        if v{i}.__class__ is str:
            p{i} = k{i} + encode_str(v{i})
        elif v{i} is None:
            p{i} = n{i}
        elif v{i}.__class__ is int:
            p{i} = k{i} + int_text(v{i})
        else:
            if v{i}.__class__ is tuple:
                p{i} = tuple_piece(v{i}, k{i}, s{i}, longer_hash_keys) if v{i} else e{i}
            else:
                p{i} = other_piece(v{i}, k{i}, r{i}, model, longer_hash_keys)
            if p{i} is None:
                return None"""
_writer_makers: dict[int, Callable[..., _ShapeWriter]] = {}


def _writer_maker(count: int) -> Callable[..., _ShapeWriter]:
    """
    `make(pick, plain, null, empty, reference, references) -> writer` for shapes of `count` fields, compiled once:
    `pick` orders the values as their names sort, the others give, in that order, each name's piece as a plain
    field (`"name": `), with None, with an empty tuple, as a reference and as references (None if it cannot be).
    """

    def names(prefix: str) -> str:
        return "".join(f"{prefix}{index}, " for index in range(count))

    source = "\n".join(
        [
            "def make(pick, plain, null, empty, reference, references):",
            f"    {names('k')}= plain",
            f"    {names('n')}= null",
            f"    {names('e')}= empty",
            f"    {names('r')}= reference",
            f"    {names('s')}= references",
            "    def write(values, model, longer_hash_keys):",
            f"        {names('v')}= pick(values)",
            *(_FIELD_PIECE.format(i=index) for index in range(count)),
            f'        return f"{{{{{", ".join(f"{{p{index}}}" for index in range(count))}}}}}"',
            "    return write",
        ]
    )
    namespace: dict[str, Any] = {
        "encode_str": _encode_str,
        "int_text": int.__repr__,  # (what the encoder writes an int with)
        "tuple_piece": _tuple_piece,
        "other_piece": _other_piece,
    }
    exec(source, namespace)  # (no data in the source: only the number of fields)
    make = _writer_makers[count] = namespace["make"]
    return make


def _tuple_piece(value: tuple[Any, ...], plain: str, references: str | None, longer_hash_keys: bool) -> str | None:
    """
    The `"name": [...]` piece of a tuple as the general path writes it, `"name__hash_keys": [keys]` for one of
    messages (`references`: None if the writer cannot write that); None for one only the general path writes.
    """
    kinds = set(map(type, value))
    if kinds <= _JSON_SCALARS:
        return plain + _json_text(value)
    if references is None:
        return None
    own_keys = True  # whether every message keeps Frozen's hash_key_for
    for kind in kinds:  # (checked per class, not per item; an object that only claims to be a model fails here)
        if not (issubclass(kind, Frozen) and kind.nested_by_hash_key):
            return None
        own_keys = own_keys and kind.hash_key_for is _FROZEN_HASH_KEY_FOR
    if own_keys:  # hex digests: the JSON text of each is itself in quotes
        try:
            if longer_hash_keys:
                return f'{references}["{_QUOTED_KEYS_SEPARATOR.join(map(_get_long_digest, value))}"]'
            return f'{references}["{_QUOTED_KEYS_SEPARATOR.join(map(_short_key, map(_get_digest, value)))}"]'
        except AttributeError:  # not all of them known yet
            pass
    keys = list(map(reference_key, value, repeat(longer_hash_keys)))
    if not _STR_ONLY.issuperset(map(type, keys)):  # (a subclass's own `hash_key_for` may return anything)
        return None
    return f"{references}[{', '.join(map(_encode_str, keys))}]"


def _other_piece(value: Any, plain: str, reference: str | None, model: Frozen, longer_hash_keys: bool) -> str | None:
    """
    The piece of a value neither a str, None, an int nor a tuple as the general path writes it, a message as
    `"name__hash_key": key` (`reference`: None if the writer cannot write that); None for one only the general
    path writes.
    """
    kind = type(value)
    if kind is bool or kind is float:
        return plain + _json_text(value)
    if reference is None or not (isinstance(value, Frozen) and kind.nested_by_hash_key) or value is model:
        return None
    if kind.hash_key_for is _FROZEN_HASH_KEY_FOR:  # a key of our own: a hex digest, its JSON text is itself in quotes
        try:
            if longer_hash_keys:
                return f'{reference}"{_get_long_digest(value)}"'
            return f'{reference}"{_get_digest(value)[:SHORT_HASH_KEY_LENGTH]}"'
        except AttributeError:  # not known yet
            pass
    key = reference_key(value, longer_hash_keys)
    if type(key) is not str:  # (a subclass's own `hash_key_for` may return anything)
        return None
    return reference + _encode_str(key)


_encode_str = json.encoder.encode_basestring  # (what the encoder writes a str with: `_make_json_text`)
_STR_ONLY = frozenset((str,))
_QUOTED_KEYS_SEPARATOR = '", "'
_short_key = itemgetter(slice(SHORT_HASH_KEY_LENGTH))
