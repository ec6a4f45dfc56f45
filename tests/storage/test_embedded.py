"""The embedded Redis: durable (AOF), and with the settings htq's scripts are fast with."""
from __future__ import annotations

import redis

from app.core.queues import STORED_DEFAULTS
from app.embedded import HASH_MAX_COMPACT_ENTRIES, ZSET_MAX_COMPACT_ENTRIES
from app.storage import keys
from app.storage import queues as store_queues


def test_the_embedded_redis_appends_every_write_to_its_aof(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "everysec"}


def test_a_queue_batch_goes_into_skiplists_and_hash_tables_not_compact_lists(store):
    """A compact sorted set or hash takes each of a batch's 100 entries with a linear search."""
    assert ZSET_MAX_COMPACT_ENTRIES < 100 and HASH_MAX_COMPACT_ENTRIES < 100
    store_queues.push(store, "q", now_ms=1, id_suffix="x", defaults=STORED_DEFAULTS,
                      messages=[(f"j{i}", None) for i in range(100)])
    assert store.redis.object("encoding", keys.queue_ready("q")) == "skiplist"
    assert store.redis.object("encoding", keys.queue_bodies("q")) == "hashtable"
    assert store.redis.object("encoding", keys.queue_meta("q")) == "hashtable"
    store_queues.push(store, "small", now_ms=1, id_suffix="x", defaults=STORED_DEFAULTS, messages=[("j1", None)])
    assert store.redis.object("encoding", keys.queue_ready("small")) in ("ziplist", "listpack")  # Redis 6, 7
