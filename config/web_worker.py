"""The web server's gunicorn worker: gevent, serving HTTP with gevent's own server (pywsgi).

Each long poll (a queue receive, a response wait) is a parked greenlet, so hundreds of waiting
clients cost little while other requests keep being answered. gunicorn's `gevent_pywsgi` worker
answers about 60% more requests per second than its `gevent` worker on 2 cores (5,300 against
3,300 for a bare WSGI app), but pywsgi keeps an idle keep-alive connection open for as long as
the client does, so a stopping worker would wait out its whole graceful timeout for clients that
send nothing. Here, as in gunicorn's own workers, a connection that brings no request for
`keepalive` seconds is closed.

The server also bounds what it reads before the app sees a request: the request line (8 KiB,
pywsgi's, 414 beyond), and the header block, MAX_HEADER_BYTES in at most MAX_HEADER_FIELDS
lines (431 beyond; pywsgi alone took 100 lines of 64 KiB each). What it refuses is answered in
htq's JSON error shape, as the app answers: these answers come before any route, so compat
paths get it too.
"""
from __future__ import annotations

import email.parser
import json
from http import HTTPStatus

import gevent
from gevent.pywsgi import MAX_REQUEST_LINE, OldMessage
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100


class HeadersTooLarge(ValueError):
    """The header block is over MAX_HEADER_BYTES or MAX_HEADER_FIELDS lines."""


def error_response(code: int, message: str) -> bytes:
    """A complete HTTP response in htq's error shape, closing the connection."""
    body = json.dumps({"code": code, "status": HTTPStatus(code).phrase, "message": message}).encode()
    head = (f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


REQUEST_LINE_TOO_LONG = error_response(414, f"The request line is over {MAX_REQUEST_LINE} bytes")
HEADERS_TOO_LARGE = error_response(431, f"The request headers are over {MAX_HEADER_BYTES} bytes or "
                                        f"{MAX_HEADER_FIELDS} lines")
BAD_REQUEST = error_response(400, "Not a valid HTTP request")


class IdleClosingHandler(PyWSGIHandler):
    idle_timeout_s: float = 5.0

    def read_requestline(self) -> str:
        with gevent.Timeout(self.idle_timeout_s, False):
            return super().read_requestline()
        return ""  # no request came in time: pywsgi closes the connection

    def MessageClass(self, fp, *args):  # pywsgi's name for its header parser
        """The headers, parsed as pywsgi parses them (with http.client's email parser), read
        only within the limits."""
        lines, size = [], 0
        while True:
            line = fp.readline(MAX_HEADER_BYTES + 1 - size)
            size += len(line)
            if line in (b"\r\n", b"\n", b""):
                break
            if size > MAX_HEADER_BYTES or len(lines) == MAX_HEADER_FIELDS:
                raise HeadersTooLarge()
            lines.append(line)
        return email.parser.Parser(_class=OldMessage).parsestr(b"".join(lines).decode("iso-8859-1"))

    def handle_one_request(self):
        result = super().handle_one_request()
        if isinstance(result, tuple) and result[0] == "414":
            return "414", REQUEST_LINE_TOO_LONG
        return result

    def _handle_client_error(self, ex):
        status, _ = super()._handle_client_error(ex)  # logs it
        if isinstance(ex, HeadersTooLarge):
            return "431", HEADERS_TOO_LARGE
        return status, BAD_REQUEST


class Worker(GeventPyWSGIWorker):
    wsgi_handler = IdleClosingHandler

    def init_process(self) -> None:
        IdleClosingHandler.idle_timeout_s = self.cfg.keepalive
        super().init_process()
