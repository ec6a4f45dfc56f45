"""Rules every response of the application follows, whichever blueprint or error handler made it."""
from __future__ import annotations

from flask import Flask, Response

# Statuses that carry no content (RFC 9110 15.3.5, 15.4.5): no Content-Type either. Flask gives
# every response one (text/html, or application/json from flask-smorest's `response(204)`).
NO_CONTENT_STATUSES = frozenset({204, 304})


def _drop_content_type(response: Response) -> Response:
    if response.status_code in NO_CONTENT_STATUSES:
        response.headers.pop("Content-Type", None)
    return response


def register_response_rules(app: Flask) -> None:
    app.after_request(_drop_content_type)
