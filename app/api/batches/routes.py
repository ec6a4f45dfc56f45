"""Routes of /v1/batches: JSON records forwarded to an endpoint in batches, by size or by age.

A bad batch name is 422 on PUT and 404 elsewhere (no batch can have it).
"""
from __future__ import annotations

import json

from flask import request
from flask.views import MethodView
from flask_smorest import abort

from app.api import examples
from app.api.batches.schemas import (
    BatchConfigSchema,
    BatchDeadArgsSchema,
    BatchDeadListSchema,
    BatchListSchema,
    BatchMovedSchema,
    BatchSchema,
    RecordBatchSchema,
    RecordError,
    RecordIdSchema,
    RecordIdsSchema,
    RecordReceiptSchema,
    one_record,
    record_batch,
)
from app.api.common import Blueprint, abort_malformed, require_json_body
from app.api.egress import check_targets, origin
from app.core import jsontext
from app.extensions import services

blp = Blueprint("batches", __name__, url_prefix="/v1/batches",
                description="Batch forwarding: records POSTed to an endpoint as JSON arrays.")
require_json_body(blp)

RECORD_BODY_DOC = {"required": True, "description": "One record: any JSON value.",
                   "content": {"application/json": {"schema": {}, "example": examples.RECORD}}}
RECORD_BATCH_DOC = {"required": True, "content": {"application/json": {"schema": RecordBatchSchema,
                                                                       "example": examples.RECORD_BATCH}}}


@blp.route("")
@blp.response(200, BatchListSchema, example=examples.BATCH_LIST)
def list_batches():
    """Every batch with its configuration and counts, by name."""
    return {"items": services().batches.list()}


@blp.route("/<name:name>")
class BatchItem(MethodView):
    @blp.arguments(BatchConfigSchema, example=examples.BATCH_CONFIG)
    @blp.response(200, BatchSchema, example=examples.BATCH)
    @blp.alt_response(201, schema=BatchSchema, description="Created", example=examples.BATCH)
    def put(self, fields, name):
        """Create (201) or replace (200) a batch's configuration. PUT replaces: a field left out
        takes its default, whatever it was before (as on `PUT /v1/queues/{name}`).

        Records are POSTed to `endpoint` as one JSON array as soon as `max_records` or `max_bytes`
        is reached, or when the oldest pending record is `interval` seconds old."""
        check_targets({"endpoint": fields.get("endpoint")})
        resource, created = services().batches.configure(name, fields, origin())
        return resource, 201 if created else 200

    @blp.response(200, BatchSchema, example=examples.BATCH)
    def get(self, name):
        """The configuration, pending records, batches sent and dead, and the latest POST's result."""
        return services().batches.get(name)

    @blp.response(204)
    def delete(self, name):
        """Delete the batch with its pending records and its undelivered and dead batches."""
        services().batches.delete(name)


def _records(parse):
    """The record texts of the body as `parse` finds them: 400 if it is not JSON, 422 if invalid."""
    try:
        text = request.get_data().decode("utf-8")
        jsontext.check_depth(text)
        parsed = parse(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        abort_malformed(exc)
    except RecordError as exc:
        abort(422, messages={"json": {"records": {str(exc.index): [exc.message]}}})
    return parsed


@blp.route("/<name:name>/records", methods=["POST"])
@blp.doc(requestBody=RECORD_BODY_DOC)
@blp.response(202, RecordIdSchema, example=examples.RECORD_ID)
def add_record(name):
    """Add one record (the body, any JSON); it is stored before the answer, and forwarded as sent.
    404 if the batch is unknown, 413 if the record cannot fit in a batch by itself."""
    return {"id": services().batches.add_texts(name, [_records(one_record)])[0]}


@blp.route("/<name:name>/records/batch", methods=["POST"])
@blp.doc(requestBody=RECORD_BATCH_DOC)
@blp.response(202, RecordIdsSchema, example=examples.RECORD_IDS)
def add_records(name):
    """Add up to 1000 records at once, in order; none is stored if one is refused."""
    records, errors = _records(record_batch)
    if errors:
        abort(422, messages={"json": errors})
    return {"ids": services().batches.add_texts(name, records)}


@blp.route("/<name:name>/records/<record_id:record_id>")
@blp.response(200, RecordReceiptSchema, example=examples.RECORD_RECEIPT)
def record_receipt(name, record_id):
    """Where a record is: `pending`, `sending` (in batch `batch_id`, sent or retried), `sent` (with
    when and the endpoint's status code) or `dead` (its batch ran out of attempts; a redrive sends
    it again). A sent record's receipt is kept for `HTQ_RETENTION`; 404 if the batch or the
    record is unknown, or the receipt expired."""
    return services().batches.record(name, record_id)


@blp.route("/<name:name>/dead")
@blp.arguments(BatchDeadArgsSchema, location="query")
@blp.response(200, BatchDeadListSchema, example=examples.DEAD_BATCHES)
def dead_batches(args, name):
    """Batches that ran out of attempts, oldest first, with their records and last error."""
    return {"items": services().batches.dead(name, args["limit"])}


@blp.route("/<name:name>/dead/redrive", methods=["POST"])
@blp.response(200, BatchMovedSchema, example=examples.MOVED)
def redrive_dead(name):
    """Send every dead batch again, with a fresh budget of attempts, to the current endpoint."""
    return {"moved": services().batches.redrive(name)}
