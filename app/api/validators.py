"""Field types and checks shared by the API schemas: URLs, header maps, times, names."""
from __future__ import annotations

import re
from datetime import datetime

from marshmallow import ValidationError, fields, validate

from app.core.model import MAX_URL_CHARS, NAME_PATTERN, NAME_RULE, NOT_TEXT, URL_PATTERN, is_text, ms, url_problem

MAX_HEADERS = 64
MAX_HEADER_BYTES = 8 * 1024
FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade",
                     "keep-alive", "trailer"}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def check_target_url(value: str) -> None:
    problem = url_problem(value)
    if problem:
        raise ValidationError(problem)


class TargetUrl(fields.String):
    """An absolute http(s) URL with no credentials, at most 2048 characters."""

    def __init__(self, **kwargs):
        metadata = {"pattern": URL_PATTERN, "maxLength": MAX_URL_CHARS, **kwargs.pop("metadata", {})}
        super().__init__(validate=check_target_url, metadata=metadata, **kwargs)


def check_headers(value: dict) -> None:
    if len(value) > MAX_HEADERS:
        raise ValidationError(f"At most {MAX_HEADERS} headers.")
    problems = {}
    for name, text in value.items():
        lowered = name.lower()
        if not _TOKEN.match(name):
            problems[name] = "Not a valid header name."
        elif lowered in FORBIDDEN_HEADERS or lowered.startswith("proxy-"):
            problems[name] = "Hop-by-hop and framing headers are set by htq."
        elif any(c in text for c in "\r\n\0"):
            problems[name] = "Must not contain CR, LF or NUL."
        elif not is_text(text):
            problems[name] = NOT_TEXT
        elif len(name) + len(text.encode()) > MAX_HEADER_BYTES:
            problems[name] = f"At most {MAX_HEADER_BYTES} bytes."
    if problems:
        raise ValidationError(problems)


class HeaderMap(fields.Dict):
    """Header names to values, sent as given: the rules on values and the count are in the API
    document (app.api.openapi), the rules on names cannot be (OpenAPI 3.0 has no propertyNames)."""

    def __init__(self, **kwargs):
        super().__init__(keys=fields.String(), values=fields.String(), validate=check_headers, **kwargs)


class JsonNumber(fields.Float):
    """A number in a JSON body: a JSON number, not a string that holds one (marshmallow's Float
    takes "1.5"), as the API document says."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class JsonBoolean(fields.Boolean):
    """true or false in a JSON body, not 0, 1, "yes" ... (which marshmallow's Boolean takes)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class EpochOrTime(fields.Field):
    """An RFC 3339 time with a zone, or epoch seconds; loads as epoch milliseconds."""

    MAX_EPOCH_S = 1e11
    DOCUMENT = {"oneOf": [{"type": "string", "format": "date-time"},
                          {"type": "number", "minimum": 0, "exclusiveMaximum": True, "maximum": MAX_EPOCH_S}]}

    def __init__(self, **kwargs):
        super().__init__(metadata={**self.DOCUMENT, **kwargs.pop("metadata", {})}, **kwargs)

    default_error_messages = {"invalid": "Must be an RFC 3339 time with a zone or epoch seconds."}

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, (int, float)):
            if not 0 <= value < self.MAX_EPOCH_S:
                raise self.make_error("invalid")
            return ms(value)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise self.make_error("invalid") from None
            if moment.tzinfo is None:
                raise self.make_error("invalid")
            return ms(moment.timestamp())
        raise self.make_error("invalid")


def check_text(value: str) -> None:
    if not is_text(value):
        raise ValidationError(NOT_TEXT)


def name_field(**kwargs) -> fields.String:
    """A queue, batch or schedule name. (The rule's braces are doubled: marshmallow formats it.)"""
    error = NAME_RULE.replace("{", "{{").replace("}", "}}")
    return fields.String(validate=validate.Regexp(f"^{NAME_PATTERN}$", error=error), **kwargs)


class StatusRule(fields.Field):
    """One entry of `success.status` or `retry.on`: an HTTP status code (100-599), a class such as
    "5xx", or one of `kinds` (retry.on's "network" and "timeout")."""

    def __init__(self, kinds: tuple[str, ...] = (), **kwargs):
        self.words = ("1xx", "2xx", "3xx", "4xx", "5xx", *kinds)
        document = {"oneOf": [{"type": "integer", "minimum": 100, "maximum": 599},
                              {"type": "string", "enum": list(self.words)}]}
        super().__init__(metadata={**document, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
        if isinstance(value, str) and value in self.words:
            return value
        raise ValidationError(f"Must be a status code (100-599) or one of {', '.join(self.words)}.")
