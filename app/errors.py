"""One JSON error shape for every failure: {code, status, message, errors}; one mapping table."""
from __future__ import annotations

import logging
from http import HTTPStatus

import redis
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from app.core import errors as core_errors
from app.storage.client import OUT_OF_MEMORY, UNAVAILABLE

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[core_errors.HTQError], int] = {
    core_errors.NotFound: 404,
    core_errors.Gone: 410,
    core_errors.Conflict: 409,
    core_errors.Invalid: 422,
    core_errors.TooLarge: 413,
}

REDIS_RETRY_AFTER_S = 5
# Memory comes back when consumers acknowledge, requests expire or an operator steps in: minutes
# rather than the seconds of a failover, so writers are asked to wait longer.
OUT_OF_MEMORY_RETRY_AFTER_S = 30
OUT_OF_MEMORY_MESSAGE = "Redis is out of memory (maxmemory reached); nothing was stored, try again later"


def error_response(code: int, message: str, errors: dict | None = None, headers: dict | None = None):
    body = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = code
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_error(exc: HTTPException):
    data = getattr(exc, "data", None) or {}
    errors = data.get("messages")
    message = data.get("message") or exc.description or HTTPStatus(exc.code).phrase
    if isinstance(errors, dict) and len(errors) == 1:
        # webargs nests messages by location ({"json": {...}}); clients want the fields.
        errors = next(iter(errors.values()))
    if exc.code == 422:
        message = "Validation failed"
    elif exc.code == 400 and errors:
        message = "Malformed JSON body"
    elif exc.code == 413:
        message = "Request body too large"
    return error_response(exc.code or 500, message, errors, dict(data.get("headers") or {}))


def _domain_error(exc: core_errors.HTQError):
    code = next(code for cls, code in STATUS_BY_ERROR.items() if isinstance(exc, cls))
    return error_response(code, exc.message, exc.errors)


def _redis_down(exc: redis.RedisError):
    log.warning("Redis unavailable: %s", exc)
    return error_response(503, "Storage unavailable, try again shortly", None,
                          {"Retry-After": str(REDIS_RETRY_AFTER_S)})


def _redis_full(exc: redis.RedisError):
    log.warning("Redis refused a write, out of memory: %s", exc)
    return error_response(503, OUT_OF_MEMORY_MESSAGE, None, {"Retry-After": str(OUT_OF_MEMORY_RETRY_AFTER_S)})


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    for cls in STATUS_BY_ERROR:
        app.register_error_handler(cls, _domain_error)
    for error in UNAVAILABLE:
        app.register_error_handler(error, _redis_down)
    app.register_error_handler(OUT_OF_MEMORY, _redis_full)
