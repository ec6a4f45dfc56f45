"""Schedules: 10,000 `every: 60` schedules, ticked each second as beat does; run lateness and
the tick's CPU, for htq's runs (claimed up to LOOKAHEAD_MS ahead, effect at the tick) against a
baseline measured in the same run (runs claimed only once due, as a plain 1 s beat would).

Lateness of a run: when its effect took place minus its tick. The target is a queue message,
whose stored availability time is exactly that instant (the tick, or the moment a late run
wrote it). Beat CPU: this process's CPU per tick call, where nothing is due (idle) with 100 and
with 10,000 schedules, and per run where runs are due.

    python -m bench.schedules [--schedules 10000] [--seconds 62]
"""
from __future__ import annotations

import argparse
import time

from app.core import schedules as core_schedules
from app.core.clock import now_ms
from app.core.publish import Publisher
from app.core.requests import RequestService
from app.core.schedules import ScheduleService
from app.processes import TemporaryRedis
from app.storage import keys
from app.storage.client import Store
from config.settings import Settings

EVERY_S = 60


class NullSender:
    def send_task(self, *args, **kwargs):
        pass


def service(store: Store, settings: Settings) -> ScheduleService:
    publisher = Publisher(NullSender())
    return ScheduleService(store, publisher, settings, RequestService(store, publisher, settings))


def create(svc: ScheduleService, count: int, every_s: int) -> None:
    for i in range(count):
        svc.put(f"s{i}", {"every": every_s, "target": {"queue": "bench", "message": i}})


def idle_tick_cpu_us(svc: ScheduleService, ticks: int = 200) -> float:
    start = time.process_time()
    for _ in range(ticks):
        svc.tick()
    return (time.process_time() - start) / ticks * 1e6


def beat_loop(svc: ScheduleService, seconds: float) -> tuple[int, float, list[float]]:
    """Tick at each whole second for `seconds`; (runs, CPU seconds, per-tick CPU ms of ticks with runs)."""
    runs, cpu, busy = 0, 0.0, []
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(1 - time.time() % 1)
        start = time.process_time()
        counts = svc.tick()
        spent = time.process_time() - start
        cpu += spent
        runs += counts["runs"]
        if counts["runs"]:
            busy.append(spent * 1000)
    return runs, cpu, busy


def lateness_ms(store: Store, count: int) -> tuple[list[int], list[int]]:
    """(lateness of each run's effect, how long before its tick each run was written), sorted."""
    anchors = {}
    pipe = store.pipeline()
    for i in range(count):
        pipe.hget(keys.schedule(f"s{i}"), "anchor_ms")
    for i, anchor in enumerate(pipe.execute()):
        anchors[i] = int(anchor)
    late, lead = [], []
    bodies = store.redis.hgetall(keys.queue_bodies("bench"))
    metas = store.redis.hgetall(keys.queue_meta("bench"))
    for message_id, body in bodies.items():
        anchor = anchors[int(body[1:])]
        available, enqueued = (int(field) for field in metas[message_id].split(" ")[:2])
        tick = anchor + (available - anchor) // (EVERY_S * 1000) * EVERY_S * 1000
        late.append(available - tick)
        lead.append(tick - enqueued)
    return sorted(late), sorted(lead)


def percentile(values: list[int], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def measure(redis_url: str, count: int, seconds: float, lookahead_ms: int) -> dict:
    store = Store.from_url(redis_url)
    store.redis.flushall()
    core_schedules.LOOKAHEAD_MS = lookahead_ms
    svc = service(store, Settings(redis_url=redis_url))
    started = now_ms()
    create(svc, count, EVERY_S)
    created_s = (now_ms() - started) / 1000
    runs, cpu, busy = beat_loop(svc, seconds)
    late, lead = lateness_ms(store, count)
    store.redis.close()
    return {"created_s": created_s, "runs": runs, "cpu_s": cpu, "busy": sorted(busy), "late": late, "lead": lead}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=EVERY_S + 2)
    args = parser.parse_args()
    server = TemporaryRedis()
    server.start()
    try:
        store = Store.from_url(server.url)
        settings = Settings(redis_url=server.url)
        svc = service(store, settings)
        idle = {}
        for count in (100, args.schedules):
            store.redis.flushall()
            create(svc, count, 3600)
            idle[count] = idle_tick_cpu_us(svc)
        store.redis.close()
        lookahead = core_schedules.LOOKAHEAD_MS
        results = {f"htq (lookahead {lookahead} ms)": measure(server.url, args.schedules, args.seconds, lookahead),
                   "baseline (claim when due)": measure(server.url, args.schedules, args.seconds, 0)}
    finally:
        server.cleanup()
    print(f"schedules: {args.schedules} x every {EVERY_S} s, ticked each second for {args.seconds:.0f} s")
    print(f"idle tick CPU: {idle[100]:.0f} us with 100 schedules, {idle[args.schedules]:.0f} us with "
          f"{args.schedules} (nothing due)")
    for name, r in results.items():
        late = r["late"]
        print(f"{name}: {r['runs']} runs ({len(late)} messages), created in {r['created_s']:.1f} s; lateness "
              f"p50 {percentile(late, .5):.0f} ms, p99 {percentile(late, .99):.0f} ms, "
              f"max {late[-1] if late else 0} ms;"
              f" beat CPU {r['cpu_s'] * 1e6 / max(r['runs'], 1):.0f} us per run, busiest tick "
              f"{r['busy'][-1] if r['busy'] else 0:.0f} ms CPU; written before the tick: "
              f"min {min(r['lead'], default=0)} ms, "
              f"p1 {percentile(r['lead'], .01):.0f} ms, p50 {percentile(r['lead'], .5):.0f} ms")


if __name__ == "__main__":
    main()
