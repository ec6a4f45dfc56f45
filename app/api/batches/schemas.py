"""Schemas of /v1/batches: what a client may send, and what it gets back (for OpenAPI)."""
from __future__ import annotations

import json
import re

from marshmallow import RAISE, Schema, fields, validate

from app.api.validators import HeaderMap, JsonNumber, TargetUrl
from app.core import jsontext
from app.core.batches import MAX_RECORDS_PER_CALL

MAX_RECORDS = 10000
MIN_BYTES, MAX_BYTES = 16, 16 * 1024 * 1024


class BatchRetrySchema(Schema):
    class Meta:
        unknown = RAISE

    max_attempts = fields.Integer(strict=True, validate=validate.Range(1, 100),
                                  metadata={"description": "POSTs in all, default 3"})
    backoff_base = JsonNumber(validate=validate.Range(0, 3600),
                                metadata={"description": "seconds between attempts, default 2"})


class BatchConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    endpoint = TargetUrl(required=True, metadata={"description": "receives each batch as a POST"})
    max_records = fields.Integer(strict=True, validate=validate.Range(1, MAX_RECORDS),
                                 metadata={"description": "records per batch, default 10"})
    max_bytes = fields.Integer(strict=True, validate=validate.Range(MIN_BYTES, MAX_BYTES),
                               metadata={"description": "bytes of a batch's JSON array, default 1048576"})
    interval = JsonNumber(validate=validate.Range(0, 86400),
                            metadata={"description": "seconds the oldest pending record may wait, default 10"})
    headers = HeaderMap(metadata={"description": "sent with every POST"})
    retry = fields.Nested(BatchRetrySchema)
    timeout = JsonNumber(validate=validate.Range(1, 1800),
                           metadata={"description": "seconds for one POST, default 30"})


class BatchSchema(Schema):
    name = fields.String()
    endpoint = fields.String()
    max_records = fields.Integer()
    max_bytes = fields.Integer()
    interval = fields.Float()
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    retry = fields.Nested(BatchRetrySchema)
    timeout = fields.Float()
    created_at = fields.String(allow_none=True)
    pending = fields.Integer(metadata={"description": "records waiting for a batch"})
    in_flight = fields.Integer(metadata={"description": "batches taken and not yet sent"})
    sent_batches = fields.Integer()
    sent_records = fields.Integer()
    dead_batches = fields.Integer()
    last_sent_at = fields.String(allow_none=True, metadata={"description": "end of the latest POST"})
    last_status_code = fields.Integer(allow_none=True, metadata={"description": "of the latest POST"})
    last_error = fields.String(allow_none=True)
    token_id = fields.String(allow_none=True, metadata={
        "description": "the id of the token that configured it (`env`: one of HTQ_API_TOKENS; null with auth off)"})


class BatchListSchema(Schema):
    items = fields.List(fields.Nested(BatchSchema))


class RecordBatchSchema(Schema):
    class Meta:
        unknown = RAISE

    records = fields.List(fields.Raw(allow_none=True), required=True,
                          validate=validate.Length(1, MAX_RECORDS_PER_CALL),
                          metadata={"description": f"1 to {MAX_RECORDS_PER_CALL} JSON records, in order"})


class RecordIdSchema(Schema):
    id = fields.String()


class RecordIdsSchema(Schema):
    # Raw, not List(String): the ids are strings already, and a 1,000-item List costs a millisecond.
    ids = fields.Raw(metadata={"type": "array", "items": {"type": "string"}})


class RecordReceiptSchema(Schema):
    id = fields.String()
    state = fields.String(validate=validate.OneOf(["pending", "sending", "sent", "dead"]), metadata={
        "description": "pending: waiting for a batch; sending: in batch `batch_id`, being sent or retried; sent: "
                       "`batch_id` was answered `status_code` at `sent_at`; dead: `batch_id` ran out of attempts "
                       "(`status_code` is its last answer)"})
    batch_id = fields.String(allow_none=True, metadata={"description": "the Htq-Batch-Id of the batch holding it"})
    sent_at = fields.String(allow_none=True, metadata={"description": "end of the successful POST"})
    status_code = fields.Integer(allow_none=True, metadata={"description": "of the successful or the latest POST"})


class BatchDeadArgsSchema(Schema):
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


class DeadBatchSchema(Schema):
    id = fields.String()
    records = fields.List(fields.Raw(allow_none=True))
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)


class BatchDeadListSchema(Schema):
    items = fields.List(fields.Nested(DeadBatchSchema))


class BatchMovedSchema(Schema):
    moved = fields.Integer()


# -- record bodies ------------------------------------------------------------------------------
# The record routes do not build Python objects from the records only to encode them again: the
# body is walked with the json module's C scanner and each record is kept as the exact text the
# client sent (that saves most of the CPU of a 1,000-record call). RecordBatchSchema documents
# the batch route and gives the same errors as a schema would.

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SEPARATOR = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")


class NotJson(ValueError):
    """NaN, Infinity or -Infinity: Python's json accepts them, JSON does not."""


def _refuse_constant(name: str):
    raise NotJson(f"{name} is not JSON")


_scan_once = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=jsontext.finite_float).scan_once


def _skip(text: str, index: int) -> int:
    return _WHITESPACE.match(text, index).end()


def _value_end(text: str, index: int) -> int:
    try:
        return _scan_once(text, index)[1]
    except StopIteration:
        raise json.JSONDecodeError("Expecting value", text, index) from None
    except (json.JSONDecodeError, NotJson):
        raise
    except ValueError:  # int() of too many digits
        raise jsontext.too_many_digits(text) from None


def _expect(text: str, index: int, char: str) -> int:
    if text[index:index + 1] != char:
        raise json.JSONDecodeError(f"Expecting {char!r}", text, index)
    return _skip(text, index + 1)


def _array_items(text: str, index: int) -> tuple[list[str], int]:
    """The texts of the items of the array at `index`, and the index after it (the hot loop of a
    1,000-record call: one C scan and one regex match per record)."""
    index = _expect(text, index, "[")
    items: list[str] = []
    if text[index:index + 1] == "]":
        return items, index + 1
    scan, separator, append = _scan_once, _SEPARATOR.match, items.append
    try:
        while True:
            end = scan(text, index)[1]
            append(text[index:end])
            found = separator(text, end)
            if found is None:
                raise json.JSONDecodeError("Expecting ',' delimiter", text, _skip(text, end))
            index = found.end()
            if found.group(1) == "]":
                return items, index
    except StopIteration:
        raise json.JSONDecodeError("Expecting value", text, index) from None
    except NotJson:
        raise RecordError(len(items)) from None
    except json.JSONDecodeError:
        raise
    except ValueError:  # int() of too many digits
        raise jsontext.too_many_digits(text) from None


class RecordError(ValueError):
    """Record `index` is not JSON (NaN or Infinity)."""

    message = "NaN and Infinity are not JSON"

    def __init__(self, index: int):
        super().__init__(f"record {index}: {self.message}")
        self.index = index


def one_record(text: str) -> str:
    """The text of the one JSON value in `text`. Raises JSONDecodeError, or RecordError (index 0)."""
    start = _skip(text, 0)
    try:
        end = _value_end(text, start)
    except NotJson:
        raise RecordError(0) from None
    if _skip(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return text[start:end]


def record_batch(text: str) -> tuple[list[str] | None, dict[str, list[str]]]:
    """The record texts of a `{"records": [...]}` body and the per-field errors RecordBatchSchema
    would give. Raises JSONDecodeError for malformed JSON, RecordError for a record that is not JSON."""
    index = _expect(text, _skip(text, 0), "{")
    records: list[str] | None = None
    errors: dict[str, list[str]] = {}
    if text[index:index + 1] != "}":
        while True:
            if text[index:index + 1] != '"':
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, index)
            key, index = _scan_once(text, index)
            index = _expect(text, _skip(text, index), ":")
            if key == "records" and text[index:index + 1] == "[":
                records, index = _array_items(text, index)
                errors.pop("records", None)
            else:
                try:
                    index = _value_end(text, index)
                except NotJson:
                    raise json.JSONDecodeError("NaN and Infinity are not JSON", text, index) from None
                if key == "records":
                    records, errors["records"] = None, ["Not a valid list."]
                else:
                    errors[key] = ["Unknown field."]
            index = _skip(text, index)
            if text[index:index + 1] == "}":
                break
            index = _expect(text, index, ",")
    if _skip(text, index + 1) != len(text):
        raise json.JSONDecodeError("Extra data", text, index + 1)
    if records is None:
        errors.setdefault("records", ["Missing data for required field."])
    elif not 1 <= len(records) <= MAX_RECORDS_PER_CALL:
        errors["records"] = [f"Length must be between 1 and {MAX_RECORDS_PER_CALL}."]
    return records, errors
