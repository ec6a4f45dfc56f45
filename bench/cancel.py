"""Bulk cancel (`POST /v1/requests/cancel`): how long Redis is blocked, with the cancel done in
chunks of CANCEL_CHUNK (100) requests against the baseline of one script for them all.

Run from the repository root, with the project's virtualenv:

    python -m bench.cancel                 # 100,000 scheduled requests, about a minute
    python -m bench.cancel --count 20000

It starts its own Redis (`app.processes.TemporaryRedis`), stores the requests through the core
service as the batch route does, then cancels them all by url prefix, once chunked and once in
one chunk (on a fresh set each time). Redis's SLOWLOG (set to log what takes over 200 us: a
chunk's script, not the commands inside it) gives the longest script, the longest time Redis
answered nobody else; INFO commandstats gives how many scripts ran and their mean time.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import time  # noqa: E402

from app.core import requests as core_requests  # noqa: E402
from app.core.publish import Publisher  # noqa: E402
from app.core.requests import RequestService  # noqa: E402
from app.processes import TemporaryRedis  # noqa: E402
from app.storage.client import Store  # noqa: E402
from config import Settings  # noqa: E402

BATCH = 100  # requests per create call, as the batch route takes them
SLOWLOG_OVER_US = 200


class Discard:
    def send_task(self, name, args=None, eta=None, **options):
        pass


def run(service: RequestService, store: Store, count: int, chunk: int) -> dict:
    store.redis.flushall()
    for start in range(0, count, BATCH):
        service.create_many([{"url": f"https://old.example.com/{n}", "method": "POST", "headers": {}, "delay": 3600}
                             for n in range(start, min(count, start + BATCH))])
    store.redis.config_set("slowlog-log-slower-than", SLOWLOG_OVER_US)
    store.redis.config_set("slowlog-max-len", 10_000)
    store.redis.slowlog_reset()
    store.redis.config_resetstat()
    core_requests.CANCEL_CHUNK = chunk
    started = time.perf_counter()
    canceled = service.cancel_matching(url_prefix="https://old.example.com/")
    elapsed = time.perf_counter() - started
    stats = store.redis.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    longest = max((entry["duration"] for entry in store.redis.slowlog_get(10_000)
                   if entry["command"].split(b" ", 1)[0].upper() == b"EVALSHA"), default=0)
    store.redis.config_set("slowlog-log-slower-than", 10_000)
    return {"canceled": canceled, "scripts": stats["calls"], "max_ms": longest / 1000,
            "mean_ms": stats["usec"] / max(1, stats["calls"]) / 1000, "total_s": elapsed}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cancel", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=100_000, help="scheduled requests to cancel (100000)")
    args = parser.parse_args(argv)
    redis_server = TemporaryRedis()
    redis_server.start()
    try:
        settings = Settings(redis_url=redis_server.url)
        store = Store.from_url(settings.redis_url)
        service = RequestService(store, Publisher(Discard()), settings)
        print(f"bulk cancel of {args.count} scheduled requests by url prefix; Redis script run times from SLOWLOG")
        print(f"  {'':<28}{'scripts':>9}{'max ms':>10}{'mean ms':>10}{'total s':>10}{'canceled':>10}")
        for label, chunk in ((f"chunks of {core_requests.CANCEL_CHUNK}", core_requests.CANCEL_CHUNK),
                             ("baseline: one script", args.count)):
            figures = run(service, store, args.count, chunk)
            print(f"  {label:<28}{figures['scripts']:>9}{figures['max_ms']:>10.2f}{figures['mean_ms']:>10.2f}"
                  f"{figures['total_s']:>10.2f}{figures['canceled']:>10}")
        store.close()
    finally:
        redis_server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
