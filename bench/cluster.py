"""Benchmark of htq on many hosts: deliveries/s and queue cycles/s for 1, 2 and 3 worker hosts,
and what happens when a worker host is lost.

Run from the repository root, with the project's virtualenv, as root (it builds network
namespaces with iproute2's `ip`):

    python -m bench.cluster               # about 4 minutes on 2 cores
    python -m bench.cluster --quick       # one round, smaller sizes

Hosts are Linux network namespaces on this machine joined by a bridge (bench/netns.py): one
Redis host (the same redis-server and settings as app.embedded), two web hosts (gunicorn as the
Procfile runs it), N worker hosts (`celery -A workers worker`, as the Procfile runs it), one
beat host and one host with the HTTP target of bench/requests.py. The bench itself is the
client, in the root namespace, and spreads its calls over both web hosts. Every host shares
this machine's cores: adding worker hosts adds no CPU, so the figures show what the network
and the coordination between hosts cost, not how far htq scales out.

Each round measures, rows alternating:

- base: the same processes (Redis, two web servers, one worker, beat, target) on 127.0.0.1,
  no namespaces;
- N = 1, 2, 3 worker hosts.

A row is the end-to-end delivery rate (`--e2e` immediate requests created through the batch
route, from the first create to the last arrival at the target) and the queue cycle rate
(`POST .../messages` + `POST .../receive` + `DELETE .../messages/{id}`, bench/queues.py's single
cycle, on `--connections` keep-alive connections for `--duration` seconds). The table prints the medians of the rounds.

Then the host loss: `--held` requests due `--lead` seconds ahead are received by the worker of
one worker host (its eta tasks, recorded as its holds); a second worker host is started; one
second before the requests are due, the first host's link is cut and every process in it killed
with SIGKILL. It checks that every request is delivered (duplicates are counted: delivery is
at-least-once, with the request id as Idempotency-Key), each within 15 s of its due time, and
reports when the lost worker left `/v1/workers`. htq's default intervals apply (heartbeat every 2 s, dead after 7 s:
app/core/workers.py); nothing is tuned.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import redis  # noqa: E402
import requests  # noqa: E402

from app.embedded import HASH_MAX_COMPACT_ENTRIES, ZSET_MAX_COMPACT_ENTRIES, redis_server_binary  # noqa: E402
from app.processes import ServiceProcesses, TemporaryRedis, service_env, web_argv  # noqa: E402
from app.storage import keys  # noqa: E402
from bench import netns  # noqa: E402
from bench.queues import Connection, _loop_single  # noqa: E402
from config.settings import load_settings  # noqa: E402

LATE_BOUND_S = 15.0
# The worker host is lost this long before its requests are due: they are found only after their
# due time (a dead worker is noticed within about 8 s), the case the 15 s bound is about.
CUT_BEFORE_DUE_S = 1.0
BATCH = 100
REDIS_PORT = 6379
WEB_PORT = 8000
TARGET_PORT = 8080


class _HostConnection(Connection):
    """bench.queues' client connection, to a web server on any address."""

    def __init__(self, host: str, port: int):
        super().__init__(port)
        self.host = host

    async def open(self) -> _HostConnection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self


class HostProcesses(ServiceProcesses):
    """ServiceProcesses whose children run inside one host's namespace."""

    def __init__(self, host: netns.Host, env: dict[str, str], logdir: Path):
        logdir.mkdir(parents=True, exist_ok=True)
        super().__init__(env, logdir)
        self.host = host

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        return super().start(name, self.host.argv(argv), env)


def wait_for(check: Callable[[], object], timeout_s: float, what: str, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found = check()
        except (requests.RequestException, redis.RedisError):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every_s)


def redis_argv(bind: str, port: int, data_dir: Path) -> list[str]:
    """redis-server as app.embedded.RedisServer runs it, bound to `bind`."""
    return [redis_server_binary(), "--port", str(port), "--bind", bind, "--dir", str(data_dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
            "--protected-mode", "no",
            "--zset-max-ziplist-entries", str(ZSET_MAX_COMPACT_ENTRIES),
            "--hash-max-ziplist-entries", str(HASH_MAX_COMPACT_ENTRIES),
            "--loglevel", "warning", "--logfile", str(data_dir / "redis.log")]


@dataclass
class Stack:
    """One htq deployment: its Redis, two web servers, beat, the target and the workers now running.
    `launcher(role)` gives the ServiceProcesses a role's children start with, `address(role)` where
    that role listens."""

    name: str
    redis_url: str
    launcher: Callable[[str], ServiceProcesses]
    address: Callable[[str], str]
    concurrency: int
    workers: list[tuple[str, ServiceProcesses]] = field(default_factory=list)

    def start(self) -> None:
        self.webs, self.web_addresses = [], []
        for index, role in enumerate(("web1", "web2")):
            procs = self.launcher(role)
            port = self.port(WEB_PORT + index)
            procs.start(role, web_argv(f"{self.address(role)}:{port}"))
            self.webs.append(f"http://{self.address(role)}:{port}")
            self.web_addresses.append((self.address(role), port))
        target = self.launcher("target")
        port = self.port(TARGET_PORT)
        target.start("target", [sys.executable, "-m", "bench.requests", "_target", str(port), self.address("target")])
        self.target = f"http://{self.address('target')}:{port}"
        beat = self.launcher("beat")
        beat.start_beat()
        for index, role in enumerate(("web1", "web2")):
            self.launcher(role).wait_answering(role, self.webs[index] + "/healthz")
        target.wait_answering("target", self.target + "/__count")
        beat.wait_log("beat", "beat: Starting")
        self.sessions = [requests.Session() for _ in self.webs]
        self.redis = redis.Redis.from_url(self.redis_url, decode_responses=True)

    def port(self, port: int) -> int:
        return port if self.address("web1") != "127.0.0.1" else netns_free_port()

    def start_workers(self, roles: list[str]) -> list[str]:
        """One worker per role (a host), all started at once; their node names once ready."""
        started = []
        for role in roles:
            procs = self.launcher(role)
            procs.start_worker(role, concurrency=self.concurrency, options=())
            started.append((role, procs))
        for role, procs in started:
            procs.wait_log(role, " ready.", timeout_s=60)
        self.workers += started
        return [f"{role}@{socket.gethostname()}" for role, _ in started]

    def stop_workers(self) -> None:
        for role, procs in self.workers:
            procs.stop(role)
        self.workers = []

    def count(self, tag: str) -> int:
        return self.sessions[0].get(f"{self.target}/__count?tag={tag}", timeout=10).json()["count"]

    def dump(self, tag: str) -> list[tuple[int, float]]:
        return [tuple(item) for item in self.sessions[0].get(f"{self.target}/__dump?tag={tag}", timeout=30).json()]

    def create(self, bodies: list[dict]) -> list[dict]:
        """Batches of BATCH spread over both web servers, one client thread per web server."""
        chunks = [bodies[start:start + BATCH] for start in range(0, len(bodies), BATCH)]

        def send(index: int) -> list[dict]:
            created = []
            for chunk in chunks[index::len(self.webs)]:
                response = self.sessions[index].post(self.webs[index] + "/v1/requests/batch",
                                                     json={"requests": chunk}, timeout=60)
                if response.status_code != 201:
                    raise RuntimeError(f"batch create answered {response.status_code}: {response.text[:300]}")
                created += response.json()["items"]
            return created

        with ThreadPoolExecutor(len(self.webs)) as pool:
            return [item for items in pool.map(send, range(len(self.webs))) for item in items]

    def body(self, tag: str, n: int, **timing) -> dict:
        return {"url": f"{self.target}/t/{tag}/{n}", "method": "POST", "json": {"n": n}, **timing}

    def deliveries(self, tag: str, count: int, warm: int) -> float:
        self.create([self.body(f"{tag}-warm", n) for n in range(warm)])
        wait_for(lambda: self.count(f"{tag}-warm") >= warm, 120, "warm-up deliveries")
        started = time.time()
        self.create([self.body(tag, n) for n in range(count)])
        wait_for(lambda: self.count(tag) >= count, 300, f"{count} deliveries", every_s=0.02)
        arrivals = self.dump(tag)
        return count / (max(at for _, at in arrivals) - started)

    def queue_cycles(self, queue: str, connections: int, duration_s: float) -> float:
        """bench.queues' single cycle (push, receive 1, delete) on `connections` keep-alive
        connections of one asyncio client, spread over both web servers, each on its own queue."""

        async def main() -> float:
            conns = [await _HostConnection(*self.web_addresses[n % len(self.web_addresses)]).open()
                     for n in range(connections)]
            started = time.monotonic()
            counts = await asyncio.gather(*(_loop_single(conn, started + duration_s, f"{queue}-{n}")
                                            for n, conn in enumerate(conns)))
            elapsed = time.monotonic() - started
            for conn in conns:
                conn.close()
            return sum(counts) / elapsed

        return asyncio.run(main())

    def live_workers(self) -> set[str]:
        return {w["name"] for w in self.sessions[1].get(self.webs[1] + "/v1/workers", timeout=10).json()["items"]}


def netns_free_port() -> int:
    from app.embedded import free_port

    return free_port()


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.workdir = workdir
        self.net: netns.Network | None = None
        self.launchers: list[ServiceProcesses] = []
        self.base_redis: TemporaryRedis | None = None
        self.hosts: dict[str, netns.Host] = {}
        self.by_role: dict[str, ServiceProcesses] = {}

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    # -- set-up ------------------------------------------------------------------------------------

    def start_base(self) -> Stack:
        self.base_redis = TemporaryRedis()
        self.base_redis.start()
        env = service_env(self.base_redis.url)
        procs = ServiceProcesses(env, self.workdir / "base")
        procs.logdir.mkdir(parents=True, exist_ok=True)
        self.launchers.append(procs)
        stack = Stack("base", self.base_redis.url, lambda role: procs, lambda role: "127.0.0.1",
                      self.args.concurrency)
        stack.start()
        return stack

    def start_cluster(self) -> Stack:
        self.net = netns.Network()
        roles = ["redis", "web1", "web2", "beat", "target", "worker1", "worker2", "worker3", "worker4"]
        for role in roles:
            self.hosts[role] = self.net.add_host(role)
        redis_url = f"redis://{self.hosts['redis'].address}:{REDIS_PORT}/0"
        env = service_env(redis_url)
        for role in roles:
            self.by_role[role] = HostProcesses(self.hosts[role], env, self.workdir / role)
            self.launchers.append(self.by_role[role])
        data = self.workdir / "redis" / "data"
        data.mkdir(parents=True)
        self.by_role["redis"].start("redis", redis_argv(self.hosts["redis"].address, REDIS_PORT, data))
        client = redis.Redis.from_url(redis_url)
        wait_for(client.ping, 20, "the Redis host")
        client.close()
        stack = Stack("cluster", redis_url, self.by_role.__getitem__, lambda role: self.hosts[role].address,
                      self.args.concurrency)
        stack.start()
        return stack

    # -- rows ----------------------------------------------------------------------------------

    def row(self, stack: Stack, workers: int, label: str, round_no: int) -> tuple[float, float]:
        roles = [f"worker{i + 1}" for i in range(workers)] if stack.name == "cluster" else ["worker-base"]
        stack.start_workers(roles)
        try:
            tag = f"{label}-r{round_no}".replace(" ", "").replace("=", "")
            rate = stack.deliveries(tag, self.args.e2e, self.args.warm)
            cycles = stack.queue_cycles(tag, self.args.connections, self.args.duration)
        finally:
            stack.stop_workers()
        self.say(f"  round {round_no + 1} {label:<6} {rate:8.0f} deliveries/s  {cycles:7.0f} queue cycles/s  "
                 f"(load average {os.getloadavg()[0]:.1f})")
        return rate, cycles

    # -- host loss ------------------------------------------------------------------------------

    def host_loss(self, stack: Stack) -> dict:
        count, lead_s = self.args.held, self.args.lead
        self.say(f"\nHost loss: {count} requests due {lead_s:.0f} s ahead, all received by worker host 1; worker "
                 f"host 2 started; {CUT_BEFORE_DUE_S:.0f} s before they are due, host 1's link cut and its "
                 "processes killed with SIGKILL (htq's default intervals)")
        victim, = stack.start_workers(["worker1"])
        wait_for(lambda: victim in stack.live_workers(), 20, "the worker in /v1/workers")
        due_at = time.time() + lead_s
        created = stack.create([stack.body("loss", n, eta=due_at + n * 0.01) for n in range(count)])
        due = {n: due_at + n * 0.01 for n in range(count)}
        wait_for(lambda: stack.redis.scard(keys.worker_held(victim)) >= count, lead_s, "the victim's holds")
        rescuer, = stack.start_workers(["worker4"])
        held = stack.redis.scard(keys.worker_held(victim))
        time.sleep(max(0.0, due_at - CUT_BEFORE_DUE_S - time.time()))  # the scenario: lost just before due
        cut_at = time.time()
        if cut_at > due_at:
            self.say("  warning: the cut came after the requests were due; raise --lead")
        self.net.lose(self.hosts["worker1"])
        left = wait_for(lambda: victim not in stack.live_workers() and time.time(), 60,
                        "the lost worker to leave /v1/workers", every_s=0.1)
        deadline = due_at + count * 0.01 + LATE_BOUND_S + 30
        while time.time() < deadline and len({n for n, _ in stack.dump("loss")}) < count:
            time.sleep(0.2)
        arrivals = stack.dump("loss")
        first: dict[int, float] = {}
        for n, at in arrivals:
            first[n] = min(at, first.get(n, at))
        late = sorted(first[n] - due[n] for n in first)
        figures = {"count": count, "created": len(created), "held": held, "delivered": len(first),
                   "duplicates": len(arrivals) - len(first), "left_s": left - cut_at,
                   "p50_s": statistics.median(late) if late else float("nan"),
                   "max_s": max(late, default=float("nan")), "early": sum(1 for s in late if s < -0.05)}
        figures["ok"] = (figures["delivered"] == count and figures["max_s"] <= LATE_BOUND_S
                         and figures["early"] == 0)
        stack.stop_workers()
        return figures

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> int:
        settings = load_settings({})
        self.say(f"htq cluster bench: {os.cpu_count()} CPUs shared by every host, worker concurrency "
                 f"{self.args.concurrency}, web concurrency {settings.web_concurrency} per web host, "
                 f"load average {os.getloadavg()[0]:.2f}; logs in {self.workdir}")
        base = self.start_base()
        cluster = self.start_cluster()
        self.say(f"hosts: {', '.join(f'{h.name} {h.address}' for h in self.net.hosts)} (bridge {self.net.gateway})")
        self.say(f"\nRounds: {self.args.e2e} immediate requests (after {self.args.warm} warm-up), then queue "
                 f"cycles on {self.args.connections} connections for {self.args.duration:.0f} s, per row")
        rows: dict[str, list[tuple[float, float]]] = {}
        for round_no in range(self.args.rounds):
            rows.setdefault("base", []).append(self.row(base, 1, "base", round_no))
            for workers in (1, 2, 3):
                label = f"N={workers}"
                rows.setdefault(label, []).append(self.row(cluster, workers, label, round_no))
        base.stop_workers()
        loss = self.host_loss(cluster)
        self.say(f"\nMedians of {self.args.rounds} round(s)")
        self.say(f"  {'':<28} {'deliveries/s':>12} {'queue cycles/s':>15}")
        names = {"base": "base (127.0.0.1, 1 worker)", "N=1": "N=1 worker host", "N=2": "N=2 worker hosts",
                 "N=3": "N=3 worker hosts"}
        for label, values in rows.items():
            self.say(f"  {names[label]:<28} {statistics.median(v[0] for v in values):12.0f} "
                     f"{statistics.median(v[1] for v in values):15.0f}")
        self.say(f"  host loss: {loss['delivered']}/{loss['count']} delivered ({loss['held']} held by the lost "
                 f"host at the cut), {loss['duplicates']} duplicates, lost worker left /v1/workers "
                 f"{loss['left_s']:.1f} s after the cut, lateness p50 {loss['p50_s']:.2f} s, max "
                 f"{loss['max_s']:.2f} s, early {loss['early']} -> {'PASS' if loss['ok'] else 'FAIL'} "
                 f"(all delivered within {LATE_BOUND_S:.0f} s of due)")
        return 0 if loss["ok"] else 1

    def close(self) -> None:
        for procs in reversed(self.launchers):
            procs.stop_all()
        if self.net is not None:
            self.net.destroy()
        if self.base_redis is not None:
            self.base_redis.cleanup()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one round, smaller sizes")
    parser.add_argument("--rounds", type=int, help="rounds of rows (3; quick 1)")
    parser.add_argument("--e2e", type=int, help="immediate requests per row (2000; quick 500)")
    parser.add_argument("--warm", type=int, default=100, help="warm-up requests per row (100)")
    parser.add_argument("--connections", type=int, default=16,
                        help="keep-alive connections of the queue cycles, over both web servers (16)")
    parser.add_argument("--duration", type=float, help="seconds of queue cycles per row (5; quick 3)")
    parser.add_argument("--concurrency", type=int, default=load_settings({}).concurrency,
                        help="celery worker -c on every worker host (htq's default, %(default)s)")
    parser.add_argument("--held", type=int, default=300, help="requests held by the lost host (300)")
    parser.add_argument("--lead", type=float, default=15.0, help="seconds ahead they are due (15)")
    parser.add_argument("--keep", action="store_true", help="keep the logs")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.e2e = args.e2e or (500 if args.quick else 2000)
    args.duration = args.duration or (3.0 if args.quick else 5.0)
    return args


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    reason = netns.unavailable_reason()
    if reason:
        print(f"bench.cluster cannot run here: {reason}", file=sys.stderr)
        return 2
    netns.sweep_stale()
    signal.signal(signal.SIGTERM, _raise_exit)
    workdir = Path(tempfile.mkdtemp(prefix="htq-cluster-"))
    bench = Bench(args, workdir)
    failed = True
    try:
        code = bench.run()
        failed = False
    finally:
        bench.close()
        if args.keep or failed:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
