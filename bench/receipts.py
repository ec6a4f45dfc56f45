"""Redis memory of batch record receipts, per record, against the same batches without them and
against two other layouts of the same facts, all measured in one run on one Redis.

Run from the repository root, with the project's virtualenv:

    python -m bench.receipts                      # 100,000 records, batches of 10 and of 500
    python -m bench.receipts --count 20000 --body-bytes 1000

It starts its own Redis (`app.processes.TemporaryRedis`) and stores records through the core
services as the API and the workers do (no HTTP, nothing published). For each batch size:

- taken (unsent) batches: memory per record, then the same less the receipts index (what the
  batches cost before receipts existed: the "before" figure), and the difference;
- sent batches kept for the retention period: before receipts a sent batch left nothing; now it
  leaves one receipt per batch (index entry, sent hash entry, expiry entry);
- the same sent receipts laid out as one hash per batch (record number -> state), and as one
  key per record (a string with a TTL, the simplest layout), written directly for comparison;
- the time of a receipt lookup (the script and its round trip), p50 and p99.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402

from app.core.batches import BatchForwarder, BatchService  # noqa: E402
from app.core.outcome import SUCCEEDED, Outcome  # noqa: E402
from app.core.publish import Publisher  # noqa: E402
from app.processes import TemporaryRedis  # noqa: E402
from app.storage import batches as store_batches  # noqa: E402
from app.storage import keys  # noqa: E402
from app.storage.client import Store  # noqa: E402
from bench.memory import Discard, json_body  # noqa: E402
from config import Settings  # noqa: E402

NAME = "rcpt"
CALL = 1000  # records per add call, as the batch route takes them
SENT = Outcome(SUCCEEDED, status_code=200, elapsed_ms=12)


class Bench:
    def __init__(self, redis_url: str, count: int, body_bytes: int):
        self.settings = Settings(redis_url=redis_url)
        self.store = Store.from_url(redis_url)
        self.count = count
        self.body = json_body(body_bytes)
        publisher = Publisher(Discard())
        self.service = BatchService(self.store, publisher, self.settings)
        self.forwarder = BatchForwarder(self.store, publisher, self.settings)

    def used(self) -> int:
        memory = self.store.redis.info("memory")
        return int(memory["used_memory"]) - int(memory["mem_not_counted_for_evict"])

    def fresh(self, max_records: int) -> int:
        """An emptied Redis with the batch configured; returns used memory."""
        self.store.redis.flushall()
        self.service.configure(NAME, {"endpoint": "https://example.com/ingest", "max_records": max_records,
                                      "max_bytes": 16 * 1024 * 1024, "interval": 86400})
        return self.used()

    def add_all(self) -> list[str]:
        """Every record added; the ids of the taken batches."""
        taken = []
        for start in range(0, self.count, CALL):
            added = store_batches.add(self.store, NAME, [self.body] * min(CALL, self.count - start),
                                      now_ms=self.service.now_ms(), grace_ms=self.settings.publish_grace_ms)
            taken.extend(added.taken)
        return taken

    def send_all(self, batch_ids: list[str]) -> None:
        for batch_id in batch_ids:
            claimed = self.forwarder.claim(NAME, batch_id, 1, "bench@host")
            self.forwarder.finish(claimed, SENT)

    def per_record(self, grown: int) -> float:
        return grown / self.count

    def run(self, max_records: int) -> None:
        say = print
        batches = self.count // max_records
        say(f"\nbatches of {max_records} records ({batches:,} batches, {self.count:,} records of "
            f"{len(self.body)} bytes)")

        # Taken, unsent: with receipts, then without the index (as before).
        base = self.fresh(max_records)
        batch_ids = self.add_all()
        with_index = self.used() - base
        self.store.redis.delete(keys.batch_receipts(NAME))
        without_index = self.used() - base
        say(f"  taken, unsent     before {self.per_record(without_index):8.1f} B/record   "
            f"after {self.per_record(with_index):8.1f} B/record   receipts "
            f"{self.per_record(with_index - without_index):6.2f} B/record "
            f"({(with_index - without_index) / len(batch_ids):.0f} B/batch)")

        # Sent and kept for the retention: before, nothing was left.
        base = self.fresh(max_records)
        batch_ids = self.add_all()
        self.send_all(batch_ids)
        receipts = self.used() - base
        lookups = self.lookups(batch_ids)
        say(f"  sent, in retention before {0:8.1f} B/record   after {self.per_record(receipts):8.1f} B/record "
            f"({receipts / len(batch_ids):.0f} B/batch)")

        # The same facts in other layouts, written directly.
        base = self.fresh(max_records)
        pipe = self.store.redis.pipeline(transaction=False)
        now = self.service.now_ms()
        for index, batch_id in enumerate(batch_ids):
            fields = {str(index * max_records + n + 1): f"sent {batch_id} {now} 200" for n in range(max_records)}
            pipe.hset(f"htq:batch:{NAME}:rcpt:{batch_id}", mapping=fields)
            pipe.pexpire(f"htq:batch:{NAME}:rcpt:{batch_id}", self.settings.retention_ms)
            if index % 100 == 99:
                pipe.execute()
        pipe.execute()
        per_batch_hash = self.used() - base
        base = self.fresh(max_records)
        for index, batch_id in enumerate(batch_ids):
            for n in range(max_records):
                pipe.set(f"htq:batch:{NAME}:record:E.{index * max_records + n + 1}", f"sent {batch_id} {now} 200",
                         px=self.settings.retention_ms)
            if index % 100 == 99:
                pipe.execute()
        pipe.execute()
        per_record_key = self.used() - base
        say(f"  other layouts     one hash per batch {self.per_record(per_batch_hash):6.1f} B/record, "
            f"one key per record {self.per_record(per_record_key):6.1f} B/record")
        say(f"  receipt lookup    p50 {lookups[0]:.3f} ms, p99 {lookups[1]:.3f} ms (script and round trip)")

    def lookups(self, batch_ids: list[str]) -> tuple[float, float]:
        epoch = batch_ids[0].rsplit("-", 1)[0]
        times = []
        for _ in range(2000):
            number = random.randint(1, self.count)
            started = time.perf_counter()
            receipt = store_batches.record(self.store, NAME, epoch, number, now_ms=self.service.now_ms())
            times.append((time.perf_counter() - started) * 1000)
            assert receipt is not None and receipt.state == "sent", receipt
        times.sort()
        return times[len(times) // 2], times[int(len(times) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="records per measure (100,000)")
    parser.add_argument("--body-bytes", type=int, default=100, help="bytes of each record (100)")
    parser.add_argument("--sizes", default="10,500", help="batch sizes (max_records), comma-separated")
    args = parser.parse_args()
    server = TemporaryRedis()
    server.start()
    try:
        bench = Bench(server.url, args.count, max(12, args.body_bytes))
        bench.store.redis.config_set("auto-aof-rewrite-percentage", 0)
        print(f"Redis {bench.store.redis.info('server')['redis_version']}; Redis used_memory growth, per record")
        for size in (int(value) for value in args.sizes.split(",")):
            bench.run(size)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
