"""
Structured output: `output_type=` on an LLM agent (a Message subclass, or any pydantic model class).

The model is asked for JSON matching the type's schema (OpenAI: a `json_schema` response format; Anthropic: a
forced tool named after the type). The reply's tokens stream that JSON; when the reply is complete it is
validated. A valid reply resolves to an instance of the Message subclass (its fields filled, its `text` the JSON)
or, for a plain pydantic model, to the provider's message class extended with an `output` property that returns
the validated model. An invalid one stays the provider's plain message, and the agent sends the errors back.

Also the JSON-schema and validation-error helpers the tools share.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from pydantic import BaseModel, ValidationError, create_model

from miniagents.ext.llm.llm_messages import ToolCallRequest
from miniagents.ext.llm.llm_request import plain_data
from miniagents.messages import Message

__all__ = [
    "ModelTurn",
    "OutputSpec",
    "OutputValidationError",
    "clean_schema",
    "describe_validation_error",
    "strict_schema",
]

_DATA_KEYWORDS = frozenset({"default", "enum", "const", "examples"})  # their values are data, not schemas
_SCHEMA_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


class OutputValidationError(ValueError):
    """
    The model's answer did not validate against `output_type`, on the first attempt and on every retry.
    `fields` names the failing fields (dotted paths, `items[0].name`), `errors` holds pydantic's error dicts.
    """

    def __init__(self, message: str, fields: tuple[str, ...], errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(message)
        self.fields = fields
        self.errors = list(errors)


def describe_validation_error(error: ValidationError) -> tuple[str, tuple[str, ...]]:
    """A short text naming each failing field and why, and the failing fields' dotted paths."""
    parts: list[str] = []
    fields: list[str] = []
    for item in error.errors(include_url=False):
        path = _dotted(item.get("loc", ()))
        fields.append(path)
        if not path:
            parts.append(f"{item['msg']}")
            continue
        shown = "" if item.get("type") == "missing" else f" (got {item.get('input')!r:.60})"
        parts.append(f"{path}: {item['msg']}{shown}")
    return "; ".join(parts), tuple(fields)


def _dotted(location: tuple[Any, ...] | list[Any]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema without the `title`s pydantic generates (noise for a model, and tokens)."""

    def walk(node: Any, in_map: bool = False) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if in_map:  # {name: schema}
            return {name: walk(value) for name, value in node.items()}
        return {
            key: value if key in _DATA_KEYWORDS else walk(value, key in _SCHEMA_MAPS)
            for key, value in node.items()
            if not (key == "title" and isinstance(value, str))
        }

    return walk(schema)


def strict_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """
    The schema with `additionalProperties: false` on every object that lists its properties, and whether it
    qualifies for OpenAI's strict mode (every object lists all its properties as required and allows no others).
    """
    strict = True

    def walk(node: Any, in_map: bool = False) -> Any:
        nonlocal strict
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        if in_map:
            return {name: walk(value) for name, value in node.items()}
        result = {
            key: value if key in _DATA_KEYWORDS else walk(value, key in _SCHEMA_MAPS) for key, value in node.items()
        }
        if node.get("type") == "object":
            properties = node.get("properties")
            if isinstance(properties, dict):
                result.setdefault("additionalProperties", False)
                if set(node.get("required") or ()) != set(properties) or result["additionalProperties"] is not False:
                    strict = False
            else:
                strict = False  # a free-form object (dict[str, X]) has no strict form
        return result

    return walk(schema), strict


@dataclass
class ModelTurn:
    """What one model turn of an LLM call asked for, and how its answer validated (when an output type is set)."""

    tool_calls: tuple[ToolCallRequest, ...] = ()
    output_call: ToolCallRequest | None = None  # the call of the output tool that carried the answer (Anthropic)
    output_error: ValidationError | None = None
    output: BaseModel | None = None


class OutputSpec:
    """
    How one output type is asked for and checked: its name (also the name of the Anthropic output tool), a
    description, the JSON schema (and whether it fits OpenAI's strict mode), and the validation of an answer.

    Raises TypeError for a type that is neither a Message subclass nor a pydantic model class, ValueError for a
    Message subclass that declares no fields of its own.
    """

    _cache: ClassVar[dict[type, OutputSpec]] = {}

    def __init__(self, output_type: type[BaseModel]) -> None:
        self.output_type = output_type
        self.is_message = issubclass(output_type, Message)
        if self.is_message:
            fields = _declared_output_fields(output_type)
            if not fields:
                raise ValueError(
                    f"output_type {output_type.__name__} declares no fields of its own (only the fields every message "
                    "has); declare the fields the model should fill, e.g. `city: str`"
                )
            definitions: dict[str, Any] = {name: (field.annotation, field) for name, field in fields.items()}
            self.validation_model: type[BaseModel] = create_model(output_type.__name__, **definitions)
        else:
            self.validation_model = output_type
        self.name = re.sub(r"[^a-zA-Z0-9_-]", "_", output_type.__name__)[:64]
        own_doc = output_type.__dict__.get("__doc__")
        self.description = " ".join(own_doc.split()) if isinstance(own_doc, str) and own_doc.strip() else ""
        # the JSON schema (`additionalProperties: false` on its objects), and whether it fits OpenAI's strict mode
        self.schema, self.strict = strict_schema(clean_schema(self.validation_model.model_json_schema()))

    @classmethod
    def of(cls, output_type: Any, agent_alias: str) -> OutputSpec | None:
        """The spec of `output_type` (None for None), made once per type."""
        if output_type is None:
            return None
        if not (isinstance(output_type, type) and issubclass(output_type, BaseModel)):
            raise TypeError(
                f"{agent_alias}: output_type must be a Message subclass or a pydantic model class, got "
                f"{output_type!r:.80}"
            )
        spec = cls._cache.get(output_type)
        if spec is None:
            spec = cls._cache[output_type] = cls(output_type)
        return spec

    @property
    def tool_description(self) -> str:
        """The description of the Anthropic output tool."""
        return self.description or f"Give the final answer as a {self.name}: call this once you have everything."

    def validate(self, answer: str) -> BaseModel:
        """The answer (JSON text, possibly in a markdown code fence) validated; raises pydantic's ValidationError."""
        fenced = re.fullmatch(r"\s*```[\w-]*\s*\n(.*)\n\s*```\s*", answer, flags=re.DOTALL)
        return self.validation_model.model_validate_json(fenced.group(1) if fenced else answer)

    def finish(self, reply: Message, turn: ModelTurn, via_tool: bool) -> Message:
        """
        The resolved message of a model turn: an output instance when the turn answered with valid JSON, else
        `reply` itself (a turn that called other tools, or an invalid answer, recorded in `turn.output_error`).
        `via_tool`: the provider answers through the output tool (Anthropic), not as text.
        """
        output_calls = [call for call in turn.tool_calls if via_tool and call.name == self.name]
        if len(output_calls) < len(turn.tool_calls):
            return reply  # other tools were called: a round of tool calls, not the answer
        turn.output_call = output_calls[0] if output_calls else None
        answer = turn.output_call.arguments if turn.output_call is not None else (reply.text or "")
        try:
            value = self.validate(answer)
            message = self._output_message(reply, value, via_output_tool=turn.output_call is not None)
        except ValidationError as exc:
            turn.output_error = exc
            return reply
        turn.output = value
        return message

    def _output_message(self, reply: Message, value: BaseModel, via_output_tool: bool) -> Message:
        fields = dict(reply.frozen_fields_and_values())
        if via_output_tool:
            fields.pop("tool_calls", None)  # answered by the output tool: nothing is left to call
            fields["output_tool"] = self.name  # so that, as history, it goes back as text (no result follows)
        if self.is_message:
            fields.update({name: getattr(value, name) for name in type(value).model_fields})
            return cast(Message, self.output_type(**fields))  # a Message subclass here
        fields["output_data"] = value.model_dump(mode="json")
        return message_class_with_output(type(reply), self.output_type)(**fields)

    def retry_text(self, error: ValidationError) -> str:
        """What the model is told when its answer did not validate."""
        summary, _ = describe_validation_error(error)
        return f"Your answer does not validate as {self.name}: {summary}. Answer again, with JSON that fits the schema."

    def exhausted_error(
        self, agent_alias: str, model: str, attempts: int, error: ValidationError
    ) -> OutputValidationError:
        """The error of a call whose answers never validated."""
        summary, fields = describe_validation_error(error)
        return OutputValidationError(
            f"{agent_alias}: the answer of model {model!r} does not validate as {self.output_type.__name__} after "
            f"{attempts} attempt(s) (output_retries={attempts - 1}): {summary}",
            fields,
            error.errors(include_url=False),
        )


def _declared_output_fields(output_type: type[BaseModel]) -> dict[str, Any]:
    """The fields of a Message subclass declared outside MiniAgents (its own content; the rest is metadata)."""
    declared: set[str] = set()
    for klass in output_type.__mro__:
        if klass.__module__.split(".")[0] == "miniagents" or klass.__module__ in ("pydantic.main", "builtins"):
            continue
        declared.update(inspect.get_annotations(klass))
    return {name: field for name, field in output_type.model_fields.items() if name in declared}


_OUTPUT_CLASSES: dict[tuple[type, type], type[Message]] = {}


def message_class_with_output(base: type[Message], output_type: type[BaseModel]) -> type[Message]:
    """
    `base` (a provider's message class) extended with an `output` property returning `output_type` validated
    from the message's `output_data`; named `Base[OutputType]`, made once per pair.
    """
    made = _OUTPUT_CLASSES.get((base, output_type))
    if made is None:

        def output(self: Message) -> Any:
            return output_type.model_validate(plain_data(getattr(self, "output_data", None)))

        output.__doc__ = f"The answer, validated as {output_type.__name__}."
        namespace = {
            "__module__": base.__module__,
            "__qualname__": f"{base.__qualname__}[{output_type.__name__}]",
            "__doc__": f"{base.__doc__ or ''}\n\nIts `output` is the answer as a {output_type.__name__}.",
            "output": property(output),
        }
        made = _OUTPUT_CLASSES[(base, output_type)] = type(
            f"{base.__name__}[{output_type.__name__}]", (base,), namespace
        )
    return made
