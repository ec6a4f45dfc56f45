"""The dashboard's login session and its defence against cross-site form posts.

Session: with HTQ_API_TOKENS set, the login form takes one of those tokens and answers with a
cookie `htq_ui_session` = `<expiry>.<HMAC-SHA256 keyed with the token over the expiry>`: valid
while one of the configured tokens produces it and the expiry (SESSION_S after login) has not
passed. The token itself never goes into the cookie, so a cookie read off a browser opens the
dashboard for a few hours but not the API, and removing a token from HTQ_API_TOKENS ends its
sessions. No state is kept on the server: every web process checks any session.

A token made through /v1/tokens logs in too; its cookie is `<expiry>.<token id>.<HMAC keyed
with the digest htq stores of the token>` (the token's secret is not kept, its digest is), so
revoking the token ends its sessions, and each page checks the token's scopes (app/scopes.py).

Cross-site posts: every form carries the value of the `htq_ui_csrf` cookie (random, set on the
first page) in a hidden field, and a POST whose field does not equal the cookie is refused (403):
the "double submit" pattern. It needs no secret shared between web processes (htq has none),
and works with tokens on and off alike. Another site can neither read the cookie nor, as it is
SameSite=Strict, make a browser send it with a cross-site post; a post whose Origin header names
another host is refused as well. Both cookies are HttpOnly, SameSite=Strict, limited to /ui, and
Secure when the page came over https: to htq itself, or to a proxy in front that says so with
`X-Forwarded-Proto: https`. That header is taken from anyone, since all it can do is ask for
the stricter cookie.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from flask import Request, Response

T = TypeVar("T")

SESSION_COOKIE = "htq_ui_session"
CSRF_COOKIE = "htq_ui_csrf"
CSRF_FIELD = "csrf"
COOKIE_PATH = "/ui"
SESSION_S = 12 * 3600
_SESSION_CONTEXT = b"htq-ui-session:"


def session_value(token: str, expires_s: int) -> str:
    mac = hmac.new(token.encode(), _SESSION_CONTEXT + str(expires_s).encode(), hashlib.sha256).hexdigest()
    return f"{expires_s}.{mac}"


def valid_session(value: str | None, tokens: tuple[str, ...], now_s: float) -> bool:
    """Whether the session cookie's value was made by one of `tokens` and has not expired."""
    expires, _, _mac = (value or "").partition(".")
    if not expires.isdigit() or int(expires) <= now_s:
        return False
    return any(hmac.compare_digest(session_value(token, int(expires)), value) for token in tokens)


def scoped_session_value(token_digest: str, token_id: str, expires_s: int) -> str:
    message = _SESSION_CONTEXT + f"{expires_s}.{token_id}".encode()
    mac = hmac.new(token_digest.encode(), message, hashlib.sha256).hexdigest()
    return f"{expires_s}.{token_id}.{mac}"


def scoped_session_token(value: str | None, lookup: Callable[[str], tuple[T, str] | None], now_s: float) -> T | None:
    """The scoped token that made this session cookie, if the cookie has not expired and the
    token still exists: `lookup(id)` gives the token and its stored digest, None once revoked."""
    expires, token_id, _mac = ((value or "").split(".", 2) + ["", ""])[:3]
    if not expires.isdigit() or int(expires) <= now_s or not token_id:
        return None
    found = lookup(token_id)
    if found is None:
        return None
    token, token_digest = found
    return token if hmac.compare_digest(scoped_session_value(token_digest, token_id, int(expires)), value) else None


def known_token(given: str, tokens: tuple[str, ...]) -> str | None:
    """The configured token equal to `given` (compared in constant time), or None."""
    found = None
    for token in tokens:
        if hmac.compare_digest(given.encode(), token.encode()):
            found = token
    return found


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(request: Request) -> bool:
    """A POST carries the cookie's value in its form, and, when the browser says where it comes
    from (Origin), comes from this host."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    field = request.form.get(CSRF_FIELD, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), field.encode()):
        return False
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


def over_https(request: Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.is_secure or forwarded == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age_s: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age_s, path=COOKIE_PATH, secure=over_https(request),
                        httponly=True, samesite="Strict")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, secure=over_https(request), httponly=True, samesite="Strict")
