"""Request ids: 26 URL-safe characters that sort by creation time (ULID layout, Crockford base32).

Sorting by time lets the listing index be a plain lexicographic sorted set.
"""
from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(now_ms: int) -> str:
    value = (now_ms << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_valid_id(text: str) -> bool:
    return len(text) == 26 and all(c in _ALPHABET for c in text)
