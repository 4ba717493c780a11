"""
Token usage: what the providers report spending (their `usage`), read in one shape and added up by model.

Each resolved LLM reply carries its provider's `usage` in the provider's own shape (OpenAI `prompt_tokens` /
`completion_tokens`, Anthropic `input_tokens` / `output_tokens` plus its cache counts). `usage_of()` reads any
of them as input and output tokens; `TokenUsage` adds them up by model. A MiniAgents context keeps the
totals of its run as `context.token_usage` (every LLM reply of the run is added when it resolves).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Anthropic reports cached prompt tokens apart from `input_tokens`; OpenAI counts them in `prompt_tokens`
_INPUT_FIELDS = ("prompt_tokens", "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_OUTPUT_FIELDS = ("completion_tokens", "output_tokens")


@dataclass(frozen=True)
class ModelUsage:
    """Tokens spent on one model: `input_tokens` (the prompts), `output_tokens` (the replies), `replies` counted."""

    input_tokens: int = 0
    output_tokens: int = 0
    replies: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: ModelUsage) -> ModelUsage:
        return ModelUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.replies + other.replies,
        )


def usage_of(usage: Any) -> ModelUsage | None:
    """
    A provider's `usage` (a mapping, or an object with those attributes) as a ModelUsage of one reply, or None
    when it holds no token count (None, an empty mapping, a shape no provider uses).
    """
    if usage is None:
        return None

    def read(name: str) -> Any:
        return usage.get(name) if isinstance(usage, Mapping) else getattr(usage, name, None)

    found = False
    counts = [0, 0]
    for index, names in enumerate((_INPUT_FIELDS, _OUTPUT_FIELDS)):
        for name in names:
            value = read(name)
            if isinstance(value, int) and not isinstance(value, bool):
                counts[index] += value
                found = True
    return ModelUsage(counts[0], counts[1], 1) if found else None


class TokenUsage:
    """
    Token totals by model, added to as replies come in: `add(model, usage)`. `input_tokens`, `output_tokens`
    and `replies` are the totals over every model; `by_model()` splits them. Iterating gives
    `(model, ModelUsage)` pairs in the order the models were first seen.
    """

    __slots__ = ("_by_model",)

    def __init__(self) -> None:
        self._by_model: dict[str, ModelUsage] = {}

    def add(self, model: str | None, usage: Any) -> ModelUsage | None:
        """
        Add one reply's provider `usage` (any provider's shape, see `usage_of`) under `model` ("" when unknown).
        Returns what was added, or None when `usage` holds no token count (then nothing changes).
        """
        counted = usage_of(usage)
        if counted is not None:
            key = model or ""
            known = self._by_model.get(key)
            self._by_model[key] = counted if known is None else known + counted
        return counted

    def by_model(self) -> dict[str, ModelUsage]:
        """A copy of the totals, one entry per model."""
        return dict(self._by_model)

    @property
    def total(self) -> ModelUsage:
        """The totals over every model."""
        total = ModelUsage()
        for usage in self._by_model.values():
            total = total + usage
        return total

    @property
    def input_tokens(self) -> int:
        return self.total.input_tokens

    @property
    def output_tokens(self) -> int:
        return self.total.output_tokens

    @property
    def replies(self) -> int:
        """How many replies reported a usage."""
        return self.total.replies

    def as_dict(self) -> dict[str, dict[str, int]]:
        """`{model: {"input_tokens": i, "output_tokens": o, "replies": r}}` (JSON-ready)."""
        return {
            model: {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "replies": u.replies}
            for model, u in self._by_model.items()
        }

    def __iter__(self) -> Iterator[tuple[str, ModelUsage]]:
        return iter(list(self._by_model.items()))

    def __bool__(self) -> bool:
        return bool(self._by_model)

    def __repr__(self) -> str:
        total = self.total
        return (
            f"<TokenUsage: {total.input_tokens} input + {total.output_tokens} output tokens, "
            f"{total.replies} replies, {len(self._by_model)} model(s)>"
        )
