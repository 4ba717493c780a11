"""The request an LLM agent sends, in the provider's own shape: what is hashed, recorded and logged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from miniagents.messages import Message
from miniagents.promising.ext.frozen import Frozen

_SECRET_KEY_WORDS = ("key", "token", "secret", "authorization", "password")


@dataclass(frozen=True)
class LLMRequest:
    """
    One model call as the provider receives it.

    `payload` is JSON-shaped (model, messages and parameters in the provider's format) and never holds
    `stream`: a recording answers the same request streamed or not. `messages` are the agent's input.
    """

    provider: str
    agent_alias: str
    stream: bool
    payload: dict[str, Any]
    messages: tuple[Message, ...] = field(repr=False)

    @cached_property
    def hash_key(self) -> str:
        """
        The framework's `hash_key` of a Frozen built from the provider and the payload.

        Raises ValueError when a parameter is not plain data (and so cannot be part of a key).
        """
        try:
            return Frozen(provider=self.provider, request=self.payload).hash_key
        except ValueError as exc:
            raise ValueError(
                f"this {self.provider} request cannot be hashed (a parameter is not plain data): {exc}"
            ) from None

    @property
    def model(self) -> str:
        return str(self.payload.get("model"))

    @property
    def parameters(self) -> dict[str, Any]:
        """The payload without the model and the conversation."""
        return {name: value for name, value in self.payload.items() if name not in ("model", "messages")}

    def first_user_text(self, limit: int = 80) -> str:
        """The start of the first user message (to name a request in an error)."""
        for message in self.messages:
            if message_role(message) == "user":
                text = " ".join(str(message).split())
                return text if len(text) <= limit else text[: limit - 1] + "…"
        return ""


def message_role(message: Message, default: str = "user") -> str:
    """The role of a message (`role` field), or `default` when it has none."""
    role = getattr(message, "role", None)
    return role if isinstance(role, str) else default


def plain_data(value: Any) -> Any:
    """A frozen value turned back into plain JSON data (Frozen -> dict without `class_`, tuple -> list)."""
    if isinstance(value, Frozen):
        return {name: plain_data(item) for name, item in value.frozen_fields_and_values()}
    if isinstance(value, (tuple, list)):
        return [plain_data(item) for item in value]
    return value


def redact_secrets(value: Any) -> Any:
    """A copy of plain data whose credential-looking entries (api keys, tokens, auth headers) are `***`."""
    if isinstance(value, dict):
        return {
            name: "***"
            if any(word in name.lower() for word in _SECRET_KEY_WORDS) and isinstance(item, str)
            else redact_secrets(item)
            for name, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact_secrets(item) for item in value]
    return value


_MIN_SECRET_LENGTH = 8  # shorter "keys" (local servers take any) are not secrets, and would garble the text


def scrub_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret (8 characters or more) replaced by `***`."""
    for secret in secrets:
        if secret and len(secret) >= _MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return text
