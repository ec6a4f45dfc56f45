"""API tokens: the admin tokens of HTQ_API_TOKENS, and scoped tokens made through /v1/tokens.

A scoped token's secret is `htq_` + 43 URL-safe characters (256 random bits). It is shown once,
at creation, and stored only as HMAC-SHA256(DIGEST_KEY, secret). A fast hash is enough here: a
slow one (bcrypt, scrypt) protects secrets people choose, which are few enough to try one by
one; no one can try 2^256 secrets against a leaked digest however fast each try is, so a slow
hash would only add milliseconds to every request. The key is a fixed label, not a secret: it
keeps these digests apart from any other SHA-256 of the same text (htq processes share no
secret to key it with, and the 256 random bits are what protects the token).

Lookups go to Redis (one HGET of the digest) and a token found is remembered by the process for
CACHE_S, so a busy client costs one lookup per CACHE_S per web process instead of one per request,
and a revoked token stops working everywhere within CACHE_S plus the time of a request in flight.
Unknown secrets are never remembered: a token made a moment ago on another process works at once.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.core import clock
from app.core.errors import Invalid, NotFound
from app.core.ids import is_valid_id, new_id
from app.storage import tokens as token_storage
from app.storage.client import Store

READ, PUBLISH, CONSUME, ADMIN = "read", "publish", "consume", "admin"
SCOPES = (READ, PUBLISH, CONSUME, ADMIN)
SECRET_PREFIX = "htq_"
DIGEST_KEY = b"htq api token v1"
CACHE_S = 0.5  # how long a process trusts a token it found (revocation reaches it within this)
CACHE_MAX = 10_000  # tokens remembered per process; past this the memory is emptied and refilled
MAX_ALLOWED_HOSTS = 100
ENV_TOKEN_ID = "env"  # what records name as the maker when it was a token of HTQ_API_TOKENS
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


@dataclass(frozen=True)
class Origin:
    """Who made a request, schedule or batch, copied onto it: the token's id (ENV_TOKEN_ID for a
    token of HTQ_API_TOKENS, None with auth off; never the secret) and its allowed hosts, which
    the worker checks again at delivery against the address it connects to."""

    token_id: str | None = None
    allowed_hosts: tuple[str, ...] = ()

    def stamp(self, spec: dict) -> dict:
        """`spec` with `token_id` and, for a token with an allowlist, `allowed_hosts`."""
        if self.token_id is not None:
            spec["token_id"] = self.token_id
        if self.allowed_hosts:
            spec["allowed_hosts"] = list(self.allowed_hosts)
        return spec

    @classmethod
    def of(cls, spec: dict) -> Origin:
        """The origin `stamp` wrote into `spec` (NO_ORIGIN for one made before, or without a token)."""
        return cls(spec.get("token_id"), tuple(spec.get("allowed_hosts") or ()))


NO_ORIGIN = Origin()


def is_token_id(text: str) -> bool:
    """Whether `text` can name a maker: a scoped token's id or ENV_TOKEN_ID."""
    return text == ENV_TOKEN_ID or is_valid_id(text)


@dataclass(frozen=True)
class Token:
    """Who a request comes from: `id` None for a token of HTQ_API_TOKENS."""

    id: str | None
    name: str
    scopes: frozenset[str]
    allowed_hosts: tuple[str, ...] = ()
    created_ms: int = 0

    @property
    def origin(self) -> Origin:
        """What the records this token makes carry of it."""
        return Origin(self.id if self.id is not None else ENV_TOKEN_ID, self.allowed_hosts)

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    def public(self) -> dict:
        """What GET /v1/tokens shows (never the secret, nor its digest)."""
        return {"id": self.id, "name": self.name, "scopes": [s for s in SCOPES if s in self.scopes],
                "allowed_hosts": list(self.allowed_hosts), "created_at": clock.to_rfc3339(self.created_ms)}


def digest(secret: str) -> str:
    return hmac.new(DIGEST_KEY, secret.encode(), hashlib.sha256).hexdigest()


def normalize_allowed_hosts(entries: Iterable[str]) -> tuple[str, ...]:
    """Each entry checked and written one way: a host name (lower case, no trailing dot), a
    `*.suffix` pattern, an IP address or a CIDR network (its canonical text). Raises Invalid
    naming the entries that are none of these."""
    normalized, wrong = [], {}
    for index, entry in enumerate(entries):
        value = _normalize_host_entry(entry)
        if value is None:
            wrong[str(index)] = [f"{entry!r} is not a host name, *.suffix, IP address or CIDR network."]
        elif value not in normalized:
            normalized.append(value)
    if wrong:
        raise Invalid("Validation failed", {"allowed_hosts": wrong})
    if len(normalized) > MAX_ALLOWED_HOSTS:
        raise Invalid("Validation failed", {"allowed_hosts": [f"At most {MAX_ALLOWED_HOSTS} entries."]})
    return tuple(normalized)


def _normalize_host_entry(entry: str) -> str | None:
    text = entry.strip().lower().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=True))
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if "/" in text:
        return None
    name = text[2:] if text.startswith("*.") else text
    return text if _HOST_NAME.match(name) else None


class TokenService:
    """Create, list, revoke and look up tokens; `env_tokens` (HTQ_API_TOKENS) are admin tokens."""

    def __init__(self, store: Store, env_tokens: Iterable[str], clock_ms: Callable[[], int] = clock.real_ms,
                 monotonic: Callable[[], float] = time.monotonic):
        self._store = store
        self._env = [secret.encode() for secret in env_tokens]
        self._clock_ms = clock_ms
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Token]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Auth is on when HTQ_API_TOKENS names at least one (admin) token."""
        return bool(self._env)

    def create(self, name: str, scopes: Iterable[str], allowed_hosts: Iterable[str] = ()) -> tuple[Token, str]:
        """A new token and its secret (the only time the secret is known)."""
        scope_set = frozenset(scopes)
        unknown = sorted(scope_set - set(SCOPES))
        if unknown or not scope_set:
            raise Invalid("Validation failed", {"scopes": [f"One or more of {', '.join(SCOPES)}."]})
        hosts = normalize_allowed_hosts(allowed_hosts)
        now_ms = self._clock_ms()
        token = Token(new_id(now_ms), name, scope_set, hosts, now_ms)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        record = {"id": token.id, "name": name, "scopes": sorted(scope_set), "allowed_hosts": list(hosts),
                  "created_ms": now_ms, "digest": digest(secret)}
        if not token_storage.create(self._store, token.id, record["digest"], json.dumps(record)):
            raise RuntimeError("token id or digest already taken")  # 2^-80 or 2^-256: not expected
        return token, secret

    def list(self) -> list[Token]:
        tokens = [_from_record(text) for text in token_storage.all_records(self._store)]
        return sorted(tokens, key=lambda token: token.id)

    def get(self, token_id: str) -> Token:
        record = token_storage.by_id(self._store, token_id) if is_valid_id(token_id) else None
        if record is None:
            raise NotFound(f"No token {token_id}")
        return _from_record(record)

    def with_digest(self, token_id: str) -> tuple[Token, str] | None:
        """The token and the digest stored for it (what keys its dashboard sessions), or None
        once revoked: one HGET."""
        record = token_storage.by_id(self._store, token_id) if is_valid_id(token_id) else None
        return (_from_record(record), json.loads(record)["digest"]) if record is not None else None

    def revoke(self, token_id: str) -> None:
        if not is_valid_id(token_id) or not token_storage.revoke(self._store, token_id):
            raise NotFound(f"No token {token_id}")
        with self._lock:
            self._cache = {key: entry for key, entry in self._cache.items() if entry[1].id != token_id}

    def authenticate(self, secret: str) -> Token | None:
        """The token whose secret this is, or None. HTQ_API_TOKENS are compared in constant time
        and cost no Redis lookup; scoped ones cost at most one HGET per CACHE_S."""
        given = secret.encode()
        if any(hmac.compare_digest(given, env) for env in self._env):
            return ENV_TOKEN
        if not secret.startswith(SECRET_PREFIX):
            return None
        key = digest(secret)
        now = self._monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = token_storage.by_digest(self._store, key)
        if record is None:
            with self._lock:
                self._cache.pop(key, None)
            return None
        token = _from_record(record)
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = (now + CACHE_S, token)
        return token


ENV_TOKEN = Token(None, "HTQ_API_TOKENS", frozenset({ADMIN}))


def _from_record(text: str) -> Token:
    record = json.loads(text)
    return Token(record["id"], record["name"], frozenset(record["scopes"]), tuple(record["allowed_hosts"]),
                 int(record["created_ms"]))
