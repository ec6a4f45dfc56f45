"""Benchmark of message queues over HTTP: batch and single cycles, long-poll wake-up, many waiters.

Run from the repository root, with the project's virtualenv:

    python -m bench.queues                # about two minutes on 2 cores
    python -m bench.queues --duration 5 --rounds 1   # shorter

It starts its own Redis (app.processes.TemporaryRedis, a real redis-server on a free port) and the
web server as production runs it (`gunicorn -c config/gunicorn.py "app:create_app()"`, gevent
workers), then drives it from `--clients` processes, each an asyncio HTTP/1.1 client with
`--connections` keep-alive connections. Phases 1-3 run `--rounds` times, interleaved, each round
after a CPU speed reference, and so do the two cycles against the bare queue (`bare_app`: the
same routes, each served by one plain Redis list command, no queue semantics, on the same
gunicorn settings and Redis). It prints every round (with the CPU gunicorn and Redis spent per
item and the cores the clients used), then the medians (and best) of htq's cycles as a share of
the bare queue's medians:

1. Baseline: `GET /healthz` requests/s with the same clients (the cost of HTTP alone).
2. Batch cycle: messages/s through `POST .../messages/batch` (100) + `POST .../receive`
   (max 100) + `POST .../messages/ack` (100), each connection running that loop.
3. Single cycle: messages/s through `POST .../messages` + `POST .../receive` (max 1) +
   `DELETE .../messages/{id}?receipt=`.
4. Long-poll wake-up: a receive with `wait=20` is parked, then one message is pushed; the time
   from the push's answer (and from its sending) to the waiting receive's answer, p50/p99.
5. Many waiters: `--waiters` receives with `wait=20` held at once, the latency of other requests
   (`GET /v1/queues/{name}`) meanwhile, p50/p99, then the time until every waiter got a message.

The machine is shared with the clients (and whatever else runs): the header prints the load
average. On shared (virtual) machines the speed of the same code varies by half from one minute
to the next, which the speed reference shows; compare phases of the same round, and medians.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import orjson  # noqa: E402

from app.embedded import free_port  # noqa: E402
from app.processes import ServiceProcesses, TemporaryRedis, service_env  # noqa: E402
from app.storage.client import connect  # noqa: E402
from bench import cpu_seconds  # noqa: E402
from bench.long_polls import collect, open_long_polls, parked, wait_parked  # noqa: E402

TARGETS = {"batch": 20_000, "single": 800, "wake_p99_ms": 20, "others_p99_ms": 100}


# -- a small asyncio HTTP/1.1 client with keep-alive -----------------------------------------------


CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class Connection:
    """Kept light, since the clients share the machine with the server: orjson, one read of the head."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def request(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        """(status, body); `body` is JSON-encoded unless it is bytes already."""
        data = b"" if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
        self.writer.write(b"%s %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (method.encode(), path.encode(), len(data), data))
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = CONTENT_LENGTH.search(head)
        return int(head[9:12]), await self.reader.readexactly(int(length[1])) if length else b""

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _expect(status: int, wanted: int, data: bytes) -> None:
    if status != wanted:
        raise RuntimeError(f"HTTP {status}: {data[:300]!r}")


# -- load phases (run in client processes) ---------------------------------------------------------


async def _loop_healthz(conn: Connection, stop_at: float) -> int:
    done = 0
    while time.monotonic() < stop_at:
        status, data = await conn.request("GET", "/healthz")
        _expect(status, 200, data)
        done += 1
    return done


async def _loop_batch(conn: Connection, stop_at: float, queue: str) -> int:
    base = f"/v1/queues/{queue}/messages"
    body = orjson.dumps({"messages": [{"body": {"n": i, "payload": "x" * 64}} for i in range(100)]})
    acked = 0
    while time.monotonic() < stop_at:
        status, data = await conn.request("POST", f"{base}/batch", body)
        _expect(status, 201, data)
        status, data = await conn.request("POST", f"{base}/receive", {"max": 100})
        _expect(status, 200, data)
        messages = orjson.loads(data)["messages"]
        if messages:
            status, data = await conn.request("POST", f"{base}/ack", {"messages": [
                {"id": m["id"], "receipt": m["receipt"]} for m in messages]})
            _expect(status, 200, data)
            acked += orjson.loads(data)["acked"]
    return acked


async def _loop_single(conn: Connection, stop_at: float, queue: str) -> int:
    base = f"/v1/queues/{queue}/messages"
    acked = 0
    while time.monotonic() < stop_at:
        status, data = await conn.request("POST", base, {"n": acked, "payload": "x" * 64})
        _expect(status, 201, data)
        status, data = await conn.request("POST", f"{base}/receive", {"max": 1})
        _expect(status, 200, data)
        for message in orjson.loads(data)["messages"]:
            status, data = await conn.request("DELETE", f"{base}/{message['id']}?receipt={message['receipt']}")
            _expect(status, 204, data)
            acked += 1
    return acked


LOOPS = {"healthz": _loop_healthz, "batch": _loop_batch, "single": _loop_single}
UNITS = {"healthz": "requests", "batch": "messages", "single": "messages"}
# phase: (loop, server): htq, or the bare queue (bare_app) on the same gunicorn settings and Redis
PHASES = {"healthz": ("healthz", "htq"), "batch": ("batch", "htq"), "single": ("single", "htq"),
          "bare batch": ("batch", "bare"), "bare single": ("single", "bare")}


def _client(port: int, phase: str, connections: int, duration_s: float, start_at: float, index: int,
            results) -> None:
    async def main() -> int:
        conns = [await Connection(port).open() for _ in range(connections)]
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop_at = time.monotonic() + duration_s
        args = [] if phase == "healthz" else [f"bench-{phase}-{index}-{n}" for n in range(connections)]
        cpu_before = time.process_time()
        counts = await asyncio.gather(*(LOOPS[phase](conn, stop_at, *args[i:i + 1])
                                        for i, conn in enumerate(conns)))
        cpu_used = time.process_time() - cpu_before
        for conn in conns:
            conn.close()
        return sum(counts), cpu_used

    results.put(asyncio.run(main()))


@dataclass
class Phase:
    rate: float  # requests or acknowledged messages per second
    server_cpu: float  # CPU seconds of gunicorn and Redis per item
    redis_cpu: float  # of which Redis
    client_cores: float  # cores the load clients used


def run_phase(port: int, phase: str, clients: int, connections: int, duration_s: float,
              web_pid: int, redis_pid: int) -> Phase:
    """Load for `duration_s` from `clients` processes; what it achieved and cost."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 1.0  # every client connected before the clock starts
    procs = [context.Process(target=_client, args=(port, phase, connections, duration_s, start_at, i, results))
             for i in range(clients)]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start_at - time.time()))
    web_before, redis_before = cpu_seconds([web_pid]), cpu_seconds([redis_pid])
    counts, client_cpu = zip(*(results.get(timeout=duration_s + 60) for _ in procs))
    total = max(sum(counts), 1)
    web_cpu, redis_cpu = cpu_seconds([web_pid]) - web_before, cpu_seconds([redis_pid]) - redis_before
    for proc in procs:
        proc.join(10)
    return Phase(total / duration_s, (web_cpu + redis_cpu) / total, redis_cpu / total, sum(client_cpu) / duration_s)


def speed_reference_us() -> float:
    """µs for sum(range(1000)) on this machine now: shared machines vary by half from minute to minute."""
    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6


# -- the bare queue (`gunicorn ... "bench.queues:bare_app()"`) --------------------------------------


def bare_app():
    """The routes the cycles use, with no queue semantics: flask-smorest validates each request,
    one plain Redis command serves it (a list: RPUSH, LPOP, DEL), ids are random and a receipt is
    the id. No visibility timeout, receive count, dead letters, delay, order or notification. What
    gunicorn, Flask, flask-smorest, redis-py and Redis cost alone: the floor of any queue built on
    them, served by the same gunicorn settings."""
    import secrets

    from flask import Flask, Response, jsonify, request
    from flask_smorest import Api
    from marshmallow import Schema, fields, validate

    from app.api.common import Blueprint, JSONProvider
    from app.core import jsontext
    from app.storage.client import connect
    from config import load_settings

    class Receive(Schema):
        max = fields.Integer(load_default=10, validate=validate.Range(1, 100))

    class Batch(Schema):
        messages = fields.List(fields.Raw(), required=True, validate=validate.Length(1, 100))

    class Receipt(Schema):
        receipt = fields.String()

    app = Flask("htq-bench-bare")
    app.json = JSONProvider(app)
    app.config.update(API_TITLE="bare", API_VERSION="v1", OPENAPI_VERSION="3.0.3")
    api = Api(app)
    blp = Blueprint("bare", __name__, url_prefix="/v1/queues")
    client = connect(load_settings().redis_url)

    def key(name: str) -> str:
        return f"bench-bare:{name}"

    @app.get("/healthz")
    def healthz():
        return Response("OK", mimetype="text/plain")

    @blp.route("/<name>/messages", methods=["POST"])
    def push(name):
        message_id = secrets.token_hex(8)
        client.rpush(key(name), message_id + request.get_data(as_text=True))
        return jsonify(id=message_id), 201

    @blp.route("/<name>/messages/batch", methods=["POST"])
    @blp.arguments(Batch)
    def push_batch(body, name):
        ids = [secrets.token_hex(8) for _ in body["messages"]]
        client.rpush(key(name), *(i + jsontext.dumps(m["body"]) for i, m in zip(ids, body["messages"])))
        return jsonify(ids=ids), 201

    @blp.route("/<name>/messages/receive", methods=["POST"])
    @blp.arguments(Receive)
    def receive(args, name):
        stored = client.lpop(key(name), args["max"]) or []
        return jsonify(messages=[{"id": m[:16], "receipt": m[:16], "body": jsontext.embedded(m[16:])}
                                 for m in stored])

    @blp.route("/<name>/messages/ack", methods=["POST"])
    @blp.arguments(Batch)
    def ack(body, name):
        client.delete(*(key(m["id"]) for m in body["messages"]))
        return jsonify(acked=len(body["messages"]), failed=[])

    @blp.route("/<name>/messages/<message_id>", methods=["DELETE"])
    @blp.arguments(Receipt, location="query")
    def delete(args, name, message_id):
        client.delete(key(message_id))
        return "", 204

    api.register_blueprint(blp)
    return app


# -- latency phases (in this process) --------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def wake_up_latency(port: int, rounds: int, store) -> tuple[list[float], list[float]]:
    """(ms from the push's answer, ms from the push's sending) to the parked receive's answer.
    `store` is a client of the Redis, to tell when the receive waits."""
    waiter, pusher = await Connection(port).open(), await Connection(port).open()
    status, data = await pusher.request("PUT", "/v1/queues/wake", {})
    _expect(status, 201, data)
    after_ack, after_send = [], []
    for n in range(rounds):
        store.config_resetstat()
        receive = asyncio.ensure_future(waiter.request("POST", "/v1/queues/wake/messages/receive",
                                                       {"wait": 20, "max": 1}))
        while not parked(store, 1) and not receive.done():
            await asyncio.sleep(0.001)
        sent = time.perf_counter()
        status, data = await pusher.request("POST", "/v1/queues/wake/messages", {"n": n})
        acked = time.perf_counter()
        _expect(status, 201, data)
        status, data = await receive
        answered = time.perf_counter()
        _expect(status, 200, data)
        message = json.loads(data)["messages"][0]
        await pusher.request("DELETE", f"/v1/queues/wake/messages/{message['id']}")
        after_ack.append((answered - acked) * 1000)
        after_send.append((answered - sent) * 1000)
    waiter.close()
    pusher.close()
    return after_ack, after_send


def hold_waiters(port: int, count: int, probes: int, store) -> tuple[list[float], float, int]:
    """Park `count` long polls; (latencies of other requests meanwhile in ms, seconds until every
    waiter was answered after the pushes, messages they got). `store` is a client of the Redis."""

    async def other_requests() -> list[float]:
        conn = await Connection(port).open()
        await conn.request("PUT", "/v1/queues/held", {})
        latencies = []
        for _ in range(probes):
            started = time.perf_counter()
            status, data = await conn.request("GET", "/v1/queues/held")
            latencies.append((time.perf_counter() - started) * 1000)
            _expect(status, 200, data)
        conn.close()
        return latencies

    with socket.create_connection(("127.0.0.1", port)) as sock:  # the queue exists before anyone waits
        body = b"{}"
        sock.sendall(b"PUT /v1/queues/held HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 2\r\nConnection: close\r\n\r\n" + body)
        sock.recv(65536)
    store.config_resetstat()
    selector = open_long_polls(port, "held", count, {"wait": 20, "max": 1})
    wait_parked(store, count)
    latencies = asyncio.run(other_requests())

    async def push_all() -> None:
        conn = await Connection(port).open()
        for start in range(0, count, 100):
            await conn.request("POST", "/v1/queues/held/messages/batch",
                               {"messages": [{"body": i} for i in range(start, min(count, start + 100))]})
        conn.close()

    pushed_at = time.monotonic()
    asyncio.run(push_all())
    answers = collect(selector, count, 30)
    drained_s = time.monotonic() - pushed_at
    got = sum(len(json.loads(answer.partition(b"\r\n\r\n")[2])["messages"]) for answer in answers
              if answer.startswith(b"HTTP/1.1 200"))
    return latencies, drained_s, got


# -- processes -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each throughput phase")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections per client process")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three throughput phases")
    parser.add_argument("--wake-rounds", type=int, default=300)
    parser.add_argument("--waiters", type=int, default=500)
    args = parser.parse_args()

    print(f"htq queue benchmark: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
          f"{args.clients} client processes x {args.connections} connections, {args.duration:g} s phases")
    redis = TemporaryRedis()
    redis.start()
    store = connect(redis.url)
    logdir = Path(tempfile.mkdtemp(prefix="htq-bench-"))
    services = ServiceProcesses(service_env(redis.url, LOG_LEVEL="WARNING"), logdir)
    try:
        port, bare_port = free_port(), free_port()
        services.start_web(port)
        services.start_web(bare_port, "bench.queues:bare_app()", name="web-bare")
        servers = {"htq": (port, services.procs["web"].pid), "bare": (bare_port, services.procs["web-bare"].pid)}
        runs: dict[str, list[Phase]] = {phase: [] for phase in PHASES}
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}: speed reference {speed_reference_us():.1f} us (sum(range(1000)))")
            for phase, (loop, server) in PHASES.items():
                result = run_phase(servers[server][0], loop, args.clients, args.connections, args.duration,
                                   servers[server][1], redis.process.pid)
                runs[phase].append(result)
                print(f"  {phase:12s}{result.rate:10,.0f} {UNITS[loop]}/s  "
                      f"server CPU {result.server_cpu * 1e6:6.0f} us (Redis {result.redis_cpu * 1e6:5.0f}) "
                      f"per {UNITS[loop][:-1]}, clients {result.client_cores:.2f} cores")

        def median(phase: str) -> float:
            return statistics.median(run.rate for run in runs[phase])

        print(f"median of {args.rounds} rounds (best), and the bare queue's median in the same runs:")
        print(f"baseline  GET /healthz                     {median('healthz'):10,.0f} requests/s")
        for phase, label in (("batch", "batch     push 100 + receive 100 + ack 100"),
                             ("single", "single    push + receive + delete")):
            cpu = statistics.median(run.server_cpu for run in runs[phase])
            print(f"{label:43s}{median(phase):10,.0f} ({max(run.rate for run in runs[phase]):,.0f}) messages/s  "
                  f"= {median(phase) / median('bare ' + phase):.0%} of the bare queue's {median('bare ' + phase):,.0f}"
                  f"  (target {TARGETS[phase]:,}/s; server CPU {cpu * 1e6:.0f} us per message)")
        after_ack, after_send = asyncio.run(wake_up_latency(port, args.wake_rounds, store))
        print(f"wake-up   after the push's answer  p50 {percentile(after_ack, 0.5):6.1f} ms  "
              f"p99 {percentile(after_ack, 0.99):6.1f} ms  (target p99 <= {TARGETS['wake_p99_ms']} ms)")
        print(f"          after the push's sending p50 {percentile(after_send, 0.5):6.1f} ms  "
              f"p99 {percentile(after_send, 0.99):6.1f} ms")
        latencies, drained_s, got = hold_waiters(port, args.waiters, 200, store)
        print(f"waiters   {args.waiters} long polls held; other requests p50 {percentile(latencies, 0.5):6.1f} ms  "
              f"p99 {percentile(latencies, 0.99):6.1f} ms  (target p99 < {TARGETS['others_p99_ms']} ms); "
              f"{got} messages reached them {drained_s:.2f} s after the pushes began")
    finally:
        services.stop_all()
        store.close()
        redis.cleanup()
        shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
