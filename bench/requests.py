"""Benchmark of deferred requests: API accept rate, delivery rate, lateness, cost of pending requests.

Run from the repository root, with the project's virtualenv:

    python -m bench.requests                  # full run, under 10 minutes on 2 cores
    python -m bench.requests --quick          # smaller sizes, under 2 minutes
    python -m bench.requests --pending 1000000 --skip-api --skip-lateness

It starts everything itself and stops all of it at the end, also on Ctrl-C, SIGTERM or an error:
its own Redis (`app.embedded.RedisServer` in a temporary directory), a local HTTP target on
127.0.0.1 (an asyncio server in a subprocess that records when each request arrives), the htq
web server as production runs it (`gunicorn -c config/gunicorn.py "app:create_app()"`), a bare
flask-smorest app served with the same gunicorn settings, real Celery workers
(`celery -A workers worker -c N`) and beat, and a bare Celery worker for the baseline.

It prints, measured in the same run:

1. API accept rate of `POST /v1/requests` (bodies due in 30 days and no worker running, so
   nothing is delivered), next to a bare flask-smorest endpoint that validates the same body
   with htq's `RequestCreateSchema` and does one Redis `SET`; and of `POST /v1/requests/batch`
   (100 requests per call). The load comes from `--clients` processes, each an asyncio client
   with keep-alive connections (`wrk` is not needed).
2. End-to-end delivered requests/s for `--e2e` immediate requests created through the batch
   route (from the first create to the last arrival at the target), next to a bare Celery
   baseline: one `apply_async` per request of a task doing the same `requests` call, on a
   worker with the same `celery_config()`, concurrency and broker (only its queue differs).
3. Lateness (arrival at the target minus `eta`) of `--late` requests due uniformly over
   `--late-spread` seconds: p50, p99, max and how many arrived early.
4. Redis memory per pending request (`used_memory` delta / N) after creating `--pending`
   requests due in 30 days straight through `RequestService.create_many`, and the worker's RSS
   (main process plus pool children) before and after.

Figures of each section are printed as soon as they are measured, then a summary against the
targets of the issue. `--keep` keeps the temporary directory with every process's log.

Everything shares the machine's cores with whatever else runs there: the header prints the load
average. On a shared machine, `nice -n -10 python -m bench.requests` (as root) keeps other work
from skewing the figures; every process the bench starts inherits the priority.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    # Run as a file: bench/ would shadow the `requests` library; run from the repository instead.
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from app.processes import ServiceProcesses, die_with_parent, service_env  # noqa: E402
from bench import cpu_seconds, descendants  # noqa: E402
from config.settings import WORKER_POOLS, Settings, load_settings  # noqa: E402

DAY_S = 86400
PENDING_DELAY_S = 30 * DAY_S
BATCH_SIZE = 100
BASELINE_QUEUE = "htq-bench-baseline"
BASELINE_TASK = "bench.baseline_send"
BARE_KEY_PREFIX = "bench:bare:"
SLOW_MS = 100  # how long the target takes to answer with --slow


# -- the HTTP target (subprocess: `python -m bench.requests _target PORT`) ---------------------


def _framing(head: bytes) -> tuple[int, bool]:
    """(Content-Length, whether `Connection: close`) of an HTTP message head, start line included."""
    length, close = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    return length, close


class _TargetProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 with keep-alive. `/t/<tag>/<n>` is recorded with its arrival time (time.time()
    when its header was complete); `/__count?tag=` (with the number of connections accepted so far)
    and `/__dump?tag=` report; everything answers 200."""

    connections = 0
    delay_s = 0.0  # answers to /t/ paths wait this long (--slow)

    def __init__(self, arrivals: dict[str, list]):
        self.arrivals = arrivals
        self.buffer = b""
        self.head_at: float | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):
        self.transport = transport
        _TargetProtocol.connections += 1

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if self.head_at is None:
                self.head_at = now
            head = self.buffer[:end]
            length, close = _framing(head)
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            arrived, self.head_at = self.head_at, None
            path = head.split(b" ", 2)[1].decode()
            if self.delay_s and path.startswith("/t/"):
                asyncio.get_running_loop().call_later(self.delay_s, self._write, self._answer(path, arrived))
            else:
                self.transport.write(self._answer(path, arrived))
            if close:
                self.transport.close()
                return

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def _answer(self, path: str, arrived: float) -> bytes:
        if path.startswith("/t/"):
            _, _, tag, n = path.split("/", 3)
            self.arrivals.setdefault(tag, []).append((int(n), arrived))
            body = b"ok"
        else:
            route, _, query = path.partition("?")
            tag = query.partition("tag=")[2]
            found = self.arrivals.get(tag, [])
            if route == "/__count":
                body = json.dumps({"count": len(found), "connections": _TargetProtocol.connections}).encode()
            elif route == "/__dump":
                body = json.dumps(found).encode()
            else:
                body = b"ok"
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def serve_target(port: int, host: str = "127.0.0.1", delay_ms: int = 0) -> None:
    _TargetProtocol.delay_s = delay_ms / 1000

    async def main():
        arrivals: dict[str, list] = {}
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _TargetProtocol(arrivals), host, port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- the load generator (subprocess: `python -m bench.requests _load ...`) ---------------------


async def _load(host: str, port: int, path: str, body: bytes, connections: int, start_at: float,
                warmup_s: float, duration_s: float) -> dict:
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    measure_from = start_at + warmup_s
    measure_to = measure_from + duration_s
    statuses: dict[int, int] = {}
    latencies_ms: list[float] = []

    async def one_connection():
        reader = writer = None
        while time.time() < measure_to:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            sent = time.time()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, close = _framing(head)
            await reader.readexactly(length)
            done = time.time()
            if measure_from <= done < measure_to:
                statuses[status] = statuses.get(status, 0) + 1
                latencies_ms.append((done - sent) * 1000)
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    cpu_s: list[float] = []
    loop = asyncio.get_running_loop()
    for moment in (measure_from, measure_to):
        loop.call_later(moment - time.time(), lambda: cpu_s.append(time.process_time()))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return {"statuses": statuses, "latencies_ms": latencies_ms, "cpu_s": cpu_s[1] - cpu_s[0]}


def run_load(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    for name, kind in (("--host", str), ("--port", int), ("--path", str), ("--body-file", str),
                       ("--connections", int), ("--start-at", float), ("--warmup", float), ("--duration", float)):
        parser.add_argument(name, type=kind, required=True)
    args = parser.parse_args(argv)
    body = Path(args.body_file).read_bytes()
    result = asyncio.run(_load(args.host, args.port, args.path, body, args.connections, args.start_at,
                               args.warmup, args.duration))
    json.dump(result, sys.stdout)


# -- the bare flask-smorest app (`gunicorn ... "bench.requests:bare_app()"`) --------------------


def bare_app():
    """One route: validate with htq's RequestCreateSchema, one Redis SET, answer 201."""
    from flask import Flask
    from flask_smorest import Api, Blueprint
    from marshmallow import Schema, fields

    from app.api.requests.schemas import RequestCreateSchema
    from app.storage.client import connect

    settings = load_settings()
    app = Flask("htq-bench-bare")
    app.config.update(API_TITLE="bare", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
                      MAX_CONTENT_LENGTH=settings.max_request_bytes)
    api = Api(app)
    blp = Blueprint("bare", __name__, url_prefix="/v1")
    client = connect(settings.redis_url)

    class CreatedSchema(Schema):
        id = fields.String()
        url = fields.String()
        method = fields.String()

    @blp.route("/requests", methods=["POST"])
    @blp.arguments(RequestCreateSchema)
    @blp.response(201, CreatedSchema)
    def create(body):
        request_id = uuid.uuid4().hex
        client.set(BARE_KEY_PREFIX + request_id, json.dumps(body))
        return {"id": request_id, **body}

    api.register_blueprint(blp)
    return app


# -- the bare Celery baseline (`celery -A bench.requests:baseline_celery worker`) ----------------

_baseline_session = None


def _send_plain(method: str, url: str, body: str, headers: dict[str, str], timeout_s: float) -> int:
    """The same `requests` call htq makes, through one keep-alive session per process."""
    global _baseline_session
    import requests

    if _baseline_session is None:
        _baseline_session = requests.Session()
    response = _baseline_session.request(method, url, data=body.encode(), headers=headers, timeout=timeout_s,
                                         allow_redirects=False)
    response.content  # noqa: B018 - read the body, as htq does
    return response.status_code


def build_baseline_celery(settings: Settings):
    """htq's Celery configuration with its own queue, and one task per request."""
    from celery import Celery
    from celery.signals import setup_logging

    from app.log import configure_logging

    app = Celery("htq-bench-baseline")
    app.conf.update({**settings.celery_config(), "task_default_queue": BASELINE_QUEUE})

    @setup_logging.connect(weak=False)
    def _configure_logging(**_):
        configure_logging(settings.log_level, settings.log_format)

    @app.task(name=BASELINE_TASK, ignore_result=True, time_limit=1800 + 120)
    def baseline_send(method: str, url: str, body: str, headers: dict, timeout_s: float) -> None:
        _send_plain(method, url, body, headers, timeout_s)

    return app


def __getattr__(name: str):
    if name == "baseline_celery":
        app = globals()["baseline_celery"] = build_baseline_celery(load_settings())
        return app
    raise AttributeError(name)


# -- process management ---------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    """Proportional set size (shared pages split between the processes sharing them), else RSS."""
    for path, field_name in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(field_name):
                    return int(line.split()[1])
        except OSError:
            continue
    return 0


def worker_rss_mib(pid: int) -> tuple[float, float, int]:
    """(PSS total over the main process and its pool children, largest child, number of children)."""
    children = descendants(pid)
    sizes = [_rss_kib(child) for child in children]
    return (_rss_kib(pid) + sum(sizes)) / 1024, max(sizes or [0]) / 1024, len(children)


# -- the bench ------------------------------------------------------------------------------


@dataclass
class Sizes:
    api_warmup_s: float
    api_duration_s: float
    e2e: int
    warm: int
    late: int
    late_spread_s: float
    late_lead_s: float
    pending: int


@dataclass
class Bench:
    args: argparse.Namespace
    sizes: Sizes
    workdir: Path
    procs: ServiceProcesses = field(init=False)
    results: dict = field(default_factory=dict)

    def __post_init__(self):
        from app.embedded import RedisServer, free_port

        self.redis_server = RedisServer(self.workdir / "redis")
        self.target_port, self.htq_port, self.bare_port = free_port(), free_port(), free_port()
        self.target = f"http://127.0.0.1:{self.target_port}"
        self.htq = f"http://127.0.0.1:{self.htq_port}"

    # -- set-up -------------------------------------------------------------------------------

    def start(self) -> None:
        import redis
        import requests

        self.redis_server.start()
        extra = {"HTQ_CONCURRENCY": str(self.args.concurrency)}
        if self.args.horizon:
            extra["HTQ_HORIZON"] = str(self.args.horizon)
        self.env = service_env(self.redis_server.url, **extra)
        self.settings = load_settings(self.env)
        self.redis = redis.Redis.from_url(self.redis_server.url, decode_responses=True)
        self.procs = ServiceProcesses(self.env, self.workdir, die_with_parent=True)
        self.http = requests.Session()
        self.procs.start("target", [sys.executable, "-m", "bench.requests", "_target", str(self.target_port),
                                    "127.0.0.1", str(SLOW_MS if self.args.slow else 0)])
        self.procs.start_web(self.htq_port, name="web-htq")
        self.procs.start_web(self.bare_port, "bench.requests:bare_app()", name="web-bare", ready_path="/openapi.json")
        self.procs.wait_answering("target", self.target + "/__count")

    def start_htq_workers(self) -> None:
        self.procs.start_worker("worker-htq", concurrency=self.args.concurrency, options=())
        self.procs.start_beat()
        self.procs.wait_log("worker-htq", " ready.")
        self.procs.wait_log("beat", "beat: Starting")

    def start_baseline_worker(self) -> None:
        self.procs.start_worker("worker-baseline", concurrency=self.args.concurrency,
                                app="bench.requests:baseline_celery", options=())
        self.procs.wait_log("worker-baseline", " ready.")

    # -- helpers --------------------------------------------------------------------------------

    def body(self, tag: str, n: int, **timing) -> dict:
        return {"url": f"{self.target}/t/{tag}/{n}", "method": "POST", "json": {"n": n}, **timing}

    def create_batches(self, bodies: list[dict]) -> None:
        for start in range(0, len(bodies), BATCH_SIZE):
            response = self.http.post(self.htq + "/v1/requests/batch",
                                      json={"requests": bodies[start:start + BATCH_SIZE]}, timeout=30)
            if response.status_code != 201:
                raise RuntimeError(f"batch create answered {response.status_code}: {response.text[:500]}")

    def arrivals(self, tag: str, count: int, timeout_s: float) -> list[tuple[int, float]]:
        """Wait until `count` requests of `tag` arrived (or the timeout), then all their arrivals."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.http.get(f"{self.target}/__count?tag={tag}", timeout=10).json()["count"] >= count:
                break
            time.sleep(0.05)
        return [tuple(item) for item in self.http.get(f"{self.target}/__dump?tag={tag}", timeout=30).json()]

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    # -- 1. API accept rate -------------------------------------------------------------------

    def measure_accept(self, name: str, port: int, path: str, body: dict, per_call: int) -> dict:
        body_file = self.workdir / f"body-{uuid.uuid4().hex}.json"
        body_file.write_text(json.dumps(body))
        start_at = time.time() + 1.5
        argv = [sys.executable, "-m", "bench.requests", "_load", "--host", "127.0.0.1", "--port", str(port),
                "--path", path, "--body-file", str(body_file), "--connections", str(self.args.connections),
                "--start-at", str(start_at), "--warmup", str(self.sizes.api_warmup_s),
                "--duration", str(self.sizes.api_duration_s)]
        loaders = [subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=subprocess.PIPE, start_new_session=True,
                                    preexec_fn=die_with_parent)
                   for _ in range(self.args.clients)]
        statuses: dict[str, int] = {}
        latencies: list[float] = []
        loader_cpu_s = 0.0
        master = self.procs.procs["web-bare" if port == self.bare_port else "web-htq"].pid
        measure_from = start_at + self.sizes.api_warmup_s
        try:
            time.sleep(max(0.0, measure_from - time.time()))
            web, redis_pid = [master], [self.redis_server.process.pid]
            cpu_before = cpu_seconds(web), cpu_seconds(redis_pid)
            time.sleep(max(0.0, measure_from + self.sizes.api_duration_s - time.time()))
            cpu_web, cpu_redis = cpu_seconds(web) - cpu_before[0], cpu_seconds(redis_pid) - cpu_before[1]
            for loader in loaders:
                out, _ = loader.communicate(timeout=start_at - time.time() + self.sizes.api_warmup_s
                                            + self.sizes.api_duration_s + 60)
                if loader.returncode != 0:
                    raise RuntimeError(f"load generator failed ({loader.returncode})")
                result = json.loads(out)
                for status, count in result["statuses"].items():
                    statuses[status] = statuses.get(status, 0) + count
                latencies += result["latencies_ms"]
                loader_cpu_s += result["cpu_s"]
        finally:
            for loader in loaders:
                if loader.poll() is None:
                    loader.kill()
                    loader.wait()
        ok = statuses.get("201", 0)
        duration = self.sizes.api_duration_s
        calls_s = ok / duration
        accepted = ok * per_call
        figures = {"calls_s": calls_s, "accepted_s": accepted / duration, "statuses": statuses,
                   "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                   "web_cores": cpu_web / duration, "redis_cores": cpu_redis / duration,
                   "loader_cores": loader_cpu_s / duration,
                   "web_us_per_request": cpu_web / accepted * 1e6 if accepted else float("nan"),
                   "redis_us_per_request": cpu_redis / accepted * 1e6 if accepted else float("nan")}
        self.say(f"  {name:<34} {figures['accepted_s']:9.0f} requests/s accepted  ({calls_s:.0f} calls/s, "
                 f"latency p50 {figures['p50_ms']:.1f} ms p99 {figures['p99_ms']:.1f} ms, statuses {statuses})")
        self.say(f"  {'':<34} CPU: web {figures['web_cores']:.2f} cores = {figures['web_us_per_request']:.0f} us "
                 f"per request, Redis {figures['redis_cores']:.2f} cores = {figures['redis_us_per_request']:.0f} us "
                 f"per request, load generators {figures['loader_cores']:.2f} cores")
        return figures

    def api(self) -> None:
        self.say(f"\n1. API accept rate ({self.args.clients} client processes x {self.args.connections} keep-alive "
                 f"connections, {self.sizes.api_duration_s:.0f} s each after {self.sizes.api_warmup_s:.0f} s warm-up; "
                 "bodies due in 30 days, no worker running)")
        one = self.body("api", 0, delay=PENDING_DELAY_S)
        single = self.measure_accept("POST /v1/requests (htq)", self.htq_port, "/v1/requests", one, 1)
        bare = self.measure_accept("POST /v1/requests (bare smorest)", self.bare_port, "/v1/requests", one, 1)
        batch = self.measure_accept("POST /v1/requests/batch (htq)", self.htq_port, "/v1/requests/batch",
                                    {"requests": [one] * BATCH_SIZE}, BATCH_SIZE)
        ratio = single["accepted_s"] / bare["accepted_s"] if bare["accepted_s"] else 0.0
        self.say(f"  ratio htq / bare: {ratio:.2f}")
        self.results["api"] = {"single": single, "bare": bare, "batch": batch, "ratio": ratio}

    # -- 2. end-to-end delivery -----------------------------------------------------------------

    def connections(self) -> int:
        return self.http.get(f"{self.target}/__count", timeout=10).json()["connections"]

    def e2e_htq(self, suffix: str = "", name: str = "htq (batch route, 100 per call)") -> dict:
        count = self.sizes.e2e
        self.create_batches([self.body("warm-htq" + suffix, n) for n in range(self.sizes.warm)])
        self.arrivals("warm-htq" + suffix, self.sizes.warm, 60)
        bodies = [self.body("e2e-htq" + suffix, n) for n in range(count)]
        self.connections_before = self.connections()
        with self.costs(["web-htq", "worker-htq", "target"], count) as costs:
            started = time.time()
            self.create_batches(bodies)
            created = time.time()
            figures = self._e2e_figures(name, "e2e-htq" + suffix, count, started, created)
        return {**figures, "costs": costs}

    def publish_baseline(self, task, tag: str, etas_ms: list[int | None]) -> None:
        """One apply_async per request, as a bare Celery application would do it."""
        from datetime import UTC, datetime

        headers = {"Content-Type": "application/json"}
        for n, eta_ms in enumerate(etas_ms):
            spec = self.body(tag, n)
            task.apply_async(args=["POST", spec["url"], json.dumps(spec["json"]), headers,
                                   self.settings.default_timeout_s],
                             eta=None if eta_ms is None else datetime.fromtimestamp(eta_ms / 1000, UTC))

    def e2e_baseline(self, task, suffix: str = "", name: str = "bare Celery (apply_async each)") -> dict:
        count = self.sizes.e2e
        self.publish_baseline(task, "warm-baseline" + suffix, [None] * self.sizes.warm)
        self.arrivals("warm-baseline" + suffix, self.sizes.warm, 60)
        self.connections_before = self.connections()
        with self.costs(["worker-baseline", "target"], count) as costs:
            started = time.time()
            self.publish_baseline(task, "e2e-baseline" + suffix, [None] * count)
            created = time.time()
            figures = self._e2e_figures(name, "e2e-baseline" + suffix, count, started, created)
        return {**figures, "costs": costs}

    @contextmanager
    def costs(self, names: list[str], count: int):
        """CPU microseconds per delivery of each named child and of Redis, and Redis commands per
        delivery (INFO commandstats), over the block; the dict yielded is filled when it ends."""
        pids = {name: [self.procs.procs[name].pid] for name in names}
        pids["redis"] = [self.redis_server.process.pid]
        costs: dict[str, float] = {}
        cpu_before = {name: cpu_seconds(group) for name, group in pids.items()}
        commands_before = self.redis_commands()
        by_command_before = self.redis.info("commandstats")
        yield costs
        for name, group in pids.items():
            costs[name.split("-")[0]] = (cpu_seconds(group) - cpu_before[name]) / count * 1e6
        costs["redis_commands"] = (self.redis_commands() - commands_before) / count
        self.say("  " + " " * 34 + " per delivery: CPU " + ", ".join(
            f"{name} {costs[name]:.0f} us" for name in costs if name != "redis_commands")
            + f"; {costs['redis_commands']:.1f} Redis commands")
        by_command = self.redis.info("commandstats")
        deltas = sorted(((stats["calls"] - by_command_before.get(name, {}).get("calls", 0)) / count,
                         name.removeprefix("cmdstat_")) for name, stats in by_command.items())
        self.say("  " + " " * 34 + " most frequent: " + ", ".join(f"{name} {calls:.1f}"
                                                                   for calls, name in reversed(deltas[-8:])))

    def redis_commands(self) -> int:
        return sum(stats["calls"] for stats in self.redis.info("commandstats").values())

    def e2e_pools(self) -> None:
        """htq and bare Celery on each worker pool in turn, in the same run."""
        pools = self.args.pools
        self.say(f"\n2. End to end per worker pool: {self.sizes.e2e} immediate requests "
                 f"(after {self.sizes.warm} warm-up requests each), htq then bare Celery on each pool"
                 + (f"; the target answers after {SLOW_MS} ms" if self.args.slow else ""))
        rows = {}
        for round_ in range(self.args.rounds):
            for pool in pools:
                concurrency = self.args.concurrency_given or WORKER_POOLS[pool]
                suffix = f"-{pool}-{round_}"
                label = f"{pool} -c {concurrency}"
                self.redis.flushall()
                self.procs.start_worker("worker-htq", concurrency=concurrency, pool=pool, options=())
                self.procs.start_beat()
                self.procs.wait_log("worker-htq", " ready.")
                self.procs.wait_log("beat", "beat: Starting")
                htq = self.e2e_htq(suffix, f"htq, {label}")
                self.procs.stop("worker-htq", "beat")
                self.redis.flushall()
                self.procs.start_worker("worker-baseline", concurrency=concurrency, pool=pool,
                                        app="bench.requests:baseline_celery", options=())
                self.procs.wait_log("worker-baseline", " ready.")
                app = build_baseline_celery(self.settings)
                bare = self.e2e_baseline(app.tasks[BASELINE_TASK], suffix, f"bare Celery, {label}")
                app.close()
                self.procs.stop("worker-baseline")
                rows.setdefault(label, []).append((htq, bare))
        best_bare = max(bare["rate_s"] for runs in rows.values() for _, bare in runs)
        self.say(f"\n  {'pool':<18} {'htq/s':>8} {'bare/s':>8} {'x same pool':>12} {'x best bare':>12} "
                 f"{'worker us':>10} {'web us':>7} {'redis us':>9} {'target us':>10} {'redis cmds':>11}")
        summary = {}
        for label, runs in rows.items():
            for htq, bare in runs:
                c = htq["costs"]
                self.say(f"  {label:<18} {htq['rate_s']:8.0f} {bare['rate_s']:8.0f} "
                         f"{htq['rate_s'] / bare['rate_s']:12.2f} {htq['rate_s'] / best_bare:12.2f} "
                         f"{c['worker']:10.0f} {c['web']:7.0f} {c['redis']:9.0f} {c['target']:10.0f} "
                         f"{c['redis_commands']:11.1f}")
            summary[label] = {"htq": max(h["rate_s"] for h, _ in runs), "bare": max(b["rate_s"] for _, b in runs)}
        self.say(f"  (best bare Celery: {best_bare:.0f}/s)")
        self.results["pools"] = {"rows": summary, "best_bare": best_bare}

    def _e2e_figures(self, name: str, tag: str, count: int, started: float, created: float) -> dict:
        arrivals = self.arrivals(tag, count, self.args.e2e_timeout)
        distinct = len({n for n, _ in arrivals})
        last = max((at for _, at in arrivals), default=created)
        elapsed = last - started
        rate = distinct / elapsed if elapsed > 0 else 0.0
        figures = {"rate_s": rate, "elapsed_s": elapsed, "create_s": created - started, "delivered": distinct,
                   "duplicates": len(arrivals) - distinct, "tail_s": last - created,
                   "connections": self.connections() - self.connections_before}
        self.say(f"  {name:<34} {rate:9.0f} delivered/s  ({distinct}/{count} in {elapsed:.2f} s: creating took "
                 f"{figures['create_s']:.2f} s, the last arrival came {figures['tail_s']:.2f} s after the last "
                 f"create; duplicates {figures['duplicates']}; {figures['connections']} new connections "
                 "to the target)")
        return figures

    # -- 3. lateness ------------------------------------------------------------------------------

    def etas_ms(self) -> list[int]:
        count, spread_ms = self.sizes.late, int(self.sizes.late_spread_s * 1000)
        first_due_ms = int((time.time() + self.sizes.late_lead_s) * 1000)
        return [first_due_ms + n * spread_ms // count for n in range(count)]

    def lateness(self) -> None:
        self.say(f"\n3. Lateness: {self.sizes.late} requests due uniformly over {self.sizes.late_spread_s:.0f} s "
                 f"({self.sizes.late / self.sizes.late_spread_s:.0f}/s), created {self.sizes.late_lead_s:.0f} s ahead")
        etas_ms = self.etas_ms()
        started = time.time()
        self.create_batches([self.body("late", n, eta=eta / 1000) for n, eta in enumerate(etas_ms)])
        self.say(f"  creating them through the batch route took {time.time() - started:.2f} s")
        self.results["lateness"] = self._lateness_figures("htq (batch route, eta)", "late", etas_ms)

    def lateness_baseline(self, task) -> None:
        etas_ms = self.etas_ms()
        started = time.time()
        self.publish_baseline(task, "late-baseline", etas_ms)
        self.say(f"  publishing them with apply_async took {time.time() - started:.2f} s")
        self.results["lateness_baseline"] = self._lateness_figures("bare Celery (apply_async eta=)",
                                                                   "late-baseline", etas_ms)

    def _lateness_figures(self, name: str, tag: str, etas_ms: list[int]) -> dict:
        if time.time() * 1000 > etas_ms[0]:
            self.say("  warning: creating took longer than the lead; the first requests were created late")
        arrivals = self.arrivals(tag, len(etas_ms), self.sizes.late_lead_s + self.sizes.late_spread_s + 60)
        late_ms = sorted(at * 1000 - etas_ms[n] for n, at in arrivals)
        figures = {"count": len(late_ms), "p50_ms": percentile(late_ms, 50), "p99_ms": percentile(late_ms, 99),
                   "max_ms": max(late_ms, default=float("nan")), "min_ms": min(late_ms, default=float("nan")),
                   "early": sum(1 for ms in late_ms if ms < 0),
                   "duplicates": len(arrivals) - len({n for n, _ in arrivals})}
        self.say(f"  {name:<34} arrived {figures['count']}/{len(etas_ms)}: lateness p50 {figures['p50_ms']:.1f} ms, "
                 f"p99 {figures['p99_ms']:.1f} ms, max {figures['max_ms']:.1f} ms, min {figures['min_ms']:.1f} ms, "
                 f"early {figures['early']}, duplicates {figures['duplicates']}")
        return figures

    # -- 4. pending requests ----------------------------------------------------------------------

    def pending(self) -> None:
        import multiprocessing

        total, procs = self.sizes.pending, self.args.pending_procs
        self.say(f"\n4. Pending: {total} requests due in 30 days, created with RequestService.create_many "
                 f"({BATCH_SIZE} per call, {procs} processes)")
        worker_pid = self.procs.procs["worker-htq"].pid
        time.sleep(self.args.pending_settle)  # the same number of relay ticks before as after
        rss_before = worker_rss_mib(worker_pid)
        used_before = int(self.redis.info("memory")["used_memory"])
        started = time.time()
        shares = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
        body = self.body("pending", 0, delay=PENDING_DELAY_S)
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            pool.starmap(create_pending, [(self.settings, body, share) for share in shares])
        create_s = time.time() - started
        used_after = int(self.redis.info("memory")["used_memory"])
        time.sleep(self.args.pending_settle)  # several relay ticks of beat run against the full schedule
        rss_after = worker_rss_mib(worker_pid)
        sample = self.redis.zrange(self._requests_due_key(), 0, 0)
        hash_bytes = self.redis.memory_usage(self._request_key(sample[0]), samples=0) if sample else 0
        per_request = (used_after - used_before) / total
        figures = {"count": total, "create_s": create_s, "redis_bytes_per_request": per_request,
                   "redis_used_mib": used_after / 2**20, "hash_bytes": hash_bytes,
                   "rss_before_mib": rss_before[0], "rss_after_mib": rss_after[0],
                   "child_before_mib": rss_before[1], "child_after_mib": rss_after[1], "children": rss_after[2]}
        self.say(f"  created {total} in {create_s:.1f} s ({total / create_s:.0f}/s); Redis used_memory "
                 f"{used_before / 2**20:.1f} -> {used_after / 2**20:.1f} MiB: {per_request:.0f} bytes per pending "
                 f"request (its hash alone: {hash_bytes} bytes by MEMORY USAGE)")
        self.say(f"  worker memory (PSS of main + {rss_after[2]} pool children) {rss_before[0]:.1f} -> "
                 f"{rss_after[0]:.1f} MiB "
                 f"after {self.args.pending_settle:.0f} s of relay ticks; largest child {rss_before[1]:.1f} -> "
                 f"{rss_after[1]:.1f} MiB")
        self.results["pending"] = figures

    def _requests_due_key(self) -> str:
        from app.storage import keys

        return keys.requests_due()

    def _request_key(self, request_id: str) -> str:
        from app.storage import keys

        return keys.request(request_id)

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> None:
        self.start()
        self.say(f"htq bench: {os.cpu_count()} CPUs, worker concurrency {self.args.concurrency} "
                 f"({self.settings.worker_pool}), "
                 f"gunicorn per config/gunicorn.py, Redis {self.redis.info('server')['redis_version']}; "
                 f"load average before the run {os.getloadavg()[0]:.2f} (other processes skew the figures); "
                 f"logs in {self.workdir}")
        if not self.args.skip_api:
            self.api()
        self.redis.flushall()
        e2e = {}
        if self.args.skip_e2e and self.args.skip_lateness and not self.sizes.pending:
            self.summary()
            return
        if self.args.pools:
            self.e2e_pools()
            self.redis.flushall()
            if self.args.skip_lateness and not self.sizes.pending:
                self.summary()
                return
            self.args.skip_e2e = True
        self.start_htq_workers()
        if not self.args.skip_e2e:
            self.say(f"\n2. End to end: {self.sizes.e2e} immediate requests, from the first create to the last "
                     f"arrival (after {self.sizes.warm} warm-up requests each)")
            e2e["htq"] = self.e2e_htq()
        if not self.args.skip_lateness:
            self.lateness()
        if self.sizes.pending:
            self.pending()
        self.procs.stop("worker-htq", "beat")
        if not (self.args.skip_e2e and self.args.skip_lateness):
            self.redis.flushall()
            self.say("\n5. Bare Celery baseline (htq worker and beat stopped, Redis flushed, same worker settings)")
            self.start_baseline_worker()
            app = build_baseline_celery(self.settings)
            task = app.tasks[BASELINE_TASK]
            if not self.args.skip_e2e:
                e2e["baseline"] = self.e2e_baseline(task)
                rate = e2e["baseline"]["rate_s"]
                e2e["ratio"] = e2e["htq"]["rate_s"] / rate if rate else 0.0
                self.say(f"  end-to-end ratio htq / bare Celery: {e2e['ratio']:.2f}")
                self.results["e2e"] = e2e
            if not self.args.skip_lateness:
                self.lateness_baseline(task)
            app.close()
            self.procs.stop("worker-baseline")
        self.summary()

    def summary(self) -> None:
        self.say("\nSummary against the targets of the issue")
        r = self.results

        def line(ok: bool, text: str) -> None:
            self.say(f"  [{'met ' if ok else 'MISS'}] {text}")

        if "e2e" in r:
            e2e = r["e2e"]
            line(e2e["ratio"] >= 1.0, f"delivered/s {e2e['htq']['rate_s']:.0f} vs bare Celery "
                                      f"{e2e['baseline']['rate_s']:.0f}: {e2e['ratio']:.2f}x (>= 1x, aim 2x)")
        if "pools" in r:
            pools, best = r["pools"]["rows"], r["pools"]["best_bare"]
            for label, row in pools.items():
                line(row["htq"] >= 2000 and row["htq"] >= 4 * row["bare"],
                     f"{label}: {row['htq']:.0f} delivered/s (>= 2000), {row['htq'] / row['bare']:.2f}x bare Celery "
                     f"on the same pool, {row['htq'] / best:.2f}x bare Celery's best pool (>= 4x)")
        if "lateness" in r:
            late = r["lateness"]
            line(late["p99_ms"] <= 25, f"lateness p99 {late['p99_ms']:.1f} ms (<= 25 ms)")
            line(late["max_ms"] <= 100, f"lateness max {late['max_ms']:.1f} ms (<= 100 ms)")
            line(late["early"] == 0, f"early arrivals {late['early']} (none)")
            if "lateness_baseline" in r:
                base = r["lateness_baseline"]
                self.say(f"         (bare Celery eta in the same run: p50 {base['p50_ms']:.1f} ms, p99 "
                         f"{base['p99_ms']:.1f} ms, max {base['max_ms']:.1f} ms, early {base['early']})")
        if "api" in r:
            api = r["api"]
            line(api["ratio"] >= 0.6, f"POST /v1/requests {api['single']['accepted_s']:.0f}/s vs bare "
                                      f"{api['bare']['accepted_s']:.0f}/s: {api['ratio']:.2f} (>= 0.60)")
            line(api["batch"]["accepted_s"] >= 10000,
                 f"batch route {api['batch']['accepted_s']:.0f} requests/s accepted (>= 10000)")
        if "pending" in r:
            pending = r["pending"]
            growth = pending["rss_after_mib"] - pending["rss_before_mib"]
            line(growth < 5, f"{pending['count']} pending: worker memory {growth:+.1f} MiB; Redis "
                             f"{pending['redis_bytes_per_request']:.0f} bytes per pending request")


def create_pending(settings: Settings, body: dict, count: int) -> None:
    """Create `count` requests like `body` (due in 30 days) straight through the core service."""
    from app.api.requests.schemas import RequestCreateSchema
    from app.core.publish import Publisher
    from app.core.requests import RequestService
    from app.storage.client import Store

    service = RequestService(Store.from_url(settings.redis_url), Publisher(_RefusingSender()), settings)
    fields = RequestCreateSchema().load(body)
    for start in range(0, count, BATCH_SIZE):
        service.create_many([fields] * min(BATCH_SIZE, count - start))


class _RefusingSender:
    """Requests due in 30 days are never published at creation; a publish here is a bug."""

    def send_task(self, name, args=None, eta=None, **options):
        raise RuntimeError(f"unexpected publish of {name} for requests due in 30 days")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    default = load_settings({})
    parser = argparse.ArgumentParser(prog="python -m bench.requests", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and durations: under 2 minutes")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="celery worker -c, htq and baseline alike (default: htq's default for the pool, "
                             f"{default.concurrency} for {default.worker_pool})")
    parser.add_argument("--pools", type=_pools, default=None,
                        help="end to end on each of these worker pools, htq and bare Celery in turn "
                             "(e.g. prefork,threads,gevent), instead of section 2 on the default pool")
    parser.add_argument("--rounds", type=int, default=1, help="times each pool is measured with --pools (1)")
    parser.add_argument("--slow", action="store_true", help=f"the target answers after {SLOW_MS} ms")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per client (16)")
    parser.add_argument("--api-duration", type=float, help="seconds measured per endpoint (10; quick 3)")
    parser.add_argument("--e2e", type=int, help="immediate requests for the delivery rate (2000; quick 500)")
    parser.add_argument("--e2e-timeout", type=float, default=120.0, help="seconds to wait for deliveries")
    parser.add_argument("--late", type=int, help="requests of the lateness run (2000; quick 500)")
    parser.add_argument("--late-spread", type=float, help="seconds they are due over (20; quick 5)")
    parser.add_argument("--pending", type=int, help="pending requests due in 30 days (100000; quick 20000; 0 skips)")
    parser.add_argument("--pending-procs", type=int, default=2, help="processes creating them (2)")
    parser.add_argument("--pending-settle", type=float, default=5.0,
                        help="seconds of relay ticks before each measure of the worker's memory (5)")
    parser.add_argument("--horizon", type=float, help="HTQ_HORIZON for every process (default: htq's)")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-lateness", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory with all logs")
    args = parser.parse_args(argv)
    args.concurrency_given, args.concurrency = args.concurrency, args.concurrency or default.concurrency
    return args


def _pools(value: str) -> list[str]:
    pools = [pool.strip() for pool in value.split(",") if pool.strip()]
    unknown = [pool for pool in pools if pool not in WORKER_POOLS]
    if unknown or not pools:
        raise argparse.ArgumentTypeError(f"pools are among {', '.join(WORKER_POOLS)}")
    return pools


def sizes_for(args: argparse.Namespace) -> Sizes:
    quick = args.quick
    spread = args.late_spread or (5.0 if quick else 20.0)
    return Sizes(
        api_warmup_s=1.0 if quick else 2.0,
        api_duration_s=args.api_duration or (3.0 if quick else 10.0),
        e2e=args.e2e or (500 if quick else 2000),
        warm=100 if quick else 200,
        late=args.late or (500 if quick else 2000),
        late_spread_s=spread,
        late_lead_s=3.0 if quick else 10.0,
        pending=args.pending if args.pending is not None else (20000 if quick else 100000),
    )


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    if argv[:1] == ["_target"]:
        # PORT [HOST [DELAY_MS]]
        serve_target(int(argv[1]), *argv[2:3], *(int(delay) for delay in argv[3:4]))
        return 0
    if argv[:1] == ["_load"]:
        run_load(argv[1:])
        return 0
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    workdir = Path(tempfile.mkdtemp(prefix="htq-bench-"))
    return run_and_clean(Bench(args, sizes_for(args), workdir), workdir, args.keep)


def run_and_clean(bench: Bench, workdir: Path, keep: bool) -> int:
    """Run `bench`, then stop everything it started; its logs are kept on failure or on request."""
    failed = True
    try:
        bench.run()
        failed = False
    finally:
        if hasattr(bench, "procs"):
            bench.procs.stop_all()
        bench.redis_server.stop()
        if keep or failed:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
