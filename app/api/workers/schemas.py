"""Schemas of /v1/workers (for OpenAPI)."""
from __future__ import annotations

from marshmallow import Schema, fields


class WorkerSchema(Schema):
    name = fields.String(required=True, metadata={"description": "the Celery worker's node name"})
    host = fields.String(required=True)
    pid = fields.Integer(required=True, metadata={"description": "of the worker's main process"})
    started_at = fields.String(required=True, metadata={"format": "date-time"})
    last_seen_at = fields.String(required=True, metadata={"format": "date-time",
                                                          "description": "its latest heartbeat"})


class WorkerListSchema(Schema):
    items = fields.List(fields.Nested(WorkerSchema), required=True)
