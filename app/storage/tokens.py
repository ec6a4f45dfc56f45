"""Storage of API tokens made through /v1/tokens: records by id (listing, revocation) and by the
digest of their secret (the per-request lookup: one HGET). The secret itself is never stored."""
from __future__ import annotations

from app.storage import keys
from app.storage.client import Store
from app.storage.scripts import Script

_CREATE = Script("token_create")
_REVOKE = Script("token_revoke")


def _keys() -> dict[str, str]:
    return {"tokens": keys.tokens(), "digests": keys.token_digests()}


def create(store: Store, token_id: str, digest: str, record: str) -> bool:
    """Store `record` (JSON holding `digest`); False if the id or digest exists (nothing written)."""
    return bool(store.run(_CREATE, keys=_keys(), args={"id": token_id, "digest": digest, "record": record},
                          durable=True))


def revoke(store: Store, token_id: str) -> bool:
    """Delete the token; False if there was none."""
    return bool(store.run(_REVOKE, keys=_keys(), args={"id": token_id}, durable=True))


def by_digest(store: Store, digest: str) -> str | None:
    """The JSON record of the token whose secret has this digest, or None."""
    return store.redis.hget(keys.token_digests(), digest)


def by_id(store: Store, token_id: str) -> str | None:
    return store.redis.hget(keys.tokens(), token_id)


def all_records(store: Store) -> list[str]:
    """Every token's JSON record (a few dozen at most: tokens are made by hand)."""
    return list(store.redis.hvals(keys.tokens()))
