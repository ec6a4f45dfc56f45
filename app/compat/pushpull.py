"""/compat/pushpull: the stdlib long-polling queue (push and pull raw one-line messages) on native queues.

Each name is a native queue of the same name. A push stores the raw body as a text message; a
pull long-polls for one message (up to HTQ_LONG_POLL_TIMEOUT) and answers it raw, or 204.

A message is never lost to a puller that has gone away: the pull *receives* it with a lock
(PULL_LOCK_S) and acknowledges it only once the server has written the whole response. If the
client is seen to be gone before the write, or the write does not complete, the message is
released to its place at once; if the web process dies mid-way, its lock expires and the message
comes back. Errors are plain text, as the original's `http.Error` answers were.
"""
from __future__ import annotations

import json
import logging
import select
import socket

import redis
from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.compat import answer_redis_outage
from app.core import jsontext
from app.core.errors import Conflict, Invalid, NotFound, TooLarge
from app.core.queues import QueueService, text_body
from app.extensions import services

log = logging.getLogger(__name__)

# How long a pulled message stays locked while its response is written. A released or written
# message never waits for it; only a web process that dies mid-pull leaves it to expire.
PULL_LOCK_S = 30.0
NEWLINES = "Message cannot contain newlines"
NOT_TEXT = "Message must be UTF-8 text"
BAD_NAME = "Queue name must be 1 to 80 characters of A-Z, a-z, 0-9, _ and -"
TEXT = "text/plain; charset=utf-8"

blp = Blueprint("compat_pushpull", __name__, url_prefix="/compat/pushpull")


class PushPullError(Exception):
    def __init__(self, code: int, text: str, headers: dict | None = None):
        super().__init__(text)
        self.code = code
        self.text = text
        self.headers = headers or {}


def text_response(code: int, text: str, headers: dict | None = None) -> Response:
    return Response(text, status=code, content_type=TEXT, headers=headers)


@blp.errorhandler(PushPullError)
def _pushpull_error(exc: PushPullError):
    return text_response(exc.code, exc.text, exc.headers)


@blp.errorhandler(Invalid)
def _invalid(exc: Invalid):
    return text_response(400, BAD_NAME)


@blp.errorhandler(TooLarge)
def _too_large(exc: TooLarge):
    return text_response(413, exc.message)


@blp.errorhandler(RequestEntityTooLarge)
def _body_too_large(exc: RequestEntityTooLarge):
    """A body over the whole request's limit (MAX_CONTENT_LENGTH), refused while it was read."""
    return text_response(413, too_large_text())


answer_redis_outage(blp, text_response)


@blp.post("/queues/<name>")
@blp.post("/push/<name>")
def push(name: str):
    """Push the raw body as one message: 200 with an empty body. A body with a newline is 400;
    an empty body is a valid message."""
    services().queues.push(name, text_body(message_text(request.get_data())))
    return Response(b"", status=200, content_type=TEXT)


@blp.get("/queues/<name>")
@blp.get("/pull/<name>")
def pull(name: str):
    """Wait up to HTQ_LONG_POLL_TIMEOUT for a message: 200 with the raw message, or 204."""
    queues = services().queues
    message = receive_one(queues, name, services().settings.long_poll_timeout_s)
    if message is None:
        return Response(status=204)
    if client_gone(request.environ):
        release(queues, name, message, "the client left while waiting")
        return Response(status=204)
    return acknowledged_on_write(queues, name, message)


def message_text(raw: bytes) -> str:
    if len(raw) > services().settings.max_body_bytes:
        raise PushPullError(413, too_large_text())
    if b"\n" in raw:
        raise PushPullError(400, NEWLINES)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PushPullError(400, NOT_TEXT) from None


def too_large_text() -> str:
    return f"Message is over the limit of {services().settings.max_body_bytes} bytes"


def receive_one(queues: QueueService, name: str, wait_s: float) -> dict | None:
    """One message, locked for PULL_LOCK_S. A queue nobody pushed to yet is created, so the pull
    waits for its first message as the original did."""
    try:
        found = queues.receive(name, 1, PULL_LOCK_S, wait_s)
    except NotFound:
        queues.ensure(name)  # a bad name is Invalid here: 400
        found = queues.receive(name, 1, PULL_LOCK_S, wait_s)
    return found[0] if found else None


def payload(message: dict) -> bytes:
    """The message as the original stored it: text as is, JSON (pushed through /v1) as JSON text."""
    body = message["body"]
    if isinstance(body, str):
        text = body
    else:
        try:
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        except (RecursionError, TypeError):  # stored before bodies were limited in depth
            text = jsontext.dumps_iteratively(body, str)
    # A lone surrogate (JSON's "\ud800" in a message pushed natively) is written as its escape.
    return text.encode("utf-8", "backslashreplace")


def acknowledged_on_write(queues: QueueService, name: str, message: dict) -> Response:
    """A response whose message is acknowledged once the server has written all of it.

    The WSGI server writes each chunk the iterator yields before asking for the next one, so the
    code after the `yield` runs only once the body was written; a failed write (the client is
    gone) stops the iteration and the server closes the iterator instead. On close, an unwritten
    message is released to its place in the queue."""
    data = payload(message)
    written = False

    def body():
        nonlocal written
        yield data
        written = True

    def settle() -> None:
        if not written:
            release(queues, name, message, "the response was not written")
            return
        try:
            queues.ack(name, message["id"], message["receipt"])
        except (NotFound, Conflict) as exc:  # its lock ran out and it was taken again, or deleted
            log.warning("pull %s: message %s written but not acknowledged (%s)", name, message["id"], exc)
        except redis.RedisError as exc:
            log.warning("pull %s: message %s written but not acknowledged (%s); it comes back in %ss", name,
                        message["id"], exc, PULL_LOCK_S)

    response = Response(body(), status=200, content_type=TEXT, headers={"Content-Length": str(len(data))})
    response.call_on_close(settle)
    return response


def release(queues: QueueService, name: str, message: dict, why: str) -> None:
    log.info("pull %s: message %s back to the queue (%s)", name, message["id"], why)
    try:
        queues.change_visibility(name, message["id"], message["receipt"], 0)
    except (NotFound, Conflict):
        pass  # deleted, or its lock ran out and it was taken again: nothing to give back
    except redis.RedisError as exc:
        log.warning("pull %s: message %s not released (%s); its lock expires in %ss", name, message["id"], exc,
                    PULL_LOCK_S)


def client_gone(environ: dict) -> bool:
    """Whether the client closed its connection (checked without blocking), so that a message is
    not written into a socket nobody reads: such a write would succeed, and the message be lost."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    if sock is None or not hasattr(sock, "recv") or hasattr(sock, "cipher"):
        return False  # no socket to look at (or TLS, which cannot be peeked): the write decides
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True
