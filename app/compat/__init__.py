"""Compatibility profiles: the earlier systems' routes under /compat/<profile>, translated onto the core."""
from __future__ import annotations

import uuid


def new_public_id() -> str:
    """The id a profile hands out for what it creates: a uuid4, as the earlier systems did."""
    return str(uuid.uuid4())


def is_public_id(text: str) -> bool:
    """Whether `text` is a uuid in the canonical form `new_public_id` gives; nothing else can exist."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False

