"""The workers' broker bookkeeping (app/broker.py) on a real Redis filled to its maxmemory: kombu's
consumer keeps receiving and acknowledging instead of raising out of the worker's event loop."""
from __future__ import annotations

import kombu
import redis

from app.broker import FullRedisQoS, consume_from_a_full_redis
from config.settings import broker_url_for

UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's keys, as Celery's Redis broker uses them


def test_in_a_full_redis_a_consumer_receives_and_acknowledges_and_the_unacked_records_go(redis_url, full_redis):
    consume_from_a_full_redis()
    admin = redis.Redis.from_url(redis_url)
    with kombu.Connection(broker_url_for(redis_url)) as connection:
        queue = connection.SimpleQueue("test-full")
        assert isinstance(queue.channel.qos, FullRedisQoS)
        for n in range(2):
            queue.put({"n": n})
        before = queue.get(timeout=5)
        assert admin.hlen(UNACKED) == 1  # recorded: it would come back if this consumer died
        full_redis.fill()
        after = queue.get(timeout=5)  # its record is refused: it is handed over all the same
        assert (before.payload, after.payload) == ({"n": 0}, {"n": 1})
        assert admin.hlen(UNACKED) == 1
        before.ack()  # a MULTI, which a full Redis refuses even for deletions: done without it
        after.ack()
        assert admin.hlen(UNACKED) == 0 and admin.zcard(UNACKED_INDEX) == 0
        assert full_redis.refuses_writes()
        full_redis.free()
        queue.put({"n": 2})
        assert queue.get(timeout=5).payload == {"n": 2}
        queue.close()
    admin.close()
