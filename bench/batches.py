"""Benchmark of batch forwarding: records/s accepted and forwarded in batches of 500, and the flush delay.

Run from the repository root, with the project's virtualenv:

    python bench/batches.py                   # 200,000 records, 200 flush-delay trials
    python bench/batches.py --quick           # 50,000 records, 100 trials
    python bench/batches.py --records 500000 --clients 8 --keep

It starts everything itself and stops all of it at the end (also on Ctrl-C or an error): its own
Redis (`app.processes.TemporaryRedis`), a local endpoint on 127.0.0.1 (an asyncio HTTP server in a
subprocess that parses every batch and records when it arrived), the htq web server as production
runs it (`gunicorn -c config/gunicorn.py "app:create_app()"`) and a real Celery worker
(`celery -A workers worker`).

It prints, measured in the same run:

1. Throughput: `--records` records sent through `POST /v1/batches/tput/records/batch` (1,000
   records per call, `--clients` keep-alive connections) to a batch with `max_records` 500:
   records/s accepted (until the last 202) and accepted+forwarded (until the endpoint has received
   every record), next to the baseline of POSTing the same records, already in arrays of 500,
   straight to the endpoint from as many connections.
2. Flush delay: `--trials` times, 499 records are added, then one more record fills the batch; the
   delay is from the start of that request to the batch's arrival at the endpoint (p50, p99, max),
   next to the baseline of one direct POST of a 500-record array to the endpoint.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from app.embedded import free_port  # noqa: E402
from app.processes import ServiceProcesses, TemporaryRedis, service_env  # noqa: E402
from bench import cpu_seconds  # noqa: E402

BATCH_RECORDS = 500
WARM_UP_TIMEOUT_S = 60.0
CALL_RECORDS = 1000
TARGET_RATE = 50_000
TARGET_P99_MS = 50.0


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


# -- the endpoint (subprocess: `python bench/batches.py _endpoint PORT`) ------------------------


class _EndpointProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive. A POST's body is a JSON array: it is parsed and counted, with the
    time it arrived complete; `GET /__stats` answers {"records", "batches", "last_arrival"}."""

    def __init__(self, stats: dict):
        self.stats = stats
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buffer[:end].split(b"\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body, self.buffer = self.buffer[end + 4:total], self.buffer[total:]
            if lines[0].startswith(b"POST"):
                records = len(json.loads(body))
                self.stats["records"] += records
                self.stats["batches"] += 1
                self.stats["last_arrival"] = time.time()
                answer = b"ok"
            else:
                answer = json.dumps(self.stats).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(answer), answer))


def serve_endpoint(port: int) -> None:
    async def main():
        stats = {"records": 0, "batches": 0, "last_arrival": 0.0}
        server = await asyncio.get_running_loop().create_server(lambda: _EndpointProtocol(stats), "127.0.0.1", port,
                                                                backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- clients ---------------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP connection (http.client: little CPU, so the clients do not skew the run)."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def json(self, method: str, path: str, document=None) -> tuple[int, dict]:
        status, raw = self.call(method, path, None if document is None else json.dumps(document).encode())
        return status, json.loads(raw) if raw else {}

    def close(self) -> None:
        self.connection.close()


def record(n: int) -> dict:
    return {"user_id": n + 1, "total": 12.5, "title": f"order {n}", "completed": n % 2 == 0,
            "meta": {"logins": [{"time": "2026-11-23T08:21:59Z", "ip": "127.0.0.1"}]}}


def run_clients(port: int, path: str, bodies: list[bytes], calls: int, clients: int, expect: int) -> float:
    """POST `calls` bodies (round robin) over `clients` connections; returns when the last answered."""
    errors: list[str] = []
    counter = iter(range(calls))
    lock = threading.Lock()

    def work():
        client = Client(port)
        try:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                status, raw = client.call("POST", path, bodies[n % len(bodies)])
                if status != expect:
                    errors.append(f"{status} {raw[:200]!r}")
                    return
        finally:
            client.close()

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{path}: {errors[0]}")
    return time.time()


# -- the bench -------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="htq-bench-batches-"))
        self.redis = TemporaryRedis()
        self.procs = ServiceProcesses(service_env(self.redis.url, LOG_LEVEL="WARNING",
                                                  WEB_CONCURRENCY=str(self.args.web_workers)), self.dir)
        self.api_port, self.endpoint_port = free_port(), free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.endpoint_port}/in"

    # processes

    def start(self) -> None:
        self.redis.start()
        self.procs.start("endpoint", [sys.executable, str(Path(__file__).resolve()), "_endpoint",
                                      str(self.endpoint_port)])
        self.procs.start_worker(concurrency=self.args.concurrency, pool=self.args.pool)
        self.procs.start_web(self.api_port)
        self.procs.wait_answering("endpoint", f"http://127.0.0.1:{self.endpoint_port}/__stats")

    def stop(self) -> None:
        self.procs.stop_all()
        self.redis.cleanup()
        if self.args.keep:
            print(f"logs kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # helpers

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far by each component (with its child processes), Redis included."""
        spent = {name: cpu_seconds([proc.pid]) for name, proc in self.procs.procs.items()}
        spent["redis"] = cpu_seconds([self.redis.process.pid])
        return spent

    def endpoint_stats(self) -> dict:
        client = Client(self.endpoint_port)
        try:
            return client.json("GET", "/__stats")[1]
        finally:
            client.close()

    def wait_records(self, count: int, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            stats = self.endpoint_stats()
            if stats["records"] >= count:
                return stats
            if time.monotonic() > deadline:
                raise RuntimeError(f"the endpoint got {stats['records']} of {count} records in {timeout_s:g} s")
            time.sleep(0.005)

    def put_batch(self, name: str, interval_s: float) -> None:
        client = Client(self.api_port)
        status, body = client.json("PUT", f"/v1/batches/{name}", {"endpoint": self.endpoint_url,
                                                                  "max_records": BATCH_RECORDS, "interval": interval_s})
        client.close()
        if status not in (200, 201):
            raise RuntimeError(f"PUT /v1/batches/{name}: {status} {body}")

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    # phases

    def warm_up(self) -> None:
        """One pass of everything (imports, connections, scripts loaded) before any figure."""
        self.put_batch("warmup", 1)
        body = json.dumps({"records": [record(n) for n in range(CALL_RECORDS)]}).encode()
        run_clients(self.api_port, "/v1/batches/warmup/records/batch", [body], 4, 2, 202)
        self.wait_records(4 * CALL_RECORDS, WARM_UP_TIMEOUT_S)

    def throughput(self) -> dict:
        calls = self.args.records // CALL_RECORDS
        total = calls * CALL_RECORDS
        self.put_batch("tput", 1)
        bodies = [json.dumps({"records": [record(k * CALL_RECORDS + n) for n in range(CALL_RECORDS)]}).encode()
                  for k in range(8)]
        base = self.endpoint_stats()["records"]
        cpu_before = self.cpu_s()
        started = time.time()
        accepted_at = run_clients(self.api_port, "/v1/batches/tput/records/batch", bodies, calls,
                                  self.args.clients, 202)
        self.wait_records(base + total, 300)
        forwarded_at = time.time()
        accepted = total / (accepted_at - started)
        forwarded = total / (forwarded_at - started)
        cpu = {name: spent - cpu_before[name] for name, spent in self.cpu_s().items()}
        self.say(f"  htq: {total:,} records in {forwarded_at - started:.2f} s: accepted {accepted:,.0f} records/s, "
                 f"accepted+forwarded {forwarded:,.0f} records/s")
        self.say("  CPU seconds per 100,000 records: " + ", ".join(
            f"{name} {spent * 100_000 / total:.2f}" for name, spent in cpu.items()))

        arrays = [json.dumps([record(k * BATCH_RECORDS + n) for n in range(BATCH_RECORDS)]).encode()
                  for k in range(8)]
        base = self.endpoint_stats()["records"]
        started = time.time()
        run_clients(self.endpoint_port, "/in", arrays, total // BATCH_RECORDS, self.args.clients, 200)
        self.wait_records(base + total, 300)
        direct = total / (time.time() - started)
        self.say(f"  baseline, arrays of {BATCH_RECORDS} POSTed straight to the endpoint: {direct:,.0f} records/s")
        self.say(f"  ratio htq accepted+forwarded / baseline: {forwarded / direct:.2f}")
        return {"accepted": accepted, "forwarded": forwarded, "baseline": direct}

    def flush_delay(self) -> dict:
        self.put_batch("lat", 3600)
        api = Client(self.api_port)
        filler = json.dumps({"records": [record(n) for n in range(BATCH_RECORDS - 1)]}).encode()
        last = json.dumps(record(BATCH_RECORDS - 1)).encode()
        delays_ms, answered_ms = [], []
        try:
            for _ in range(self.args.trials):
                batches = self.endpoint_stats()["batches"]
                status, raw = api.call("POST", "/v1/batches/lat/records/batch", filler)
                assert status == 202, raw
                sent = time.time()
                status, raw = api.call("POST", "/v1/batches/lat/records", last)
                answered = time.time()
                assert status == 202, raw
                deadline = time.monotonic() + 10
                while (stats := self.endpoint_stats())["batches"] <= batches:
                    if time.monotonic() > deadline:
                        raise RuntimeError("a full batch did not arrive within 10 s")
                    time.sleep(0.001)
                delays_ms.append((stats["last_arrival"] - sent) * 1000)
                answered_ms.append((answered - sent) * 1000)
        finally:
            api.close()
        direct = Client(self.endpoint_port)
        array = json.dumps([record(n) for n in range(BATCH_RECORDS)]).encode()
        direct_ms = []
        for _ in range(self.args.trials):
            started = time.time()
            direct.call("POST", "/in", array)
            direct_ms.append((time.time() - started) * 1000)
        direct.close()
        p50, p99 = percentile(delays_ms, 50), percentile(delays_ms, 99)
        self.say(f"  htq, from the filling request to the endpoint ({len(delays_ms)} batches): p50 {p50:.1f} ms, "
                 f"p99 {p99:.1f} ms, max {max(delays_ms):.1f} ms "
                 f"(the filling request itself answered in p50 {percentile(answered_ms, 50):.1f} ms)")
        b50, b99 = percentile(direct_ms, 50), percentile(direct_ms, 99)
        self.say(f"  baseline, one direct POST of {BATCH_RECORDS} records: p50 {b50:.1f} ms, p99 {b99:.1f} ms")
        self.say(f"  ratio htq / baseline: p50 {p50 / b50:.1f}x, p99 {p99 / b99:.1f}x")
        return {"p50": p50, "p99": p99}

    def run(self) -> int:
        self.say(f"bench/batches.py: {os.cpu_count()} CPUs, {self.args.web_workers} gunicorn workers, "
                 f"worker -P {self.args.pool} -c {self.args.concurrency}, {self.args.clients} client connections")
        self.start()
        self.warm_up()
        self.say(f"\n1. throughput, batches of {BATCH_RECORDS}, {CALL_RECORDS} records per call")
        rates = self.throughput()
        self.say(f"\n2. flush delay after max_records ({BATCH_RECORDS}) is reached")
        delay = self.flush_delay()
        self.say("\nsummary against the targets")
        ok_rate, ok_delay = rates["forwarded"] >= TARGET_RATE, delay["p99"] <= TARGET_P99_MS
        self.say(f"  [{'ok' if ok_rate else 'MISS'}] accepted+forwarded {rates['forwarded']:,.0f} records/s "
                 f"(target >= {TARGET_RATE:,})")
        self.say(f"  [{'ok' if ok_delay else 'MISS'}] flush delay p99 {delay['p99']:.1f} ms (target <= "
                 f"{TARGET_P99_MS:g} ms)")
        return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000, help="records in the throughput run")
    parser.add_argument("--trials", type=int, default=200, help="full batches timed for the flush delay")
    parser.add_argument("--clients", type=int, default=4, help="client connections")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker processes (or threads)")
    parser.add_argument("--pool", default="prefork", help="Celery pool: prefork (as in production) or threads")
    parser.add_argument("--quick", action="store_true", help="50,000 records and 100 trials")
    parser.add_argument("--keep", action="store_true", help="keep the directory with every process's log")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.trials = 50_000, 100
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["_endpoint"]:
        serve_endpoint(int(argv[1]))
        return 0
    bench = Bench(parse_args(argv))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return bench.run()
    finally:
        bench.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
