"""Bearer-token auth for every route but /healthz, the dashboard and /sqs, on when HTQ_API_TOKENS is set.

Each request's token is looked up (app/core/tokens.py) and must carry the scope app/scopes.py
gives its route: none or an unknown token answers 401, a token without the scope 403. The token
found is `g.token` for the view (who made what). The dashboard (/ui) checks the same tokens
itself, through a login form and a cookie (app/ui/session.py); /sqs takes AWS signatures instead
(app/api/sqs/routes.py).
"""
from __future__ import annotations

from flask import Flask, g, request

from app import scopes
from app.errors import error_response
from app.extensions import services

DASHBOARD = "/ui"


def init_auth(app: Flask) -> None:
    @app.before_request
    def _require_token():
        g.token = None
        tokens = services().tokens
        if not tokens.enabled or request.path == DASHBOARD or request.path.startswith(DASHBOARD + "/"):
            return None
        try:
            needed = scopes.scope_for(request.endpoint, request.method) if request.endpoint else ""
        except scopes.UnmappedRoute:
            return error_response(403, "This route has no scope assigned; only the server's operator can fix that")
        if needed is scopes.OPEN or needed == scopes.SQS_ROUTE:
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        token = tokens.authenticate(given.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            return error_response(401, "Missing or wrong bearer token", None, {"WWW-Authenticate": "Bearer"})
        if needed and not token.allows(needed):
            return error_response(403, f"This token lacks the '{needed}' scope this route needs",
                                  None, {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'})
        g.token = token
        return None
