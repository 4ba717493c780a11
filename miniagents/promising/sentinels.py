"""
Sentinels: unique marker values that refuse to be used as booleans.

The framework's own are members of an Enum (`PromisingSentinel`), so a type checker can narrow them: a
parameter typed `T | NoValue` is a `T` after `if value is not NO_VALUE:`. `Sentinel("NAME")` makes a marker
of your own.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal, TypeAlias


class Sentinel:
    """A named unique marker. `bool(sentinel)` raises, so `if value:` can never misread one."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __bool__(self) -> bool:
        raise RuntimeError(f"Sentinel {self._name} must not be used in a boolean context")

    def __repr__(self) -> str:
        return self._name


class PromisingSentinel(Sentinel, Enum):
    """The framework's sentinels, one Enum member each (pickled by name, narrowed by type checkers)."""

    NO_VALUE = "NO_VALUE"
    DEFAULT = "DEFAULT"
    FAILED = "FAILED"
    END_OF_QUEUE = "END_OF_QUEUE"
    AWAIT = "AWAIT"
    CLEAR = "CLEAR"

    def __repr__(self) -> str:
        return self.value


NO_VALUE = PromisingSentinel.NO_VALUE
DEFAULT = PromisingSentinel.DEFAULT
FAILED = PromisingSentinel.FAILED
END_OF_QUEUE = PromisingSentinel.END_OF_QUEUE
AWAIT = PromisingSentinel.AWAIT
CLEAR = PromisingSentinel.CLEAR

NoValue: TypeAlias = Literal[PromisingSentinel.NO_VALUE]
Default: TypeAlias = Literal[PromisingSentinel.DEFAULT]
