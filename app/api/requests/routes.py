"""Routes of /v1/requests: HTTP requests that htq sends later, with retries."""
from __future__ import annotations

from flask import jsonify, request
from flask.views import MethodView

from app.api import examples
from app.api.common import Blueprint, require_json_body
from app.api.egress import check_targets, origin, request_targets
from app.api.requests.schemas import (
    AttemptListSchema,
    BulkCanceledSchema,
    BulkCancelSchema,
    ListArgsSchema,
    RequestBatchSchema,
    RequestCreateSchema,
    RequestItemsSchema,
    RequestListSchema,
    RequestSchema,
    ResponseSchema,
    StatusSchema,
    WaitArgsSchema,
)
from app.core.errors import Invalid
from app.extensions import services

blp = Blueprint("requests", __name__, url_prefix="/v1/requests",
                description="Deferred HTTP requests: sent when due, retried with backoff.")
require_json_body(blp)

MAX_IDEMPOTENCY_KEY = 255
IDEMPOTENCY_KEY_DOC = {"in": "header", "name": "Idempotency-Key", "required": False,
                       "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
                       "description": "The same key and body within 24 hours return the original request (200)."}


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Invalid("Bad Idempotency-Key header", {"Idempotency-Key": [f"1 to {MAX_IDEMPOTENCY_KEY} characters"]})
    return key


@blp.route("")
class Requests(MethodView):
    @blp.arguments(ListArgsSchema, location="query")
    @blp.response(200, RequestListSchema, example=examples.REQUEST_LIST)
    def get(self, args):
        """List requests, newest first, optionally of one status, made by one schedule or by one
        token (any of these together); page with `cursor`."""
        items, next_cursor = services().requests.list(args.get("status"), args["limit"], args.get("cursor"),
                                                      args.get("schedule"), args.get("token"))
        return {"items": items, "next_cursor": next_cursor}

    @blp.arguments(RequestCreateSchema, example=examples.REQUEST_CREATE)
    @blp.doc(parameters=[IDEMPOTENCY_KEY_DOC])
    @blp.response(201, RequestSchema, example=examples.REQUEST)
    @blp.alt_response(200, schema=RequestSchema, description="Replay of an Idempotency-Key", example=examples.REQUEST)
    def post(self, fields):
        """Queue one HTTP request, to be sent now, after `delay` seconds or at `eta`.

        With an `Idempotency-Key` header, a repeat with the same body within 24 hours returns the
        original request (200, `Idempotent-Replayed: true`)."""
        check_targets(request_targets(fields))
        created = services().requests.create(fields, _idempotency_key(), origin=origin())
        headers = {"Location": created.resource["links"]["self"]}
        if created.replayed:
            return jsonify(created.resource), 200, {**headers, "Idempotent-Replayed": "true"}
        # Already in the documented shape: a Response skips a second pass through RequestSchema.
        return jsonify(created.resource), 201, headers


@blp.route("/batch", methods=["POST"])
@blp.arguments(RequestBatchSchema, example=examples.REQUEST_BATCH)
@blp.response(201, RequestItemsSchema, example=examples.REQUEST_ITEMS)
def create_batch(body):
    """Queue up to 100 requests at once: all are validated first; none is created if one is invalid."""
    for index, fields in enumerate(body["requests"]):
        check_targets(request_targets(fields), at=("requests", str(index)))
    return jsonify({"items": services().requests.create_many(body["requests"], origin())}), 201


@blp.route("/cancel", methods=["POST"])
@blp.arguments(BulkCancelSchema, example=examples.BULK_CANCEL)
@blp.response(200, BulkCanceledSchema, example=examples.BULK_CANCELED)
def cancel_matching(filters):
    """Cancel every request not ended that matches all the filters given (at least one): `status`
    (any of these), `url_prefix`, `schedule` (made by its runs), `token` (made by it). Done 100 at
    a time, so Redis is never blocked for long; a request that changes meanwhile is judged by its
    state when its chunk comes."""
    return {"canceled": services().requests.cancel_matching(filters.get("status"), filters.get("url_prefix", ""),
                                                            filters.get("schedule"), filters.get("token"))}


@blp.route("/<request_id:request_id>")
class RequestItem(MethodView):
    @blp.response(200, RequestSchema, example=examples.REQUEST)
    def get(self, request_id):
        """The request. 404 if never known, 410 once expired after the retention period."""
        return services().requests.get(request_id)

    @blp.response(204)
    def delete(self, request_id):
        """Cancel the request (repeat: 204). 409 if it already succeeded or failed."""
        services().requests.cancel(request_id)


@blp.route("/<request_id:request_id>/status")
@blp.response(200, StatusSchema, example=examples.STATUS)
def request_status(request_id):
    """Status, attempts so far and the time of the next attempt."""
    return services().requests.status(request_id)


@blp.route("/<request_id:request_id>/attempts")
@blp.response(200, AttemptListSchema, example=examples.ATTEMPTS)
def request_attempts(request_id):
    """Every attempt made: start, duration, status code or error."""
    return {"items": services().requests.attempts(request_id)}


@blp.route("/<request_id:request_id>/response")
class RequestResponse(MethodView):
    @blp.arguments(WaitArgsSchema, location="query")
    @blp.response(200, ResponseSchema, example=examples.RESPONSE)
    @blp.alt_response(202, schema=StatusSchema, description="Not ended yet", example=examples.STATUS)
    def get(self, args, request_id):
        """The final response (or last error) once the request ended; with `wait`, long-polls up to
        that many seconds. 202 with the status while it has not ended; 404 when there is none."""
        ended, document = services().requests.response(request_id, args["wait"])
        if ended:
            return document
        return jsonify(document), 202

    @blp.response(204)
    def delete(self, request_id):
        """Delete the stored response to free its space."""
        services().requests.delete_response(request_id)


@blp.route("/<request_id:request_id>/retry", methods=["POST"])
@blp.response(202, RequestSchema, example=examples.RETRIED)
def retry_request(request_id):
    """Queue a failed or canceled request again, now, with a fresh budget of attempts."""
    return services().requests.retry(request_id)


@blp.route("/<request_id:request_id>/run", methods=["POST"])
@blp.response(202, RequestSchema, example=examples.RUN_NOW)
def run_request(request_id):
    """Send the next attempt now, skipping what is left of the delay or backoff. 409 if the request
    is running or has ended; one whose attempt is already due is left as it is."""
    return services().requests.run_now(request_id)
