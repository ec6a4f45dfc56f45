"""The quick path of the batch schemas accepts only what the nested schemas accept, with the same result."""
from __future__ import annotations

import itertools
import math

import pytest
from marshmallow import ValidationError

from app.api.queues.schemas import (
    AckBatchSchema,
    AckItemSchema,
    BatchMessageSchema,
    BatchPushSchema,
    _quick_ack,
    _quick_message,
)

VALUES = [None, 0, 1, -1, 1.5, -0.0, True, False, "1", "", "x", "r", "x" * 200, "x" * 201, [], {},
          math.inf, -math.inf, math.nan, 10**20]


def candidate_items():
    yield from ({}, "x", 1, None, [])
    for key, value in itertools.product(["body", "delay", "other", "id", "receipt"], VALUES):
        yield {key: value}
    for first, second in itertools.product(VALUES, VALUES):
        yield {"body": first, "delay": second}
        yield {"id": first, "receipt": second}
        yield {"body": first, "delay": second, "extra": 1}


@pytest.mark.parametrize("schema,quick", [(BatchMessageSchema(), _quick_message), (AckItemSchema(), _quick_ack)])
def test_quick_check_agrees_with_the_schema(schema, quick):
    accepted = 0
    for item in candidate_items():
        loaded = quick(item)
        if loaded is None:
            continue
        accepted += 1
        full = schema.load(item)  # raises if the quick check let through what the schema refuses
        assert loaded == full and {k: type(v) for k, v in loaded.items()} == {k: type(v) for k, v in full.items()}
    assert accepted > 10


def test_a_list_with_one_bad_item_gets_the_schema_errors():
    with pytest.raises(ValidationError) as error:
        BatchPushSchema().load({"messages": [{"body": 1}, {"body": 2, "delay": -1}, {"delay": 1}]})
    assert set(error.value.messages["messages"]) == {1, 2}
    assert "delay" in error.value.messages["messages"][1] and "body" in error.value.messages["messages"][2]
    with pytest.raises(ValidationError) as error:
        AckBatchSchema().load({"messages": [{"id": "a"}, {"id": 5}]})
    assert set(error.value.messages["messages"]) == {1}
