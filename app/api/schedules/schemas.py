"""Schemas of /v1/schedules: what a client may send, and what it gets back (for OpenAPI)."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.api.requests.schemas import RequestCreateSchema
from app.api.validators import JsonBoolean, JsonNumber
from app.core.model import NAME_PATTERN, NAME_RULE
from app.core.schedules import MAX_EVERY_S

_NAME = validate.Regexp(f"^{NAME_PATTERN}$", error=NAME_RULE.replace("{", "{{").replace("}", "}}"))
TARGET_KINDS = ("request", "queue", "batch")
EXAMPLE = {"cron": "30 2 * * mon-fri", "timezone": "Europe/Berlin",
           "target": {"request": {"url": "https://example.com/report", "method": "POST", "json": {"daily": True}}}}


class ScheduledRequestSchema(RequestCreateSchema):
    """A /v1/requests body; `delay` counts from each tick, and there is no `eta`."""

    class Meta:
        unknown = RAISE
        exclude = ("eta",)


class TargetSchema(Schema):
    class Meta:
        unknown = RAISE

    request = fields.Nested(ScheduledRequestSchema, metadata={"description": "a /v1/requests body"})
    queue = fields.String(validate=_NAME, metadata={"description": "queue name (created by its first message)"})
    message = fields.Raw(allow_none=True, metadata={"description": "any JSON, with `queue`"})
    batch = fields.String(validate=_NAME, metadata={"description": "a configured batch's name"})
    record = fields.Raw(allow_none=True, metadata={"description": "any JSON, with `batch`"})

    @validates_schema
    def one_kind(self, data, **kwargs):
        kinds = [kind for kind in TARGET_KINDS if kind in data]
        if len(kinds) != 1:
            raise ValidationError('Give exactly one of {"request"}, {"queue", "message"}, {"batch", "record"}.',
                                  "_schema")
        if "request" in data and ({"message", "record"} & data.keys()):
            raise ValidationError("Only with queue or batch.", "message" if "message" in data else "record")
        if "queue" in data and "record" in data:
            raise ValidationError("Only with batch.", "record")
        if "batch" in data and "message" in data:
            raise ValidationError("Only with queue.", "message")
        if "queue" in data and "message" not in data:
            raise ValidationError("Give the message to push.", "message")
        if "batch" in data and "record" not in data:
            raise ValidationError("Give the record to append.", "record")


class SchedulePutSchema(Schema):
    class Meta:
        unknown = RAISE

    cron = fields.String(validate=validate.Length(1, 200),
                         metadata={"description": "5 fields: minute hour day-of-month month day-of-week"})
    every = JsonNumber(validate=validate.Range(1, MAX_EVERY_S), metadata={"description": "seconds between runs"})
    timezone = fields.String(load_default="UTC", validate=validate.Length(1, 64),
                             metadata={"description": "IANA name of the zone the cron fields are read in"})
    target = fields.Nested(TargetSchema, required=True)
    paused = JsonBoolean(load_default=False)

    @validates_schema
    def cron_or_every(self, data, **kwargs):
        if ("cron" in data) == ("every" in data):
            field = "every" if "cron" in data else "cron"
            raise ValidationError("Give cron or every, exactly one.", field)


RESOURCE_EXAMPLE = {**EXAMPLE, "name": "daily-report", "paused": False, "next_run_at": "2026-11-24T01:30:00.000Z",
                    "last_run_at": "2026-11-23T01:30:00.000Z", "last_run_id": "0mh2k3x9a1b2c3d4", "runs": 12,
                    "last_error": None, "created_at": "2026-11-11T10:00:00.000Z", "token_id": "env"}
RUN_EXAMPLE = {"id": "0mh2k3x9a1b2c3d4"}


class ScheduleSchema(Schema):
    name = fields.String()
    cron = fields.String()
    every = fields.Float()
    timezone = fields.String()
    target = fields.Dict()
    paused = fields.Boolean()
    next_run_at = fields.String(allow_none=True, metadata={"description": "null while paused"})
    last_run_at = fields.String(allow_none=True, metadata={"description": "the tick of the latest run"})
    last_run_id = fields.String(allow_none=True, metadata={"description": "request, message or record id"})
    runs = fields.Integer()
    last_error = fields.String(allow_none=True, metadata={"description": "why the latest tick made nothing"})
    created_at = fields.String()
    token_id = fields.String(allow_none=True, metadata={
        "description": "the id of the token that put it, which its runs carry (`env`: one of HTQ_API_TOKENS; "
                       "null with auth off)"})


class ScheduleListSchema(Schema):
    items = fields.List(fields.Nested(ScheduleSchema))


class RunIdSchema(Schema):
    id = fields.String()


