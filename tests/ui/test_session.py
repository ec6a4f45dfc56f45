"""The dashboard's session value and CSRF check, as plain functions (the HTTP tests use them through a server)."""
from __future__ import annotations

from flask import Flask

from app.ui import session

TOKENS = ("first", "second")


def test_a_session_is_valid_for_a_configured_token_until_it_expires():
    value = session.session_value("second", 2000)
    assert "second" not in value
    assert session.valid_session(value, TOKENS, now_s=1999)
    assert not session.valid_session(value, TOKENS, now_s=2000)  # expired
    assert not session.valid_session(value, ("first",), now_s=1000)  # its token was removed


def test_a_forged_session_is_refused():
    value = session.session_value("second", 2000)
    for forged in ("", None, "2000", "2000.", value.replace("2000", "9000", 1), value[:-1] + "0",
                   session.session_value("guessed", 2000), "x" + value):
        assert not session.valid_session(forged, TOKENS, now_s=1000), forged


def test_known_token_compares_whole_tokens():
    assert session.known_token("second", TOKENS) == "second"
    assert session.known_token("secon", TOKENS) is None and session.known_token("", TOKENS) is None


def test_csrf_needs_the_cookie_value_in_the_form_from_this_origin():
    app = Flask(__name__)
    cases = [
        ({"csrf": "abc"}, "htq_ui_csrf=abc", {}, True),
        ({"csrf": "abc"}, "htq_ui_csrf=abc", {"Origin": "http://localhost"}, True),
        ({"csrf": "abc"}, "htq_ui_csrf=abc", {"Origin": "http://evil.example"}, False),
        ({"csrf": "abc"}, "htq_ui_csrf=abc", {"Origin": "null"}, False),
        ({"csrf": "abd"}, "htq_ui_csrf=abc", {}, False),
        ({}, "htq_ui_csrf=abc", {}, False),
        ({"csrf": ""}, "htq_ui_csrf=", {}, False),
        ({"csrf": "abc"}, "", {}, False),
    ]
    for form, cookie, headers, expected in cases:
        with app.test_request_context("/ui/x", method="POST", data=form,
                                      headers={**headers, "Cookie": cookie}) as context:
            assert session.csrf_ok(context.request) is expected, (form, cookie, headers)


def test_cookies_are_strict_http_only_and_secure_over_https():
    app = Flask(__name__)
    for url, headers, secure in (("http://h/ui", {}, False), ("https://h/ui", {}, True),
                                 ("http://h/ui", {"X-Forwarded-Proto": "https"}, True)):
        with app.test_request_context(url, headers=headers) as context:
            response = app.response_class()
            session.set_cookie(response, context.request, session.SESSION_COOKIE, "v", max_age_s=60)
            parts = {part.strip() for part in response.headers["Set-Cookie"].split(";")}
            assert {"HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=60"} <= parts
            assert ("Secure" in parts) is secure


def test_a_scoped_session_needs_its_token_to_exist_and_its_stored_digest_to_match():
    stored = {"01JEAKQ7M3F4W2Z8V6T5R9N1PB": ("the token", "digest-1")}
    value = session.scoped_session_value("digest-1", "01JEAKQ7M3F4W2Z8V6T5R9N1PB", 2000)
    assert session.scoped_session_token(value, stored.get, now_s=1999) == "the token"
    assert session.scoped_session_token(value, stored.get, now_s=2000) is None  # expired
    flipped = value[:-1] + ("1" if value.endswith("0") else "0")
    for forged in (session.scoped_session_value("digest-2", "01JEAKQ7M3F4W2Z8V6T5R9N1PB", 2000),
                   value.replace("2000.", "3000.", 1), flipped, "2000..", ""):
        assert session.scoped_session_token(forged, stored.get, now_s=1000) is None, forged
    assert session.scoped_session_token(value, {}.get, now_s=1000) is None  # revoked
