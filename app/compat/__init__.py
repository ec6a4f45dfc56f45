"""Compatibility profiles: the earlier systems' routes under /compat/<profile>, translated onto the core."""
from __future__ import annotations

import uuid
from collections.abc import Callable

import redis
from flask import Blueprint

from app.errors import redis_down_answer, redis_full_answer
from app.storage.client import OUT_OF_MEMORY, UNAVAILABLE


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
    """A Redis outage, or a write Redis refused because it is out of memory, answers 503 with
    Retry-After, in the profile's own error shape: `render(code, text, headers)` builds that shape."""

    def _redis_down(exc: redis.RedisError):
        message, _, headers = redis_down_answer(exc)
        return render(503, message, headers)

    def _redis_full(exc: redis.RedisError):
        message, _, headers = redis_full_answer(exc)
        return render(503, message, headers)

    for error in UNAVAILABLE:
        blp.register_error_handler(error, _redis_down)
    blp.register_error_handler(OUT_OF_MEMORY, _redis_full)
