"""Schemas of /v1/requests: what a client may send, and what it gets back (for OpenAPI)."""
from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from app.api.openapi import MAXIMUM_SETTING, REQUEST_ID_PATTERN
from app.api.validators import EpochOrTime, HeaderMap, JsonBoolean, JsonNumber, StatusRule, TargetUrl, name_field
from app.core import gates
from app.core.model import REQUEST_STATUSES
from app.core.policy import FAILURE_KINDS
from config.settings import MAX_DELAY_LIMIT_S

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_BATCH = 100


def token_filter_field() -> fields.String:
    """A filter by the token that made a request (listing, bulk cancel)."""
    return fields.String(validate=validate.Regexp(f"^(env|{REQUEST_ID_PATTERN})$"),
                         metadata={"description": "only the requests this token made: its id, or `env` for the "
                                                  "tokens of HTQ_API_TOKENS", "example": "01JEAKQ7M3F4W2Z8V6T5R9N1PB"})


class RetrySchema(Schema):
    class Meta:
        unknown = RAISE

    max_attempts = fields.Integer(strict=True, validate=validate.Range(1, 100), metadata={"description": "default 10"})
    backoff_base = JsonNumber(validate=validate.Range(0, 86400), metadata={"description": "seconds, default 1"})
    backoff_max = JsonNumber(validate=validate.Range(0, 86400 * 7),
                               metadata={"description": "seconds, default 3600"})
    on = fields.List(StatusRule(kinds=FAILURE_KINDS), validate=validate.Length(1, 50),
                     metadata={"description": "answers and failures that are retried: codes, classes (\"5xx\"), "
                                              "\"network\", \"timeout\"; default [408, 425, 429, \"5xx\", "
                                              "\"network\", \"timeout\"]. Anything else that is not a success "
                                              "fails for good.", "example": [429, "5xx", "network", "timeout"]})
    max_duration = JsonNumber(validate=validate.Range(1, MAX_DELAY_LIMIT_S),
                              metadata={"description": "seconds after the first attempt past which no attempt "
                                                       "starts: the request fails saying so"})


class SuccessJsonSchema(Schema):
    class Meta:
        unknown = RAISE

    path = fields.String(required=True, validate=[validate.Length(1, 200), validate.Regexp(
        r"^[^.]+(\.[^.]+)*$", error="A dotted path: keys and array indexes separated by dots, as a.b.0.")],
        metadata={"example": "result.ok"})
    equals = fields.Raw(required=True, allow_none=True, metadata={"example": True})


class SuccessSchema(Schema):
    class Meta:
        unknown = RAISE

    status = fields.List(StatusRule(), validate=validate.Length(1, 50),
                         metadata={"description": "codes and classes that count as success; default [\"2xx\"]",
                                   "example": ["2xx"]})
    json = fields.Nested(SuccessJsonSchema, metadata={
        "description": "also required: the answer's JSON body has this value at this path; otherwise the attempt "
                       "is retried"})


class FlowSchema(Schema):
    class Meta:
        unknown = RAISE

    key = fields.String(required=True, validate=validate.Regexp(
        gates.FLOW_KEY_PATTERN, error="1 to 200 of A-Z a-z 0-9 . _ : @ + = ~ -"),
        metadata={"description": "requests sharing a key share its limits, across every worker and host",
                  "example": "acme-api"})
    rate = fields.Integer(strict=True, validate=validate.Range(1, gates.MAX_RATE),
                          metadata={"description": "at most this many attempts start per period"})
    period = JsonNumber(validate=validate.Range(0.001, gates.MAX_PERIOD_S),
                        metadata={"description": "seconds, default 1"})
    parallelism = fields.Integer(strict=True, validate=validate.Range(1, gates.MAX_PARALLELISM),
                                 metadata={"description": "at most this many attempts run at once"})

    @validates_schema
    def some_limit(self, data, **kwargs):
        if "rate" not in data and "parallelism" not in data:
            raise ValidationError("Give rate, parallelism or both.", "rate")
        if "period" in data and "rate" not in data:
            raise ValidationError("period needs a rate.", "period")


class RequestCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    url = TargetUrl(required=True)
    method = fields.String(load_default="POST", validate=validate.OneOf(METHODS))
    headers = HeaderMap(load_default=dict)
    body = fields.String(metadata={"description": "sent as is; exclusive with json"})
    json = fields.Raw(allow_none=True, metadata={"description": "sent as JSON; exclusive with body"})
    delay = JsonNumber(validate=validate.Range(0, MAX_DELAY_LIMIT_S),
                         metadata={"description": "seconds from now, at most HTQ_MAX_DELAY",
                                   MAXIMUM_SETTING: "max_delay_s"})
    eta = EpochOrTime(data_key="eta", attribute="eta_ms",
                      metadata={"description": "RFC 3339 time with zone, or epoch seconds"})
    timeout = JsonNumber(validate=validate.Range(1, 1800))
    retry = fields.Nested(RetrySchema)
    callback_url = TargetUrl()
    cancel_notify = JsonBoolean(load_default=False)
    success = fields.Nested(SuccessSchema)
    flow = fields.Nested(FlowSchema, metadata={
        "description": "flow control: the latest limits sent for a key apply to all its requests; waiting for a "
                       "slot never uses an attempt"})

    @pre_load
    def upper_method(self, data, **kwargs):
        if isinstance(data, dict) and isinstance(data.get("method"), str):
            data = {**data, "method": data["method"].upper()}
        return data

    @validates_schema
    def exclusive_fields(self, data, **kwargs):
        if "body" in data and "json" in data:
            raise ValidationError("Give body or json, not both.", "json")
        if "delay" in data and "eta_ms" in data:
            raise ValidationError("Give delay or eta, not both.", "eta")


class RequestBatchSchema(Schema):
    class Meta:
        unknown = RAISE

    requests = fields.List(fields.Nested(RequestCreateSchema), required=True,
                           validate=validate.Length(1, MAX_BATCH))


class BulkCancelSchema(Schema):
    class Meta:
        unknown = RAISE

    status = fields.List(fields.String(validate=validate.OneOf(REQUEST_STATUSES)), validate=validate.Length(1, 7),
                         metadata={"description": "only requests in one of these statuses (ended ones never change)",
                                   "example": ["scheduled", "retrying"]})
    url_prefix = fields.String(validate=validate.Length(1, 2048),
                               metadata={"description": "only requests whose url starts with this",
                                         "example": "https://api.example.com/"})

    schedule = name_field(metadata={"description": "only requests that runs of this schedule made",
                                    "example": "daily-report"})
    token = token_filter_field()

    @validates_schema
    def some_filter(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one filter: status, url_prefix, schedule, token.", "_schema")


class BulkCanceledSchema(Schema):
    canceled = fields.Integer(required=True, metadata={"example": 42})


class LinksSchema(Schema):
    self = fields.String()
    status = fields.String()
    response = fields.String()


class RequestSchema(Schema):
    id = fields.String()
    url = fields.String()
    method = fields.String()
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    body = fields.String()
    json = fields.Raw(allow_none=True)
    status = fields.String(metadata={"enum": list(REQUEST_STATUSES)})
    created_at = fields.String()
    due_at = fields.String()
    timeout = fields.Float()
    retry = fields.Nested(RetrySchema)
    success = fields.Nested(SuccessSchema)
    flow = fields.Nested(FlowSchema)
    callback_url = fields.String(allow_none=True)
    cancel_notify = fields.Boolean()
    attempts = fields.Integer()
    next_attempt_at = fields.String(allow_none=True)
    ended_at = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    links = fields.Nested(LinksSchema)
    schedule = fields.String(metadata={"description": "the schedule that made it (only then)"})
    token_id = fields.String(allow_none=True, metadata={
        "description": "the id of the token that made it (`env`: one of HTQ_API_TOKENS; null with auth off)"})


class RequestListSchema(Schema):
    items = fields.List(fields.Nested(RequestSchema))
    next_cursor = fields.String(allow_none=True)


class RequestItemsSchema(Schema):
    items = fields.List(fields.Nested(RequestSchema))


class ListArgsSchema(Schema):
    status = fields.String(validate=validate.OneOf(REQUEST_STATUSES))
    schedule = name_field(metadata={"description": "only the requests this schedule made"})
    token = token_filter_field()
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String(metadata={"pattern": f"^{REQUEST_ID_PATTERN}$",
                                     "description": "next_cursor of the previous page"})


class WaitArgsSchema(Schema):
    wait = fields.Float(load_default=0, validate=validate.Range(0, 30))


class StatusSchema(Schema):
    id = fields.String()
    status = fields.String(metadata={"enum": list(REQUEST_STATUSES)})
    attempts = fields.Integer()
    next_attempt_at = fields.String(allow_none=True)


class AttemptSchema(Schema):
    attempt = fields.Integer()
    started_at = fields.String()
    elapsed_ms = fields.Integer()
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)


class AttemptListSchema(Schema):
    items = fields.List(fields.Nested(AttemptSchema))


class ResponseSchema(Schema):
    status_code = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    body = fields.String(allow_none=True)
    body_encoding = fields.String(metadata={"enum": ["utf-8", "base64"]})
    truncated = fields.Boolean()
    elapsed_ms = fields.Integer()
    received_at = fields.String()
    attempt = fields.Integer()
    error = fields.String(allow_none=True)
