"""Bearer-token auth for every route but /healthz, the dashboard and /sqs, on when HTQ_API_TOKENS is set.
The dashboard (/ui) checks the same tokens itself, through a login form and a cookie (app/ui/session.py);
/sqs takes AWS signatures instead (app/api/sqs/routes.py)."""
from __future__ import annotations

import hmac

from flask import Flask, request

from app.errors import error_response

OPEN_PATHS = ("/healthz",)
DASHBOARD = "/ui"
SQS = "/sqs"  # checks AWS signatures itself (app/api/sqs/routes.py)


def init_auth(app: Flask, tokens: tuple[str, ...]) -> None:
    if not tokens:
        return
    encoded = [token.encode() for token in tokens]

    @app.before_request
    def _require_token():
        if request.path in OPEN_PATHS or request.path in (DASHBOARD, SQS) or request.path.startswith(
                (DASHBOARD + "/", SQS + "/")):
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and any(hmac.compare_digest(given.strip().encode(), t) for t in encoded):
            return None
        return error_response(401, "Missing or wrong bearer token", None, {"WWW-Authenticate": "Bearer"})
