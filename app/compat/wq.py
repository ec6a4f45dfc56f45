"""/compat/wq: WQ's single queue (push, receive a number of messages, confirm) on the native queue `wq`.

Messages get UUID-formatted ids. A receive locks each message for WQ_VISIBILITY_TIMEOUT_MS
(default 1000 ms); one not confirmed in time becomes visible again at its place, with the same
id. Confirming works only while the message is locked by a receive, as in WQ. The queue is a
native queue: it keeps native retention (4 days unless changed with `PUT /v1/queues/wq`) and can
be read through `/v1/queues/wq` too. Errors keep WQ's shape: `{"error": "..."}`.
"""
from __future__ import annotations

import logging
import re

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException

from app.compat import answer_redis_outage, is_public_id
from app.core import jsontext
from app.core.errors import NotFound, TooLarge
from app.core.queues import json_text_body
from app.extensions import services

log = logging.getLogger(__name__)

QUEUE = "wq"
DEFAULT_AMOUNT = 10
# WQ had no limit; one receive hands out at most this many (ask again for more).
MAX_AMOUNT = 1000
AMOUNT = re.compile(r"\s*\+?(\d+)(?:\.\d*)?\s*")

blp = Blueprint("compat_wq", __name__, url_prefix="/compat/wq")


class WQError(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


def error_body(code: int, text: str, headers: dict | None = None):
    return jsonify(error=text), code, headers or {}


def not_available(message_id: str) -> WQError:
    return WQError(404, f"Message with ID {message_id} it's not available for confirm")


@blp.errorhandler(WQError)
def _wq_error(exc: WQError):
    return error_body(exc.code, exc.text)


@blp.errorhandler(TooLarge)
def _too_large(exc: TooLarge):
    return error_body(413, exc.message)


@blp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return error_body(exc.code or 500, exc.description or "error")


answer_redis_outage(blp, error_body)


@blp.post("/", strict_slashes=False)
def push():
    """Push a message: the body, a JSON object or array → 201 `{"messageID"}`."""
    message_id = services().queues.push(QUEUE, json_text_body(message_text(request.get_data())), uuid_id=True)
    return jsonify(messageID=message_id), 201


@blp.get("/", strict_slashes=False)
def receive():
    """Up to `amount` (default 10) messages, oldest first, each locked for the visibility timeout."""
    amount = amount_arg(request.args.get("amount"))
    messages = []
    if amount:
        timeout_s = services().settings.wq_visibility_timeout_ms / 1000
        try:
            messages = services().queues.receive(QUEUE, amount, timeout_s)
        except NotFound:
            messages = []  # nothing was ever pushed
    return jsonify(messages=[{"id": message["id"], "body": message["body"]} for message in messages])


@blp.patch("/<message_id>")
def confirm(message_id: str):
    """Confirm (delete) a message while it is locked by a receive: 204; otherwise 404."""
    if not is_public_id(message_id):
        raise not_available(message_id)
    try:
        confirmed = services().queues.ack_locked(QUEUE, message_id)
    except NotFound:
        confirmed = False
    if not confirmed:
        raise not_available(message_id)
    return "", 204


def message_text(raw: bytes) -> str:
    """The body as JSON text, kept as sent: a JSON object or array (any content type), else 400."""
    limit = services().settings.max_body_bytes
    if len(raw) > limit:
        raise WQError(413, f"The message is {len(raw)} bytes, over the limit of {limit}")
    try:
        text = raw.decode("utf-8")
        value = jsontext.loads(text)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise WQError(400, f"Invalid JSON body: {jsontext.reason(exc)}") from None
    if not isinstance(value, dict | list):
        raise WQError(400, "The body must be a JSON object or array")
    return text


def amount_arg(raw: str | None) -> int:
    """WQ's `amount`: absent or empty means 10; a number is rounded down and capped at MAX_AMOUNT;
    anything else (words, negative numbers) is unusable and receives nothing."""
    if raw is None or raw == "":
        return DEFAULT_AMOUNT
    match = AMOUNT.fullmatch(raw)
    return min(int(match.group(1)), MAX_AMOUNT) if match else 0
