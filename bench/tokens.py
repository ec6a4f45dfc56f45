"""Benchmark of bearer-token checks: the cost they add to a request, in process (Flask's test
client, so the web server's own time does not drown it) against a real Redis.

    python -m bench.tokens            # 5 alternating rounds of 2000 GET /v1/workers per kind
    python -m bench.tokens --create   # what a request's token costs its creation script

Kinds, each a fresh app on the same Redis: tokens off (the baseline), an HTQ_API_TOKENS admin
token (compared in process), a scoped token (looked up in Redis, then remembered CACHE_S), and a
scoped token with that memory turned off (one HGET per request). Prints the median time per
request of each kind over its rounds, and what it adds to the baseline.

--create times request_create.lua (storage.requests.create, one round trip each) for a request
made without a token (the baseline) and one made by a scoped token, whose script also writes the
hash field `token` and the ZADD to htq:token:{T}:requests; and the Redis memory that index takes.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from app import create_app  # noqa: E402
from app.core import ids, tokens  # noqa: E402
from app.processes import TemporaryRedis  # noqa: E402
from app.storage import keys  # noqa: E402
from app.storage import requests as store_requests  # noqa: E402
from app.storage.client import Store  # noqa: E402
from config import load_settings  # noqa: E402

ADMIN = "bench-admin-token"
PATH = "/v1/workers"  # a cheap read: one ZRANGE


def _client(redis_url: str, api_tokens: tuple[str, ...]):
    settings = load_settings({"REDIS_URL": redis_url, "HTQ_API_TOKENS": ",".join(api_tokens), "LOG_LEVEL": "WARNING"})
    return create_app(settings).test_client()


def _round(client, headers: dict, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        response = client.get(PATH, headers=headers)
        assert response.status_code == 200, response.status_code
    return (time.perf_counter() - started) / count * 1e6


CREATE_SPEC = {"url": "https://hooks.example.com/x", "method": "POST", "headers": {}, "timeout": 30,
               "retry": {"max_attempts": 10, "backoff_base": 1.0, "backoff_max": 3600.0}, "cancel_notify": False}
LATER_MS = 86_400_000  # due tomorrow: created "scheduled", nothing published


def _create_round(store: Store, origin: tokens.Origin, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        now = int(time.time() * 1000)
        request_id = ids.new_id(now)
        spec = origin.stamp({**CREATE_SPEC, "id": request_id})
        store_requests.create(store, store_requests.NewRequest(request_id, now + LATER_MS, spec), now_ms=now,
                              horizon_end_ms=now + 60_000, grace_ms=120_000)
    return (time.perf_counter() - started) / count * 1e6


def bench_create(redis_url: str, count: int, rounds: int) -> None:
    store = Store.from_url(redis_url)
    kinds = {"no token (baseline)": tokens.NO_ORIGIN,
             "scoped token, indexed": tokens.Origin("01JEAK9X2D5E7G8H0J1K2M3N4P", ("*.example.com",))}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for origin in kinds.values():
        _create_round(store, origin, count // 10)  # warm-up
    for _ in range(rounds):
        for kind, origin in kinds.items():
            times[kind].append(_create_round(store, origin, count))
    baseline = statistics.median(times["no token (baseline)"])
    print(f"request_create.lua, median of {rounds} alternating rounds of {count}:")
    for kind, values in times.items():
        median = statistics.median(values)
        print(f"  {kind:42} {median:7.1f} µs/request  (+{median - baseline:6.1f} µs)")
    index = keys.token_requests(kinds["scoped token, indexed"].token_id)
    members = store.redis.zcard(index)
    print(f"  the token's index: {members} requests, {store.redis.memory_usage(index) / members:.1f} bytes each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--create", action="store_true", help="time request creation with and without a token")
    options = parser.parse_args()
    redis_server = TemporaryRedis()
    redis_server.start()
    if options.create:
        try:
            bench_create(redis_server.url, options.requests, options.rounds)
        finally:
            redis_server.cleanup()
        return
    try:
        off = _client(redis_server.url, ())
        admin = _client(redis_server.url, (ADMIN,))
        made = admin.post("/v1/tokens", json={"name": "bench", "scopes": ["read"]},
                          headers={"Authorization": f"Bearer {ADMIN}"}).get_json()
        scoped_headers = {"Authorization": f"Bearer {made['token']}"}
        uncached = _client(redis_server.url, (ADMIN,))
        kinds = {"tokens off (baseline)": (off, {}),
                 "HTQ_API_TOKENS admin token": (admin, {"Authorization": f"Bearer {ADMIN}"}),
                 f"scoped token, remembered {tokens.CACHE_S} s": (_client(redis_server.url, (ADMIN,)), scoped_headers),
                 "scoped token, looked up every request": (uncached, scoped_headers)}
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for client, headers in kinds.values():
            _round(client, headers, options.requests // 10)  # warm-up
        for _ in range(options.rounds):
            for kind, (client, headers) in kinds.items():
                cache_s = tokens.CACHE_S
                if client is uncached:
                    tokens.CACHE_S = 0.0
                try:
                    times[kind].append(_round(client, headers, options.requests))
                finally:
                    tokens.CACHE_S = cache_s
        baseline = statistics.median(times["tokens off (baseline)"])
        print(f"GET {PATH}, median of {options.rounds} alternating rounds of {options.requests}:")
        for kind, values in times.items():
            median = statistics.median(values)
            print(f"  {kind:42} {median:7.1f} µs/request  (+{median - baseline:6.1f} µs)")
    finally:
        redis_server.cleanup()


if __name__ == "__main__":
    main()
