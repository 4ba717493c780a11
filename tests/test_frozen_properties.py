"""
Property tests of the one rule for Frozen data (SPEC 3.7): over arbitrary nested JSON-like data, every
key and value is either accepted and round-trips exactly (value, `serialized` text, `hash_key`), or it is
rejected at construction with a ValueError/TypeError that names the field. An independent oracle
(tests/support/frozen_rules.py), written from the documented rules, says which of the two must happen.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miniagents import Message
from miniagents.promising.ext.frozen import Frozen, from_json_form
from tests.support.frozen_rules import acceptable_message, acceptable_value, keys, message_fields, names_a_field, values

# ------------------------------------------------------------------ properties

# FROZEN_PROPERTY_EXAMPLES=20000 for a longer search
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("FROZEN_PROPERTY_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY_SETTINGS
@given(fields=message_fields)
def test_message_is_rejected_at_construction_or_round_trips_through_serialize(fields: dict[str, Any]) -> None:
    try:
        message = Message(**fields)
    except (ValueError, TypeError) as error:
        assert not acceptable_message(fields), f"acceptable data refused: {error}"
        assert names_a_field(error, fields), f"the error names no field: {error}"
        return
    assert acceptable_message(fields), "data the rules refuse was accepted"

    rebuilt = Message(**message.serialize())

    assert rebuilt == message
    assert rebuilt.serialized == message.serialized
    assert rebuilt.hash_key == message.hash_key


@PROPERTY_SETTINGS
@given(fields=message_fields)
def test_accepted_message_round_trips_through_its_json_text(fields: dict[str, Any]) -> None:
    try:
        message = Message(**fields)
    except (ValueError, TypeError):
        return
    text = message.serialized

    rebuilt = Message(**from_json_form(json.loads(text)))

    assert rebuilt == message
    assert rebuilt.serialized == text
    assert rebuilt.hash_key == message.hash_key


@PROPERTY_SETTINGS
@given(fields=st.dictionaries(keys, values, max_size=4))
def test_nested_dict_is_rejected_at_construction_or_round_trips(fields: dict[str, Any]) -> None:
    try:
        model = Frozen(document=fields)
    except (ValueError, TypeError) as error:
        assert not acceptable_value(fields), f"acceptable data refused: {error}"
        assert "document" in str(error)
        return
    assert acceptable_value(fields)
    assert dict(model.document.frozen_fields_and_values()).keys() == {k for k in fields if k != "class_"}

    rebuilt = Frozen(**model.serialize())

    assert rebuilt == model
    assert rebuilt.hash_key == model.hash_key
