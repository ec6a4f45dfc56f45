"""/compat/htq: the HTTP Task Queue (2014) API as deferred requests.

A request is a native request created under an alias, its uuid4, with one attempt and the
`success_on_any_status` rule (any HTTP answer is a success). Its statuses are read off the native
ones: scheduled and queued are `queued`, running is `pending`, succeeded is `success`, failed is
`timeout` when the attempt timed out and `error` otherwise. Errors use htq's JSON error shape
(the 2014 service answered with HTML error pages; the status codes are the same).
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from app.api.common import abort_malformed
from app.api.egress import check_targets, origin
from app.api.requests.schemas import METHODS
from app.api.validators import HeaderMap, TargetUrl
from app.compat import is_public_id, new_public_id
from app.core import clock, jsontext
from app.core.errors import Conflict, Gone, Invalid, NotFound
from app.errors import error_response
from app.extensions import services

NAMESPACE = "htq"
DEFAULT_TIMEOUT_S = 60
# The 2014 service waited for a response for ever; this wait outlasts the longest attempt
# (1800 s plus the lease margin) and then answers 202 with the status, so no client hangs for good.
RESPONSE_WAIT_LIMIT_S = 3600.0
WAITING = ("scheduled", "queued")
STATUSES = {"scheduled": "queued", "queued": "queued", "running": "pending", "retrying": "pending",
            "succeeded": "success", "canceled": "canceled"}

blp = Blueprint("compat_htq", __name__, url_prefix="/compat/htq")


def check_method(value: str) -> None:
    if value.upper() not in METHODS:
        raise ValidationError(f"Must be one of {', '.join(METHODS)}, in any case.")


class SendSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    url = TargetUrl(required=True)
    method = fields.String(allow_none=True, validate=check_method)
    data = fields.Raw(allow_none=True)
    headers = HeaderMap(allow_none=True)
    timeout = fields.Float(allow_none=True, validate=validate.Range(1, 1800))


@blp.errorhandler(Gone)
def _expired(exc: Gone):
    return error_response(404, exc.message)


@blp.get("/")
def queue():
    """Every request still waiting to be sent, newest first, each with its `links`."""
    items = [{**request_document(public_id, resource), "links": links(public_id)}
             for public_id, resource in services().requests.list_aliased(NAMESPACE, WAITING)]
    return jsonify(items), 200, {"Link": link_header({"self": url_for(".queue", _external=True)})}


@blp.post("/")
def send():
    """Queue `{"url", "method", "data", "headers", "timeout"}` (method `get` without data, `post`
    with data; timeout 60 s) → 303 to the request's resource."""
    try:
        payload = jsontext.loads(request.get_data())
    except ValueError as exc:
        abort_malformed(exc)
    public_id = new_public_id()
    fields = native_fields(payload)
    check_targets({"url": fields["url"]})
    services().requests.create(fields, alias=(NAMESPACE, public_id), origin=origin())
    return "", 303, {"Location": links(public_id)["self"]}


@blp.get("/<public_id>/")
def request_item(public_id: str):
    """The request: `uuid, status, time, url, method, headers, timeout, data`."""
    resource = services().requests.get(native_id(public_id))
    return jsonify(request_document(public_id, resource)), 200, {"Link": link_header(links(public_id))}


@blp.delete("/<public_id>/")
def cancel(public_id: str):
    """Cancel the request and delete any response; one in flight also gets a `DELETE` to its url."""
    requests, request_id = services().requests, native_id(public_id)
    try:
        requests.cancel(request_id)
    except Conflict:
        pass  # it has ended already: only its response goes
    requests.delete_response(request_id)
    return "", 204


@blp.get("/<public_id>/status/")
def status(public_id: str):
    """`{"status"}`: queued, pending, success, error, timeout or canceled."""
    return jsonify(status=htq_status(services().requests.get(native_id(public_id))))


@blp.get("/<public_id>/response/")
def response(public_id: str):
    """Waits until the request has ended, then the response (or error); `{}` when canceled or purged."""
    requests, request_id = services().requests, native_id(public_id)
    try:
        ended, document = requests.response(request_id, RESPONSE_WAIT_LIMIT_S)
    except NotFound:
        ended, document = True, None  # canceled before any answer, or purged
    urls = links(public_id)
    headers = {"Link": link_header({"self": urls["response"], "request": urls["self"]})}
    if not ended:
        return jsonify(status=STATUSES[document["status"]]), 202, headers
    return jsonify(response_document(public_id, requests.get(request_id), document)), 200, headers


@blp.delete("/<public_id>/response/")
def purge(public_id: str):
    """Delete the stored response: 204, then 404 as there is none left."""
    requests, request_id = services().requests, native_id(public_id)
    try:
        ended, _ = requests.response(request_id)
    except NotFound:
        ended = False
    if not ended:
        raise NotFound(f"Request {public_id} has no response")
    requests.delete_response(request_id)
    return "", 204


def native_id(public_id: str) -> str:
    if not is_public_id(public_id):
        raise NotFound(f"No request {public_id}")
    return services().requests.find(NAMESPACE, public_id)


def native_fields(payload) -> dict:
    """The native request for a POST body: one attempt, any answer a success, DELETE on cancel."""
    if not isinstance(payload, dict):
        raise Invalid("Validation failed", {"_schema": ["Send a JSON object."]})
    try:
        sent = SendSchema().load(payload)
    except ValidationError as exc:
        raise Invalid("Validation failed", exc.messages) from None
    data = sent.get("data")
    native = {"url": sent["url"], "method": (sent.get("method") or ("get" if data is None else "post")).upper(),
               "headers": sent.get("headers") or {}, "timeout": sent.get("timeout") or DEFAULT_TIMEOUT_S,
               "retry": {"max_attempts": 1}, "cancel_notify": True, "success_on_any_status": True}
    if isinstance(data, str):
        native["body"] = data
    elif data is not None:
        native["json"] = data
    return native


def htq_status(resource: dict) -> str:
    if resource["status"] == "failed":
        return "timeout" if (resource["last_error"] or "").startswith("timeout") else "error"
    return STATUSES[resource["status"]]


def request_document(public_id: str, resource: dict) -> dict:
    return {"uuid": public_id, "status": htq_status(resource), "time": clock.from_rfc3339(resource["created_at"]),
            "url": resource["url"], "method": resource["method"].lower(), "headers": resource["headers"],
            "timeout": resource["timeout"], "data": resource.get("body", resource.get("json"))}


def response_document(public_id: str, resource: dict, document: dict | None) -> dict:
    """htq's response resource from the native one: the answer on success, else the error."""
    status = htq_status(resource)
    if document is None or status == "canceled":
        return {}
    time_ms = clock.from_rfc3339(document["received_at"])
    if status != "success":
        return {"status": status, "message": document["error"] or resource["last_error"], "time": time_ms}
    answer = {"uuid": public_id, "status": status, "code": document["status_code"], "reason": document["reason"],
              "headers": document["headers"], "data": document["body"], "elapsed": float(document["elapsed_ms"]),
              "time": time_ms}
    if document["body_encoding"] == "base64":
        answer["data_encoding"] = "base64"  # a body that is not UTF-8 text, base64-encoded
    return answer


def links(public_id: str) -> dict:
    self_url = url_for(".request_item", public_id=public_id, _external=True)
    return {"self": self_url, "status": f"{self_url}status/", "response": f"{self_url}response/"}


def link_header(rels: dict) -> str:
    return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in rels.items())
