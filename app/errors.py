"""One JSON error shape for every failure: {code, status, message, errors}; one mapping table."""
from __future__ import annotations

import logging
import queue
import socket
from http import HTTPStatus

import redis
from flask import Flask, jsonify, request
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
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
IDEMPOTENT_ENDPOINTS = ("requests.Requests",)  # routes that take an Idempotency-Key (POST /v1/requests)
NOT_CONNECTED = (ConnectionRefusedError, FileNotFoundError, socket.gaierror, queue.Empty)
# Memory comes back when consumers acknowledge, requests expire or an operator steps in: minutes
# rather than the seconds of a failover, so writers are asked to wait longer.
OUT_OF_MEMORY_RETRY_AFTER_S = 30
OUT_OF_MEMORY_MESSAGE = "Redis is out of memory (maxmemory reached); nothing was stored, try again later"
# On a 503 to a write that certainly stored nothing, so that a client may send it again without an
# Idempotency-Key (app/file_client.py does): the message says it to people, this to programs.
NOTHING_STORED = {"Htq-Nothing-Stored": "true"}


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
    if errors is not None and not isinstance(errors, dict):
        errors = {"_schema": errors}  # the documented shape: an object keyed by field
    if exc.code == 422:
        message = "Validation failed"
    elif exc.code == 413:
        message = "Request body too large"
    # The exception's own headers (Allow on a 405, WWW-Authenticate ...), but not its HTML type.
    headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
    return error_response(exc.code or 500, message, errors, {**headers, **(data.get("headers") or {})})


def _domain_error(exc: core_errors.HTQError):
    code = next(code for cls, code in STATUS_BY_ERROR.items() if isinstance(exc, cls))
    return error_response(code, exc.message, exc.errors)


def _redis_down(exc: redis.RedisError):
    return error_response(503, *redis_down_answer(exc))


def redis_down_answer(exc: redis.RedisError) -> tuple[str, None, dict[str, str]]:
    """The message, (no) field errors and headers of the 503 for a Redis that is unavailable;
    the compat profiles put them in their own shapes."""
    log.warning("Redis unavailable: %s", exc)
    headers = {"Retry-After": str(REDIS_RETRY_AFTER_S)}
    if request.method in WRITE_METHODS and never_reached(exc):
        headers |= NOTHING_STORED
    return unavailable_message(exc), None, headers


def never_reached(exc: redis.RedisError) -> bool:
    """Whether Redis certainly did not run the command: redis-py never reached it (its
    ConnectionError then wraps a refused connection, a missing host or unix socket, or a pool with
    no free connection) or Redis refused it while loading its data. After a timeout, or a
    connection lost mid-command, Redis may have run it."""
    return isinstance(exc, redis.exceptions.BusyLoadingError) or (
        isinstance(exc, redis.ConnectionError) and isinstance(exc.__context__, NOT_CONNECTED))


def unavailable_message(exc: redis.RedisError) -> str:
    """What a 503 says, so that a client knows whether a write may have happened."""
    if request.method not in WRITE_METHODS:
        return "Storage unavailable, try again shortly"
    if never_reached(exc):
        return "Storage unavailable: nothing was stored; try again shortly"
    if request.endpoint in IDEMPOTENT_ENDPOINTS:
        return "Storage unavailable: the request may have been stored; retry with the same Idempotency-Key"
    return "Storage unavailable: the write may have been stored; check before retrying"


def _redis_full(exc: redis.RedisError):
    return error_response(503, *redis_full_answer(exc))


def redis_full_answer(exc: redis.RedisError) -> tuple[str, None, dict[str, str]]:
    """The same for a write refused by a Redis out of memory: nothing was stored."""
    log.warning("Redis refused a write, out of memory: %s", exc)
    return OUT_OF_MEMORY_MESSAGE, None, {"Retry-After": str(OUT_OF_MEMORY_RETRY_AFTER_S), **NOTHING_STORED}


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    for cls in STATUS_BY_ERROR:
        app.register_error_handler(cls, _domain_error)
    for error in UNAVAILABLE:
        app.register_error_handler(error, _redis_down)
    app.register_error_handler(OUT_OF_MEMORY, _redis_full)
