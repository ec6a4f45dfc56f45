"""Compatibility profiles: the earlier systems' routes under /compat/<profile>, translated onto the core."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import redis
from flask import Blueprint

from app.errors import REDIS_RETRY_AFTER_S, unavailable_message
from app.storage.client import UNAVAILABLE

log = logging.getLogger(__name__)


def new_public_id() -> str:
    """The id a profile hands out for what it creates: a uuid4, as the earlier systems did."""
    return str(uuid.uuid4())


def is_public_id(text: str) -> bool:
    """Whether `text` is a uuid in the canonical form `new_public_id` gives; nothing else can exist."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def answer_redis_outage(blp: Blueprint, render: Callable[..., object]) -> None:
    """A Redis outage answers 503 with Retry-After, in the profile's own error shape:
    `render(code, text, headers)` builds that shape."""

    def _redis_down(exc: redis.RedisError):
        log.warning("Redis unavailable: %s", exc)
        return render(503, unavailable_message(exc), {"Retry-After": str(REDIS_RETRY_AFTER_S)})

    for error in UNAVAILABLE:
        blp.register_error_handler(error, _redis_down)
