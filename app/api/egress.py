"""The creation-time check of a token's allowed hosts, for every route that names a target URL
(requests, their batch, schedules, batch endpoints, the compat profiles that create requests).

The token is the request's (`g.token`, set by app/auth.py); without one (tokens off) or with an
empty list, every host passes here, and the server's own guard still applies at delivery.
"""
from __future__ import annotations

from flask import g

from app.core.egress import refused_urls
from app.core.errors import Invalid
from app.core.tokens import NO_ORIGIN, Origin


def check_targets(urls: dict[str, str | None], at: tuple[str, ...] = ()) -> None:
    """Raise Invalid (422) naming each field whose URL's host the token does not admit, nested
    under `at` as the schema nests its errors (("requests", "1") for the second of a batch)."""
    token = g.get("token")
    if token is None or not token.allowed_hosts:
        return
    refused: dict = refused_urls(token.allowed_hosts, urls)
    if refused:
        first = next(iter(refused.values()))[0]
        for key in reversed(at):
            refused = {key: refused}
        raise Invalid(first.rstrip("."), refused)


def request_targets(fields: dict) -> dict[str, str | None]:
    """The target URLs of a /v1/requests body: `url` and `callback_url`."""
    return {"url": fields.get("url"), "callback_url": fields.get("callback_url")}


def origin() -> Origin:
    """What the records this request makes carry of its token (its id and allowed hosts)."""
    token = g.get("token")
    return token.origin if token is not None else NO_ORIGIN
