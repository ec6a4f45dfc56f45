"""A Redis filled up to its `maxmemory` (policy `noeviction`, as htq requires): what htq meets when
Redis refuses writes, made on a real server, then undone by freeing memory."""
from __future__ import annotations

import redis

from tests.support.waiting import wait_until

FILLER_KEY = "test:filler:{}"
FILLER_VALUE_BYTES = 64 * 1024
FILLER_BYTES = 4 * 1024 * 1024
# Once full, the limit is set this far below what Redis holds: memory that connections closed
# meanwhile give back (each holds tens of KiB of buffers) must not let a write through while a
# test expects refusals. Freeing the filler makes room again.
MARGIN_BYTES = 2 * 1024 * 1024


class FullRedis:
    """fill() writes filler values under a limit set FILLER_BYTES above what Redis holds, until
    Redis refuses one; free() deletes them (the limit stays), as an operator or consumers would
    make room; restore() puts the original settings back.

    While it is full, Redis starts no AOF rewrite: the rewrite's buffers count against maxmemory
    and are given back when it ends, which would make room by itself in the middle of a test."""

    def __init__(self, redis_url: str):
        self.client = redis.Redis.from_url(redis_url)
        self.original = self.client.config_get("maxmemory") | self.client.config_get("auto-aof-rewrite-percentage")
        self.filler_keys: list[str] = []

    def used(self) -> int:
        """The memory Redis holds against maxmemory (its AOF buffers do not count)."""
        memory = self.client.info("memory")
        return int(memory["used_memory"]) - int(memory["mem_not_counted_for_evict"])

    def fill(self) -> None:
        assert self.client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        self.client.config_set("auto-aof-rewrite-percentage", 0)
        wait_until(lambda: not self.client.info("persistence")["aof_rewrite_in_progress"], 30, 0.05)
        self.client.config_set("maxmemory", self.used() + FILLER_BYTES)
        value = b"x" * FILLER_VALUE_BYTES
        try:
            for i in range(4 * FILLER_BYTES // FILLER_VALUE_BYTES):
                key = FILLER_KEY.format(i)
                self.client.set(key, value)
                self.filler_keys.append(key)
        except redis.exceptions.OutOfMemoryError:
            self.client.config_set("maxmemory", self.used() - MARGIN_BYTES)
            return
        raise AssertionError("Redis took four times its limit without refusing a write")

    def refuses_writes(self) -> bool:
        try:
            self.client.set("test:probe", "x")
        except redis.exceptions.OutOfMemoryError:
            return True
        self.client.delete("test:probe")
        return False

    def free(self) -> None:
        if self.filler_keys:
            self.client.delete(*self.filler_keys)
            self.filler_keys = []

    def restore(self) -> None:
        self.free()
        self.client.config_set("maxmemory", self.original["maxmemory"])
        self.client.config_set("auto-aof-rewrite-percentage", self.original["auto-aof-rewrite-percentage"])
        self.client.close()
