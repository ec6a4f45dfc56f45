"""Benchmark of HTQ_REDIS_MIN_REPLICAS: what waiting for a replica (WAIT after each write that
accepts work) costs request creation, against the same master without it.

    python -m bench.durable            # 3 alternating rounds of 3 s per setting and client count

A master with one replica (both the embedded Redis, on 127.0.0.1). Clients are threads of this
process, each with its own store connection, creating requests due in 30 days (nothing is
published) through the core service, as POST /v1/requests does without the web server's time.
Prints creates/s with HTQ_REDIS_MIN_REPLICAS=0 (the baseline) and 1, for 1 and 8 clients, the
median over the rounds.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import redis  # noqa: E402

from app.api.requests.schemas import RequestCreateSchema  # noqa: E402
from app.core.publish import Publisher  # noqa: E402
from app.core.requests import RequestService  # noqa: E402
from app.embedded import RedisServer  # noqa: E402
from app.processes import TemporaryRedis  # noqa: E402
from app.storage.client import Store, connect  # noqa: E402
from config import load_settings  # noqa: E402

BODY = {"url": "http://127.0.0.1:9/bench", "delay": 30 * 86400}


class _Discard:
    def send_task(self, name, args=None, eta=None, **options):
        pass


def _round(url: str, min_replicas: int, clients: int, seconds: float) -> float:
    settings = load_settings({"REDIS_URL": url, "HTQ_REDIS_MIN_REPLICAS": str(min_replicas)})
    fields = RequestCreateSchema().load(BODY)
    services = [RequestService(Store(connect(url), min_replicas, settings.redis_wait_timeout_ms),
                               Publisher(_Discard()), settings) for _ in range(clients)]
    counts = [0] * clients
    start, stop = threading.Barrier(clients + 1), threading.Event()

    def client(i: int) -> None:
        service = services[i]
        start.wait()
        while not stop.is_set():
            service.create(fields)
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)  # the measured interval itself
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    for service in services:
        service.store.close()
    return sum(counts) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    options = parser.parse_args()
    master = TemporaryRedis()
    master.start()
    replica = RedisServer(Path(tempfile.mkdtemp(prefix="htq-replica-")),
                          options=("--replicaof", "127.0.0.1", str(master.port)))
    try:
        replica.start()
        client = redis.Redis(port=master.port)
        while client.info("replication")["connected_slaves"] < 1:
            time.sleep(0.05)
        results: dict[tuple[int, int], list[float]] = {}
        for _ in range(options.rounds):
            for clients in options.clients:
                for min_replicas in (0, 1):
                    rate = _round(master.url, min_replicas, clients, options.seconds)
                    results.setdefault((clients, min_replicas), []).append(rate)
                    client.flushall()
        print(f"creates/s, median of {options.rounds} rounds of {options.seconds:g} s (master + 1 replica):")
        for clients in options.clients:
            base = statistics.median(results[(clients, 0)])
            durable = statistics.median(results[(clients, 1)])
            print(f"  {clients} client{'s' if clients > 1 else ''}: HTQ_REDIS_MIN_REPLICAS=0 {base:.0f}/s (baseline), "
                  f"=1 {durable:.0f}/s ({(durable - base) / base:+.0%})")
    finally:
        replica.stop()
        shutil.rmtree(replica.dir, ignore_errors=True)
        master.cleanup()


if __name__ == "__main__":
    main()
