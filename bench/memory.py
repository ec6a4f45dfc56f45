"""Redis memory per item, for sizing `maxmemory`: a pending request, a finished request kept for its
retention, a queue message (waiting, then received), a batch record (pending, then taken).

Run from the repository root, with the project's virtualenv:

    python -m bench.memory                       # 100,000 of each, 100-byte bodies, about a minute
    python -m bench.memory --count 20000 --body-bytes 1000

It starts its own Redis (`app.processes.TemporaryRedis`: the embedded server, with the settings
README.rst recommends for any Redis) and stores each kind through the core services as the API and
the workers do (no HTTP, no worker, nothing published: only Redis is measured). Each figure is the
growth of Redis's `used_memory` divided by the count, on an emptied Redis; "overhead" is that less
the body's own bytes, which is what an item costs whatever its size.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from app.core.attempts import Attempts  # noqa: E402
from app.core.batches import BatchService  # noqa: E402
from app.core.outcome import SUCCEEDED, Outcome  # noqa: E402
from app.core.publish import Publisher  # noqa: E402
from app.core.queues import QueueService  # noqa: E402
from app.core.requests import RequestService  # noqa: E402
from app.processes import TemporaryRedis  # noqa: E402
from app.storage.client import Store  # noqa: E402
from config import Settings  # noqa: E402

CHUNK = 100  # items per call, as the batch routes take them
DAY_S = 86400
WORKER = "bench@memory"  # the node name attempts are started under (a worker holds what it starts)
RESPONSE = Outcome(SUCCEEDED, status_code=200, reason="OK", body=b'{"ok": true}', elapsed_ms=35,
                   headers={"Content-Type": "application/json", "Content-Length": "12",
                            "Date": "Thu, 03 Dec 2026 10:00:00 GMT"})


class Discard:
    """A task sender that publishes nothing: only what the store holds is measured."""

    def send_task(self, name, args=None, eta=None, **options):
        pass


def json_body(size: int) -> str:
    """A JSON object of exactly `size` bytes (at least 12)."""
    return json.dumps({"pad": "x" * max(0, size - 11)})


class Bench:
    def __init__(self, redis_url: str, count: int, body_bytes: int):
        self.settings = Settings(redis_url=redis_url)
        self.store = Store.from_url(redis_url)
        self.count = count
        self.body_bytes = body_bytes
        self.body = json_body(body_bytes)
        self.publisher = Publisher(Discard())

    def used(self) -> int:
        """What Redis counts against maxmemory: used_memory less its AOF buffers."""
        memory = self.store.redis.info("memory")
        return int(memory["used_memory"]) - int(memory["mem_not_counted_for_evict"])

    def measure(self, label: str, setup: Callable[[], None] | None, step: Callable[[], None],
                body_bytes: int | None = None) -> float:
        """Bytes per item that `step` adds (after `setup`, on an emptied Redis)."""
        self.store.redis.flushall()
        while self.store.redis.info("persistence")["aof_rewrite_in_progress"]:
            time.sleep(0.05)
        if setup:
            setup()
        before = self.used()
        started = time.monotonic()
        step()
        per_item = (self.used() - before) / self.count
        body = self.body_bytes if body_bytes is None else body_bytes
        print(f"  {label:<44} {per_item:8.0f} bytes  (overhead {per_item - body:6.0f})  "
              f"[{time.monotonic() - started:.1f} s]", flush=True)
        return per_item

    def chunks(self) -> list[int]:
        return [min(CHUNK, self.count - start) for start in range(0, self.count, CHUNK)]

    # -- requests ---------------------------------------------------------------------------------

    def request_fields(self, delay_s: float) -> dict:
        return {"url": "https://example.com/hooks/orders", "method": "POST", "json": json.loads(self.body),
                "delay": delay_s}

    def pending_requests(self) -> None:
        service = RequestService(self.store, self.publisher, self.settings)
        fields = self.request_fields(30 * DAY_S)
        self.measure("pending request (due in 30 days)", None,
                     lambda: [service.create_many([fields] * n) for n in self.chunks()])

    def finished_requests(self) -> None:
        service = RequestService(self.store, self.publisher, self.settings)
        attempts = Attempts(self.store, self.publisher, self.settings)
        fields = self.request_fields(0)

        def run() -> None:
            for n in self.chunks():
                created = service.create_many([fields] * n)
                started = attempts.start([(r["id"], 1, 0) for r in created], worker=WORKER)
                attempts.finish([(attempt, RESPONSE) for attempt in started], worker=WORKER)

        self.measure(f"finished request ({len(RESPONSE.body)}-byte response)", None, run)

    # -- queues -----------------------------------------------------------------------------------

    def messages(self) -> None:
        service = QueueService(self.store, self.settings)

        def push() -> None:
            for n in self.chunks():
                service.push_many("orders", [(self.body, None)] * n)

        def receive() -> None:
            while service.receive("orders", max_messages=CHUNK, visibility_timeout_s=3600):
                pass

        self.measure("queue message, waiting", None, push)
        self.measure("queue message, received (in flight): more", push, receive, body_bytes=0)

    # -- batches ----------------------------------------------------------------------------------

    def records(self) -> None:
        service = BatchService(self.store, self.publisher, self.settings)
        config = {"endpoint": "https://example.com/ingest", "max_bytes": 16 * 1024 * 1024, "interval": DAY_S}

        def add(max_records: int) -> Callable[[], None]:
            def run() -> None:
                # One batch per 9,999 records at most, so that pending ones are never taken.
                for start in range(0, self.count, 9999):
                    name = f"b{start}"
                    service.configure(name, {**config, "max_records": max_records})
                    for offset in range(0, min(9999, self.count - start), 1000):
                        service.add_texts(name, [self.body] * min(1000, self.count - start - offset))
            return run

        self.measure("batch record, pending", None, add(10_000))
        self.measure("batch record, taken (batches of 500, unsent)", None, add(500))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="items of each kind (100,000)")
    parser.add_argument("--body-bytes", type=int, default=100, help="bytes of each body or record (100)")
    args = parser.parse_args()
    server = TemporaryRedis()
    server.start()
    try:
        bench = Bench(server.url, args.count, max(12, args.body_bytes))
        # No AOF rewrite in the middle of a measure: its buffers come and go by megabytes.
        bench.store.redis.config_set("auto-aof-rewrite-percentage", 0)
        info = bench.store.redis.info("server")
        print(f"Redis {info['redis_version']}, {args.count} items of each kind, bodies of {bench.body_bytes} bytes "
              f"(JSON); Redis used_memory growth per item:")
        bench.pending_requests()
        bench.finished_requests()
        bench.messages()
        bench.records()
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
