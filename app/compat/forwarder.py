"""/compat/forwarder: the webhook batch forwarder (GET /healthz, POST /log) on the native `log` batch.

A record is decoded as the Go service decoded it into its struct (`encoding/json`): field names
matched exactly or else case-insensitively, unknown fields dropped, missing and null ones
zero-valued, a wrong type an error. The decoded record, every field present, is added to the
native batch `log` (configured from WEBHOOK_POST_ENDPOINT, WEBHOOK_BATCH_SIZE and
WEBHOOK_BATCH_INTERVAL), so the workers send it, retry it and keep it as a dead batch if the
endpoint keeps failing: the service never exits and never drops a record.
Errors keep the original shape: `{"message": "..."}`.
"""
from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.compat import answer_redis_outage
from app.core import jsontext
from app.core.batches import ENV_BATCH
from app.core.errors import NotFound, TooLarge
from app.core.model import is_text
from app.extensions import services

log = logging.getLogger(__name__)

EMPTY_USER = "can not post empty user id"
NOT_CONFIGURED = "the log batch is not configured: set WEBHOOK_POST_ENDPOINT (or PUT /v1/batches/log)"
ZERO_TIME = "0001-01-01T00:00:00Z"
INT64 = (-(2**63), 2**63 - 1)
STRUCT = "Log"

# The record's Go struct: field name -> kind; a dict is a nested struct, a list a slice of one.
INT, FLOAT, STRING, BOOL, TIME = "int", "float64", "string", "bool", "time.Time"
SCHEMA: dict[str, Any] = {
    "user_id": INT,
    "total": FLOAT,
    "title": STRING,
    "meta": {
        "logins": [{"time": TIME, "ip": STRING}],
        "phone_numbers": {"home": STRING, "mobile": STRING},
    },
    "completed": BOOL,
}
RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))")

blp = Blueprint("compat_forwarder", __name__, url_prefix="/compat/forwarder")


class DecodeError(ValueError):
    """A body the Go service's json.Decoder refused; the text follows `decode: `."""


class Number(float):
    """A JSON number written with a fraction or exponent, keeping its text (Go names it in errors)."""

    text: str

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


def message(code: int, text: str, headers: dict | None = None):
    return jsonify(message=text), code, headers or {}


@blp.errorhandler(DecodeError)
def _decode_error(exc: DecodeError):
    return message(400, f"decode: {exc}")


@blp.errorhandler(TooLarge)
def _too_large(exc: TooLarge):
    return message(413, exc.message)


@blp.errorhandler(RequestEntityTooLarge)
def _body_too_large(exc: RequestEntityTooLarge):
    """A body over the whole request's limit (MAX_CONTENT_LENGTH), refused while it was read."""
    return message(413, too_large_text())


@blp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return message(exc.code or 500, exc.description or "error")


answer_redis_outage(blp, message)


@blp.get("/healthz")
def healthz():
    return Response("OK", mimetype="text/plain")


@blp.post("/log")
def post_log():
    """Decode one record into the forwarder's shape and add it to the `log` batch: 201 `accepted`."""
    record = decode_record(request.get_data())
    if not record["user_id"]:
        return message(400, EMPTY_USER)
    try:
        services().batches.add(ENV_BATCH, [record])
    except NotFound:
        return message(503, NOT_CONFIGURED)
    return Response("accepted", status=201, mimetype="text/plain")


def decode_record(raw: bytes) -> dict:
    """The record as the Go struct holds it, every field present (zero values for missing ones)."""
    if len(raw) > services().settings.max_body_bytes:
        raise TooLarge(too_large_text())
    if not raw.strip():
        raise DecodeError("EOF")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("invalid UTF-8 in request body") from None
    if jsontext.depth_exceeds(text):
        raise DecodeError("exceeded max depth")  # Go's words, at htq's depth limit
    try:
        value = json.loads(text, parse_float=Number, parse_int=_integer, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if value is not None and not isinstance(value, dict):
        raise DecodeError(f"json: cannot unmarshal {kind(value)} into Go value of type main.{STRUCT}")
    return decode(value, SCHEMA, "")


def too_large_text() -> str:
    return f"decode: http: request body too large (over {services().settings.max_body_bytes} bytes)"


def _integer(text: str) -> int | Number:
    """A JSON integer; one too long for int() (4300 digits) is kept as a Number, which no int
    or float64 field takes, as in Go."""
    try:
        return int(text)
    except ValueError:
        return Number(text)


def _no_constant(text: str):
    raise DecodeError(f"invalid character '{text[0]}' looking for beginning of value")


def kind(value: Any) -> str:
    """Go's name for a JSON value in `cannot unmarshal <kind> into ...`."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Number):
        return f"number {value.text}"
    if isinstance(value, int):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def mismatch(value: Any, path: str, go_type: str) -> DecodeError:
    return DecodeError(f"json: cannot unmarshal {kind(value)} into Go struct field {STRUCT}.{path} of type {go_type}")


def zero(spec: Any) -> Any:
    if isinstance(spec, dict):
        return {field: zero(sub) for field, sub in spec.items()}
    if isinstance(spec, list):
        return []
    return {INT: 0, FLOAT: 0, STRING: "", BOOL: False, TIME: ZERO_TIME}[spec]


def decode(value: Any, spec: Any, path: str) -> Any:
    if value is None:
        return zero(spec)
    if isinstance(spec, dict):
        return decode_struct(value, spec, path)
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise mismatch(value, path, "[]struct")
        return [decode(item, spec[0], path) for item in value]
    return decode_scalar(value, spec, path)


def decode_struct(value: Any, spec: dict, path: str) -> dict:
    if not isinstance(value, dict):
        raise mismatch(value, path, "struct")
    out = zero(spec)
    folded = {field.casefold(): field for field in spec}
    for key, item in value.items():  # in order: a later duplicate wins, as in Go
        field = key if key in spec else folded.get(key.casefold())
        if field is not None:
            out[field] = decode(item, spec[field], f"{path}.{field}" if path else field)
    return out


def decode_scalar(value: Any, spec: str, path: str) -> Any:
    if spec == INT:
        if isinstance(value, bool) or not isinstance(value, int) or isinstance(value, Number):
            raise mismatch(value, path, "int")
        if not INT64[0] <= value <= INT64[1]:
            raise mismatch(value, path, "int")
        return value
    if spec == FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
            raise mismatch(value, path, "float64")
        number = float(value)
        return int(number) if number.is_integer() and abs(number) < 1e21 else number  # as Go writes it
    if spec == STRING:
        if not isinstance(value, str):
            raise mismatch(value, path, "string")
        return value if is_text(value) else go_text(value)
    if spec == BOOL:
        if not isinstance(value, bool):
            raise mismatch(value, path, "bool")
        return value
    if not isinstance(value, str):
        raise DecodeError("Time.UnmarshalJSON: input is not a JSON string")
    return rfc3339(value)


def go_text(text: str) -> str:
    """Go's string for JSON text holding a lone surrogate ("\\ud800"): each one is U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def rfc3339(text: str) -> str:
    """A valid RFC 3339 time, written as Go writes it back (fraction without trailing zeros,
    a zero offset as Z)."""
    match = RFC3339.fullmatch(text)
    if not match or not _valid_time(match):
        raise DecodeError(f'parsing time "{text}" as RFC 3339 ("2006-01-02T15:04:05Z07:00"): not a valid time')
    fraction = (match.group(7) or "")[:9].rstrip("0")
    zone = match.group(8)
    if zone != "Z" and match.group(10) == "00" and match.group(11) == "00":
        zone = "Z"
    return f"{text[:19]}{'.' + fraction if fraction else ''}{zone}"


def _valid_time(match: re.Match) -> bool:
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not (1 <= month <= 12 and 1 <= day <= days[month - 1] and hour < 24 and minute < 60 and second < 60):
        return False
    return match.group(8) == "Z" or (int(match.group(10)) < 24 and int(match.group(11)) < 60)
