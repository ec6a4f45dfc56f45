"""How the dashboard writes times, durations and bodies (Jinja filters and globals)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from app.core import clock

PREVIEW_CHARS = 16_384  # of a body, on a page
SHORT_PREVIEW_CHARS = 2_048  # of each dead letter or dead batch in a list
PRETTY_MAX_CHARS = 262_144  # JSON text up to this long is indented for reading


def duration(ms_value: int | float | None) -> str:
    """`850 ms`, `4.2 s`, `3 min 4 s`, `2 h 5 min`, `3 d 4 h`."""
    if ms_value is None:
        return "–"
    ms_value = max(0, int(ms_value))
    if ms_value < 1000:
        return f"{ms_value} ms"
    if ms_value < 60_000:
        return f"{ms_value / 1000:.1f}".removesuffix(".0") + " s"
    seconds = ms_value // 1000
    for big, big_name, small, small_name in ((86400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s")):
        if seconds >= big:
            rest = seconds % big // small
            return f"{seconds // big} {big_name}" + (f" {rest} {small_name}" if rest else "")
    return f"{seconds} s"  # not reached


def when(text: str | None, now_ms: int, short: bool = False) -> Markup:
    """A contract time (`2026-11-23T08:21:59.123Z`) for reading: the date and time in UTC, and how
    long ago (or how far ahead) it is from `now_ms`; `short`, only the latter (the time in its title)."""
    if not text:
        return Markup('<span class="muted">–</span>')
    delta = now_ms - clock.from_rfc3339(text.replace("Z", "+00:00"))
    relative = f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"
    if short:
        return Markup('<time datetime="{0}" title="{0}">{1}</time>').format(text, relative)
    return Markup('<time datetime="{0}" title="{0}">{1}</time> <span class="muted">{2}</span>').format(
        text, f"{text[:10]} {text[11:19]}", relative)


def seconds(value: float | None) -> str:
    """A duration given in seconds (an API field), as `duration` writes it."""
    return duration(None if value is None else value * 1000)


@dataclass(frozen=True)
class Preview:
    """A body as shown on a page: at most `limit` characters of `text`, of `total`."""

    text: str
    total: int
    truncated: bool


def preview(text: str, limit: int = PREVIEW_CHARS, *, pretty_json: bool = False) -> Preview:
    """`text` cut at `limit` characters; with `pretty_json`, JSON text (not too long) indented first."""
    if pretty_json and len(text) <= PRETTY_MAX_CHARS:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            pass
    return Preview(text[:limit], len(text), len(text) > limit)


def preview_value(value: Any, limit: int = PREVIEW_CHARS) -> Preview:
    """A JSON value (a message body, a record) cut at `limit` characters: a string as it is,
    anything else as indented JSON."""
    return preview(value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False), limit)


def json_content(headers: dict[str, str] | None) -> bool:
    """Whether headers say the body is JSON."""
    return any(name.lower() == "content-type" and "json" in value.lower() for name, value in (headers or {}).items())


def status_badge(status: str) -> Markup:
    return Markup('<span class="badge badge-{0}">{0}</span>').format(escape(status))
