"""/compat/timers: httpqueue's timers (POST /timers, GET /timers/{id}) as deferred requests.

A timer is a native request created under an alias, its uuid4: `POST <url path>/<id>[?query]`
with an empty body once hours + minutes + seconds have passed, retried by the native policy.
Errors keep httpqueue's envelope: `{"error": {"code": 422, "details": "Invalid params - ..."}}`.
"""
from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from app.api.egress import check_targets, origin
from app.api.validators import check_target_url
from app.compat import answer_redis_outage, is_public_id, new_public_id
from app.core import clock, jsontext
from app.core.errors import Gone, HTQError, NotFound
from app.core.model import FINAL_STATUSES
from app.errors import STATUS_BY_ERROR
from app.extensions import services

NAMESPACE = "timers"
DELAY_FIELDS_S = {"hours": 3600, "minutes": 60, "seconds": 1}
INT64_LIMIT = 2**63  # httpqueue decoded the fields into Go ints: anything beyond is a bad payload
BAD_PAYLOAD = "cannot set timers, bad request payload"
BAD_URL = "invalid param: invalid 'POST' field 'url'"
NEGATIVE_DELAY = "invalid param: hours, minutes and seconds must not add up to a negative delay"
NO_TIMER = "timer does not exist"
# httpqueue's title in front of an error's details; other codes use the HTTP reason phrase.
TITLES = {400: "Bad Request", 404: "Not found", 422: "Invalid params", 500: "Internal error"}

blp = Blueprint("compat_timers", __name__, url_prefix="/compat/timers")


class TimerError(Exception):
    def __init__(self, code: int, details: str):
        super().__init__(details)
        self.code = code
        self.details = details


def error_body(code: int, details: str, headers: dict | None = None):
    title = TITLES.get(code) or HTTPStatus(code).phrase
    return jsonify(error={"code": code, "details": f"{title} - {details}"}), code, headers or {}


@blp.errorhandler(TimerError)
def _timer_error(exc: TimerError):
    return error_body(exc.code, exc.details)


@blp.errorhandler(HTQError)
def _domain_error(exc: HTQError):
    return error_body(next(code for cls, code in STATUS_BY_ERROR.items() if isinstance(exc, cls)), exc.message)


@blp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return error_body(exc.code or 500, exc.description or HTTPStatus(exc.code or 500).phrase)


answer_redis_outage(blp, error_body)


@blp.get("/health")
def health():
    return Response("ok", mimetype="text/plain")


@blp.post("/timers")
def set_timer():
    """Schedule a webhook: `{"hours", "minutes", "seconds", "url"}` (integers, missing = 0) → 201
    `{"id"}`; `POST <url path>/<id>` follows once the total delay has passed."""
    url, delay_s = timer_fields(request.get_data())
    check_targets({"url": url})
    timer_id = new_public_id()
    services().requests.create({"url": webhook_url(url, timer_id), "method": "POST", "headers": {},
                                "delay": delay_s}, alias=(NAMESPACE, timer_id), origin=origin())
    return jsonify(id=timer_id), 201


@blp.get("/timers/<timer_id>")
def get_timer(timer_id: str):
    """`{"ID", "time_left"}`: whole seconds until the webhook is due; 0 once it was sent."""
    return jsonify(ID=timer_id, time_left=time_left_s(timer_id))


def timer_fields(raw: bytes) -> tuple[str, int]:
    """The url and the total delay in seconds of a POST body, decoded as httpqueue did (any
    content type, unknown fields ignored, null as missing)."""
    try:
        payload = jsontext.loads(raw)
    except ValueError:  # not JSON, or not JSON htq reads (too deep, NaN ...)
        raise TimerError(400, BAD_PAYLOAD) from None
    if not isinstance(payload, dict):
        raise TimerError(400, BAD_PAYLOAD)
    delay_s = 0
    for name, unit_s in DELAY_FIELDS_S.items():
        value = 0 if payload.get(name) is None else payload[name]
        if isinstance(value, bool) or not isinstance(value, int) or not -INT64_LIMIT <= value < INT64_LIMIT:
            raise TimerError(400, BAD_PAYLOAD)
        delay_s += value * unit_s
    url = "" if payload.get("url") is None else payload["url"]
    if not isinstance(url, str):
        raise TimerError(400, BAD_PAYLOAD)
    try:
        check_target_url(url)
    except ValidationError:
        raise TimerError(422, BAD_URL) from None
    if delay_s < 0:
        raise TimerError(422, NEGATIVE_DELAY)
    return url, delay_s


def webhook_url(url: str, timer_id: str) -> str:
    """httpqueue's webhook address: the timer id appended to the url's path, the query kept."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{timer_id}", fragment=""))


def time_left_s(timer_id: str) -> int:
    if not is_public_id(timer_id):
        raise TimerError(404, NO_TIMER)
    requests = services().requests
    try:
        resource = requests.get(requests.find(NAMESPACE, timer_id))
    except NotFound:
        raise TimerError(404, NO_TIMER) from None
    except Gone:
        return 0  # sent, ended and expired: the archive remembers it
    if resource["attempts"] or resource["status"] in FINAL_STATUSES:
        return 0
    return max(0, (clock.from_rfc3339(resource["due_at"]) - requests.now_ms()) // 1000)
