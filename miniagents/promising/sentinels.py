"""Sentinels: unique marker values that refuse to be used as booleans."""

from __future__ import annotations


class Sentinel:
    """A named unique marker. `bool(sentinel)` raises, so `if value:` can never misread one."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __bool__(self) -> bool:
        raise RuntimeError(f"Sentinel {self._name} must not be used in a boolean context")

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


NO_VALUE = Sentinel("NO_VALUE")
DEFAULT = Sentinel("DEFAULT")
FAILED = Sentinel("FAILED")
END_OF_QUEUE = Sentinel("END_OF_QUEUE")
AWAIT = Sentinel("AWAIT")
CLEAR = Sentinel("CLEAR")
