"""Request checks shared by the JSON blueprints."""
from __future__ import annotations

from flask import abort, request
from flask_smorest import Blueprint

BODY_METHODS = ("POST", "PUT", "PATCH")


def require_json_body(blp: Blueprint) -> None:
    """415 for a request body that is not JSON, before any view or schema sees it."""

    @blp.before_request
    def _check_content_type():
        if request.method in BODY_METHODS and (request.content_length or request.headers.get("Transfer-Encoding")):
            if not request.is_json:
                abort(415, description="Send the body as application/json.")
