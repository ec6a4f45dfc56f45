"""Schemas of /v1/flows and /v1/destinations (for OpenAPI)."""
from __future__ import annotations

from marshmallow import Schema, fields


class FlowStateSchema(Schema):
    key = fields.String(required=True)
    rate = fields.Integer(required=True, allow_none=True, metadata={"description": "starts per period; null: none"})
    period = fields.Float(required=True, metadata={"description": "seconds"})
    parallelism = fields.Integer(required=True, allow_none=True,
                                 metadata={"description": "attempts at once; null: no limit"})
    waiting = fields.Integer(required=True, metadata={
        "description": "requests waiting for a slot or for the start time their rate reserved"})
    in_flight = fields.Integer(required=True, metadata={
        "description": "slots taken: attempts running, and slots kept for requests about to start"})


class DestinationSchema(Schema):
    destination = fields.String(required=True, metadata={"description": "host[:port] of the requests' url"})
    state = fields.String(required=True, metadata={"enum": ["closed", "open", "half_open"]})
    consecutive_failures = fields.Integer(required=True)
    open_until = fields.String(required=True, allow_none=True, metadata={
        "format": "date-time", "description": "open before this time, half-open (one probe) after it"})


class DestinationListSchema(Schema):
    items = fields.List(fields.Nested(DestinationSchema), required=True)
