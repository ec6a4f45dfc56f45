"""Schemas of /v1/clock."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.api.validators import JsonNumber

# Ten years at most per call: far beyond any retention, retry or schedule htq keeps.
MAX_ADVANCE_S = 10 * 365 * 86400
MIN_ADVANCE_S = 0.001  # the clock's unit


class ClockSchema(Schema):
    now = fields.String(required=True, metadata={"format": "date-time", "example": "2026-11-23T08:21:59.123Z"})
    virtual = fields.Boolean(required=True, metadata={"description": "true with HTQ_CLOCK=virtual"})


class AdvanceSchema(Schema):
    seconds = JsonNumber(required=True, validate=validate.Range(min=MIN_ADVANCE_S, max=MAX_ADVANCE_S),
                         metadata={"description": "how far to move time ahead", "example": 259200})


class AdvancedSchema(Schema):
    now = fields.String(required=True, metadata={"format": "date-time", "example": "2026-11-26T08:21:59.123Z"})
