"""The domain's vocabulary: request statuses, the name and URL rules, and time units.

A leaf module: it imports nothing of htq, so every layer may use it (storage names its status
indexes after REQUEST_STATUSES; the API's schemas check the same rules the core does).
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

REQUEST_STATUSES = ("scheduled", "queued", "running", "retrying", "succeeded", "failed", "canceled")
FINAL_STATUSES = ("succeeded", "failed", "canceled")

# Queue and batch names: they also appear in Redis keys, where they never contain ":".
NAME_PATTERN = r"[A-Za-z0-9_-]{1,80}"
NAME_RULE = "Must match [A-Za-z0-9_-]{1,80}."
_NAME = re.compile(NAME_PATTERN)

MAX_URL_CHARS = 2048
NOT_TEXT = "Must be Unicode text (no lone surrogates)."
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
# The URLs the API document promises to take, for clients and API fuzzers: url_problem passes
# every one of them (and also takes IPv6 literals and non-ASCII host names, which a pattern
# would state only at great length).
_PORT = r"(?:[0-9]{0,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~!$&'()*+,;=%-]+(?::{_PORT})?(?:[/?#][^\x00-\x20\x7f]*)?$"


def is_name(text: str) -> bool:
    return _NAME.fullmatch(text) is not None


def is_text(text: str) -> bool:
    """Whether `text` can be written as UTF-8: JSON's "\\ud800" reads as a lone surrogate, which
    cannot be sent in a URL, a header or a body."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a target (a request's url or callback, a batch's endpoint), or None:
    it must be an absolute http(s) URL of at most 2048 characters, with no credentials and no
    spaces or control characters (urlsplit itself skips some: a URL is sent as it was given)."""
    if len(url) > MAX_URL_CHARS:
        return f"At most {MAX_URL_CHARS} characters."
    if not is_text(url):
        return NOT_TEXT
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "Not a valid URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Must be an absolute http or https URL."
    if parts.username is not None or parts.password is not None:
        return "Must not contain credentials."
    if _CONTROL.search(url):
        return "Must not contain whitespace or control characters."
    return None


def ms(seconds: float) -> int:
    """Seconds (a setting or an API field, fractions allowed) as the integer milliseconds that
    Redis scores, script arguments and stored fields use; rounded to the nearest."""
    return round(float(seconds) * 1000)


def seconds(ms_value: int) -> int | float:
    """Milliseconds as seconds for an API answer: a whole number stays an integer (30, not 30.0)."""
    return ms_value // 1000 if ms_value % 1000 == 0 else ms_value / 1000
