"""Token storage: a record under its id and its digest, written and deleted together."""
from __future__ import annotations

import json

from app.core.tokens import CACHE_S, TokenService
from app.storage import keys
from app.storage import tokens as token_storage


def test_create_refuses_a_taken_id_or_digest_and_revoke_deletes_both_entries(store):
    record = json.dumps({"id": "A", "digest": "d1"})
    assert token_storage.create(store, "A", "d1", record)
    assert not token_storage.create(store, "A", "d2", record)
    assert not token_storage.create(store, "B", "d1", record)
    assert store.redis.hlen(keys.tokens()) == 1 and store.redis.hlen(keys.token_digests()) == 1
    assert token_storage.by_digest(store, "d1") == record == token_storage.by_id(store, "A")
    assert token_storage.revoke(store, "A")
    assert not token_storage.revoke(store, "A")
    assert not store.redis.exists(keys.tokens(), keys.token_digests())


def test_a_process_forgets_a_token_revoked_elsewhere_after_its_memory_expires(store):
    now = [100.0]
    here = TokenService(store, ("admin",), monotonic=lambda: now[0])
    elsewhere = TokenService(store, ("admin",))
    token, secret = elsewhere.create("t", ["read"])
    assert here.authenticate(secret) == token
    elsewhere.revoke(token.id)
    now[0] += CACHE_S - 0.01
    assert here.authenticate(secret) == token  # still remembered, without asking Redis
    now[0] += 0.02
    assert here.authenticate(secret) is None
    assert here.authenticate("admin").scopes == {"admin"}
    assert here.authenticate("htq_unknown") is None and here.authenticate("") is None
