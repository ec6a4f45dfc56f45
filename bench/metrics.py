"""Benchmark of `GET /metrics`: the time of a scrape on a big deployment (1,000 queues, 1M pending
requests by default), then with more queues than the label limit.

Run from the repository root, with the project's virtualenv:

    python -m bench.metrics                          # 1M pending requests, 1,000 then 10,000 queues
    python -m bench.metrics --pending 100000 --queues 1000 --scrapes 10   # shorter

It starts its own Redis (app.processes.TemporaryRedis) and the web server as production runs it
(`gunicorn -c config/gunicorn.py "app:create_app()"`), fills Redis through the storage functions
the API and the workers use (pending requests due in 30 days with the bulk create script, `--per-call`
at a time from `--procs` processes; queues with visible, delayed, in-flight and dead messages;
batches with pending records; some finished attempts, so the counters are not empty), then times
`--scrapes` scrapes over one keep-alive connection and prints p50 and max, with the body's size
and number of samples, and the time of the store read alone (app.storage.stats.read). After each
step of `--queues` (comma-separated, ascending) it adds queues up to that number and scrapes again.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import requests  # noqa: E402

from app.core import clock  # noqa: E402
from app.core.gates import Breaker  # noqa: E402
from app.core.ids import new_id  # noqa: E402
from app.embedded import free_port  # noqa: E402
from app.metrics import LABELLED_LIMIT  # noqa: E402
from app.processes import ServiceProcesses, TemporaryRedis, service_env  # noqa: E402
from app.storage import batches as store_batches  # noqa: E402
from app.storage import queues as store_queues  # noqa: E402
from app.storage import requests as store_requests  # noqa: E402
from app.storage import stats  # noqa: E402
from app.storage.batches import BatchConfig  # noqa: E402
from app.storage.client import Store  # noqa: E402
from app.storage.requests import AttemptEnd, NewRequest  # noqa: E402

# start_many's horizon and publish grace, for a request with no flow: what a rate defers needs them.
UNGATED = {"horizon_end_ms": 10**15, "grace_ms": 10_000}

DAY_MS = 86_400_000
GRACE_MS = 120_000
HORIZON_MS = 60_000
SPEC = {"url": "http://127.0.0.1:9/pending", "method": "POST", "headers": {}, "json": {"n": 0}, "timeout": 30,
        "retry": {"max_attempts": 10, "backoff_base": 1.0, "backoff_max": 3600.0}}
QUEUE_DEFAULTS = {"visibility_timeout_ms": 30_000, "max_receives": 0, "retention_ms": 345_600_000, "delay_ms": 0}


def create_pending(redis_url: str, count: int, per_call: int) -> None:
    """`count` requests due in 30 days, `per_call` per bulk script call."""
    store = Store.from_url(redis_url)
    for start in range(0, count, per_call):
        now = clock.now_ms()
        items = []
        for _ in range(min(per_call, count - start)):
            request_id = new_id(now)
            items.append(NewRequest(request_id, now + 30 * DAY_MS, {**SPEC, "id": request_id}))
        store_requests.create_many(store, items, now_ms=now, horizon_end_ms=now + HORIZON_MS, grace_ms=GRACE_MS)
    store.close()


def fill_pending(redis_url: str, count: int, per_call: int, procs: int) -> float:
    started = time.monotonic()
    shares = [count // procs + (1 if i < count % procs else 0) for i in range(procs)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        pool.starmap(create_pending, [(redis_url, share, per_call) for share in shares])
    return time.monotonic() - started


def add_queues(store: Store, first: int, last: int) -> None:
    """Queues `first`..`last - 1`, each with 10 messages: 5 visible, 3 delayed, 2 received (in flight)."""
    for n in range(first, last):
        name = f"queue-{n:05d}"
        now = clock.now_ms()
        store_queues.push(store, name, now_ms=now, id_suffix="bench", defaults=QUEUE_DEFAULTS,
                          messages=[(f"j{{\"n\": {i}}}", None) for i in range(7)])
        store_queues.push(store, name, now_ms=now, id_suffix="bench", defaults=QUEUE_DEFAULTS,
                          messages=[("j1", 600_000)] * 3)
        store_queues.receive(store, name, now_ms=now, max_messages=2, visibility_timeout_ms=600_000, token="bench")


def add_batches(store: Store, count: int) -> None:
    config = BatchConfig(endpoint="http://127.0.0.1:9/in", max_records=1000, max_bytes=1 << 20,
                         interval_ms=DAY_MS, headers={}, max_attempts=3, backoff_base_ms=1000, timeout_ms=30_000)
    for n in range(count):
        name = f"batch-{n:05d}"
        store_batches.configure(store, name, config, now_ms=clock.now_ms(), grace_ms=GRACE_MS, epoch="E")
        store_batches.add(store, name, [json.dumps({"n": i}) for i in range(5)], now_ms=clock.now_ms(),
                          grace_ms=GRACE_MS)


def add_finished_attempts(store: Store, count: int) -> None:
    """`count` requests due now, started and finished, so that the counters hold figures."""
    now = clock.now_ms()
    items = [NewRequest(new_id(now), now, {**SPEC, "id": ""}) for _ in range(count)]
    store_requests.create_many(store, items, now_ms=now, horizon_end_ms=now + HORIZON_MS, grace_ms=GRACE_MS)
    ids = [(item.request_id, 1) for item in items]
    store_requests.start_many(store, ids, worker="bench@host", now_ms=now + 3, lease_margin_ms=5000, **UNGATED)
    ends = [AttemptEnd(request_id, 1, "succeeded", 0, {"attempt": 1}, {}, None, elapsed_ms=n % 700)
            for n, (request_id, _) in enumerate(ids)]
    store_requests.finish_many(store, ends, worker="bench@host", now_ms=now + 700, horizon_end_ms=now + HORIZON_MS,
                               grace_ms=GRACE_MS, lease_margin_ms=0, breaker=Breaker())


def scrape_times(base: str, scrapes: int) -> tuple[list[float], int, int]:
    """(ms per scrape, body bytes, htq samples) over one keep-alive connection, after one warm-up."""
    session = requests.Session()
    session.get(base + "/metrics", timeout=60)
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        response = session.get(base + "/metrics", timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    samples = sum(1 for line in response.text.splitlines() if line.startswith("htq_"))
    session.close()
    return times, len(response.content), samples


def read_times(store: Store, scrapes: int) -> list[float]:
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        now = clock.now_ms()
        stats.read(store, now_ms=now, alive_after_ms=now - 7000, limit=LABELLED_LIMIT)
        times.append((time.perf_counter() - started) * 1000)
    return times


def wait_persistence_idle(store: Store) -> float:
    """Seconds waited until Redis rewrites no AOF (filling it triggers a rewrite: a fork that takes a
    core for a while on a small machine, which is not the cost of a scrape)."""
    started = time.monotonic()
    while True:
        info = store.redis.info("persistence")
        if not (info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
                or info.get("rdb_bgsave_in_progress")):
            return time.monotonic() - started
        time.sleep(0.2)


def report(label: str, base: str, store: Store, scrapes: int) -> None:
    times, size, samples = scrape_times(base, scrapes)
    reads = read_times(store, scrapes)
    print(f"{label}: GET /metrics p50 {statistics.median(times):6.1f} ms  max {max(times):6.1f} ms  "
          f"({size / 1024:.0f} KiB, {samples} htq samples); store read alone p50 {statistics.median(reads):5.1f} ms  "
          f"max {max(reads):5.1f} ms  ({scrapes} scrapes)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pending", type=int, default=1_000_000, help="pending requests (1,000,000)")
    parser.add_argument("--queues", default="1000,10000", help="queue counts to scrape at, ascending (1000,10000)")
    parser.add_argument("--batches", type=int, default=100, help="batches with pending records (100)")
    parser.add_argument("--finished", type=int, default=1000, help="finished attempts counted (1000)")
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes timed at each step (20)")
    parser.add_argument("--per-call", type=int, default=1000, help="pending requests per bulk script call (1000)")
    parser.add_argument("--procs", type=int, default=2, help="processes creating the pending requests (2)")
    args = parser.parse_args()
    queue_steps = [int(n) for n in args.queues.split(",")]

    print(f"htq metrics benchmark: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"label limit {LABELLED_LIMIT}", flush=True)
    redis = TemporaryRedis()
    redis.start()
    store = Store.from_url(redis.url)
    logdir = Path(tempfile.mkdtemp(prefix="htq-bench-"))
    services = ServiceProcesses(service_env(redis.url, LOG_LEVEL="WARNING"), logdir)
    try:
        fill_s = fill_pending(redis.url, args.pending, args.per_call, args.procs)
        used = int(store.redis.info("memory")["used_memory"]) / 2**20
        print(f"created {args.pending:,} pending requests in {fill_s:.1f} s ({args.pending / fill_s:,.0f}/s); "
              f"Redis used_memory {used:,.0f} MiB", flush=True)
        add_batches(store, args.batches)
        add_finished_attempts(store, args.finished)
        base = services.start_web(free_port())
        queues = 0
        for step in queue_steps:
            started = time.monotonic()
            add_queues(store, queues, step)
            print(f"added {step - queues:,} queues in {time.monotonic() - started:.1f} s; waited "
                  f"{wait_persistence_idle(store):.1f} s for Redis's AOF rewrite to end", flush=True)
            queues = step
            report(f"{args.pending:,} pending, {queues:,} queues, {args.batches} batches", base, store, args.scrapes)
    finally:
        services.stop_all()
        store.close()
        redis.cleanup()
        shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
