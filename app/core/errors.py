"""The domain's exceptions. `app/errors.py` maps each to one HTTP status."""
from __future__ import annotations


class HTQError(Exception):
    """Base of every error the domain raises on purpose; `errors` carries per-field messages."""

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class NotFound(HTQError):
    """No such request, queue, message or batch (or never known)."""


class Gone(HTQError):
    """Known once, expired after its retention."""


class Conflict(HTQError):
    """The operation does not fit the current state (cancel after the end, stale receipt)."""


class Invalid(HTQError):
    """Input that passed the schema but breaks a rule of the domain."""


class TooLarge(HTQError):
    """A body, message or record over its size limit."""
