"""The request an LLM agent sends, in the provider's own shape: what is hashed, recorded and logged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
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
    `stream` (nor the options of the SDK client: keys, retries, timeouts). `messages` are the agent's input.
    """

    provider: str
    agent_alias: str
    stream: bool
    payload: dict[str, Any]
    messages: tuple[Message, ...] = field(repr=False)

    @cached_property
    def hash_key(self) -> str:
        """
        The framework's `hash_key` of a Frozen built from the provider, the payload and `stream`.

        A streamed request and the same request not streamed have different keys (their responses are
        chunked differently). `stream: false` is part of the key of a non-streamed request; a streamed one
        keeps the key it always had, so recordings made before `stream` was part of the key still answer.

        Raises ValueError when a parameter is not plain data (and so cannot be part of a key).
        """
        fields: dict[str, Any] = {"provider": self.provider, "request": self.payload}
        if not self.stream:
            fields["stream"] = False
        try:
            return Frozen(**fields).hash_key
        except ValueError as exc:
            raise ValueError(
                f"this {self.provider} request cannot be hashed (a parameter is not plain data): {exc}"
            ) from None

    def streamed(self) -> LLMRequest:
        """The same request, streamed."""
        return replace(self, stream=True)

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


def message_text(message: Message, provider: str) -> str:
    """
    The text of a message, as a provider receives it (a string `content` field stands in for a missing text).

    Raises ValueError for a message without text: it would reach the model as its JSON dump.
    """
    if message.text is not None or message.text_template is not None:
        return str(message)
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return content
    raise ValueError(
        f"a {type(message).__name__} (role {message_role(message)!r}) without text cannot be sent to {provider}: "
        f"it would reach the model as its JSON dump ({str(message)[:80]!r}); give it `text`, or `content` parts"
    )


def content_parts(message: Message) -> list[dict[str, Any]] | None:
    """
    The `content` field of a message when it holds typed parts / blocks (`[{"type": "text", ...}, ...]`), as
    plain dicts without their None values; None when the message has no such field (or a string one).

    Raises ValueError when `content` holds something else.
    """
    content = getattr(message, "content", None)
    if content is None or isinstance(content, str) or content == ():
        return None
    if isinstance(content, tuple) and all(
        isinstance(part, Frozen) and isinstance(getattr(part, "type", None), str) for part in content
    ):
        return [{name: item for name, item in plain_data(part).items() if item is not None} for part in content]
    raise ValueError(
        f"the `content` of a {type(message).__name__} (role {message_role(message)!r}) must be a string or a list "
        f"of parts that each have a `type` (such as {{'type': 'text', 'text': ...}}), not {plain_data(content)!r:.120}"
    )


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
