"""Request ids: 26 URL-safe characters that sort by creation time (ULID layout, Crockford base32).

Sorting by time lets the listing index be a plain lexicographic sorted set.
"""
from __future__ import annotations

import secrets
import threading

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_last = [0, 0]  # the time and random part of this process's latest id
_lock = threading.Lock()


def new_id(now_ms: int) -> str:
    """A new id; ids made by one process in the same millisecond still sort in creation order
    (the random part of the next is the previous one's plus one, as monotonic ULIDs do)."""
    with _lock:
        if now_ms <= _last[0] and _last[1] + 1 < 1 << _RANDOM_BITS:
            now_ms, random_part = _last[0], _last[1] + 1
        else:
            random_part = secrets.randbits(_RANDOM_BITS)
        _last[:] = [now_ms, random_part]
    value = (now_ms << _RANDOM_BITS) | random_part
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_valid_id(text: str) -> bool:
    return len(text) == 26 and all(c in _ALPHABET for c in text)
