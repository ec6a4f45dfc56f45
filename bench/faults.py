"""Benchmark of recovery from worker failures, each figure next to the code before worker liveness.

Run from the repository root, with the project's virtualenv (as root, `nice -n -10` keeps other
work on a shared machine from skewing the figures; every process the bench starts inherits it):

    python -m bench.faults                   # about 5 minutes on 2 cores
    python -m bench.faults --quick           # under 2 minutes; the old code's recovery is cut off
    python -m bench.faults --code . /path/to/another/checkout e211121

`--code` takes one or more versions of htq: a directory (a checkout, used as it is) or a git
revision (checked out in a temporary `git worktree` that is removed at the end). The default
compares this checkout's working tree with commit BASELINE_REV, the code before worker liveness.
Each version's processes run from its own checkout (cwd and PYTHONPATH), as production runs them
(`gunicorn -c config/gunicorn.py "app:create_app()"`, `celery -A workers worker|beat`), with htq's
default settings (no HTQ_ variable: publish grace, lease margin and horizon as shipped) except
where a scenario says otherwise. The bench imports nothing of the versions it compares; it starts
them with this checkout's app.processes and app.embedded.

It starts everything itself and stops all of it at the end, also on Ctrl-C, SIGTERM or an error:
two Redis servers in a temporary directory (the store, and a separate Celery broker through
CELERY_BROKER_URL, so that its traffic can be counted), a local HTTP target on 127.0.0.1 (an
asyncio server in a subprocess recording each arrival's time, path, `Idempotency-Key` and
`Htq-Attempt`), and for each scenario and version a web server (one gunicorn process), beat and
the workers, on flushed Redis servers. Scenarios run in turn for each version (the second
scenario in the opposite order), so that other load on the machine hits both.

Scenarios:

1. and 2., one kill. A worker ("victim", concurrency 2) runs an attempt of a request with
   `timeout` 120 that the target holds open, and holds `--requests` eta tasks (due
   `LEAD_S`..`LEAD_S + SPREAD_S` s after their creation, within the 60 s horizon). Once the
   broker shows every eta request in a message the victim has taken (Kombu's `unacked` hash), its
   whole process group is SIGKILLed and a second worker ("rescuer", concurrency 2) is started at
   once. Reported: for the eta requests, lateness (first arrival minus due) p50/p99/max, how many
   arrived, early arrivals, duplicates (the same Idempotency-Key and Htq-Attempt twice) and the
   time from the kill until the last one arrived; for the held request, the time from the kill to
   its second attempt's arrival, and the error recorded for the first. The wait ends when
   everything arrived or `--bound` seconds after the kill (how many were missing then is
   reported). One kill serves both, so that the old code's two slow paths (publish grace 120 s,
   lease 120 + 30 s) are waited out once, not twice; the held request is retried without backoff
   (`backoff_base` 0), so its figure is the recovery alone.
3. Broker messages per delivered request under a backlog: `--backlog` requests due now, created
   through `POST /v1/requests/batch` (100 per call), behind one worker (concurrency 2) whose
   target answers one request at a time after `--slow-ms` ms, so the backlog lasts longer than
   the publish grace. This scenario runs with HTQ_PUBLISH_GRACE=`--backlog-grace` (5 s) for every
   version, so that republishing could show within the bench's time. The broker's MONITOR stream
   is read while it runs: every task message pushed (LPUSH/RPUSH, checked against INFO
   commandstats), by task name, and the request attempts each delivery message carries.
   Reported: delivery task messages per delivered request next to the no-failure minimum (each
   create call's requests due now travel up to 50 to a message), the attempts published per
   request, duplicates; and, from the worker's log, beat's relay tasks that ran during the
   backlog, those dropped by their 5 s expiry (they wait in the same queue as the backlog) and
   what they republished.

4. Backlog with a kill: scenario 3 behind two workers (concurrency 2 each), one of them
   ("victim") SIGKILLed once 30% of the backlog has arrived; the other goes on alone. Reported as
   3., with the time from the kill to the last arrival: what the victim held (its prefetched
   messages, its attempts) must come back without a flood of republished messages and without
   losing a request.

Then a summary against the targets: held requests delivered at most 15 s after due; the killed
attempt retried at most 15 s after the kill; messages per delivered request under a backlog at
most 10% above the no-failure minimum; with a kill, nothing missing and at most one extra message
per ten requests published again. `--keep` keeps the temporary directory with every process's log.
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
import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

import redis  # noqa: E402
import requests  # noqa: E402

from app.embedded import RedisServer, free_port  # noqa: E402
from app.processes import ServiceProcesses, service_env  # noqa: E402

# Code from before worker liveness (a7db1eb): a killed worker's eta tasks wait for the publish
# grace, a killed attempt for its lease, and the relay republishes whatever unstarted request it
# finds after a grace, backlog or not.
BASELINE_REV = "e211121"
# Task names and Kombu's Redis layout, the same in every version compared.
DELIVER_TASK = "htq.deliver_requests"
UNACKED_HASH = "unacked"
DELIVERY_CHUNK = 50  # requests per delivery message at most (app.core.publish.DELIVERY_CHUNK)
BATCH_SIZE = 100  # requests per POST /v1/requests/batch

LEAD_S = 6.0  # the first eta request is due this long after its creation
SPREAD_S = 4.0  # ... and the last one this much later
HELD_TIMEOUT_S = 120  # the held-open request's `timeout`
HOLD_OPEN_S = 600.0  # the target holds a first attempt open this long, or until the worker goes
SETTLE_S = 1.0  # after the broker shows every eta task taken, before the kill (the new code's
#                 hold record follows the take by a few milliseconds)
SCENARIOS = ("kill", "backlog", "backlog-kill")
KILL_AT_FRACTION = 0.3  # scenario 4: the share of the backlog arrived when the victim is killed
TARGET_LATE_S = 15.0
TARGET_RETRY_S = 15.0
TARGET_MESSAGES_OVER_MIN = 1.10
TARGET_EXTRA = 0.10  # scenario 4: a flood would be one message per request
POLL_S = 0.2


# -- the HTTP target (subprocess: `python -m bench.faults _target PORT SLOW_MS`) ----------------


class Target:
    """Records every request to a path not starting with `/__` as (key, attempt, arrival time),
    by path. `/hold/...` holds a first attempt open (no answer until the client goes or
    HOLD_OPEN_S pass); `/slow/...` answers one request at a time, each after `slow_s`; anything
    else answers 200 at once. `/__summary?path=` and `/__dump?path=` report."""

    def __init__(self, slow_s: float):
        self.slow_s = slow_s
        self.arrivals: dict[str, list[tuple[str, int, float]]] = {}
        self.keys: dict[str, set[str]] = {}
        self.slow_lock = asyncio.Lock()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                at = time.time()
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if length := int(headers.get("content-length") or 0):
                    await reader.readexactly(length)
                body = await self.answer(path, headers, at, reader)
                if body is None:
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def answer(self, path: str, headers: dict[str, str], at: float, reader) -> bytes | None:
        route, _, query = path.partition("?")
        if route.startswith("/__"):
            wanted = parse_qs(query).get("path", [""])[0]
            if route == "/__summary":
                found = self.arrivals.get(wanted, [])
                return json.dumps({"arrivals": len(found), "keys": len(self.keys.get(wanted, ())),
                                   "attempts": sorted({attempt for _, attempt, _ in found})}).encode()
            if route == "/__dump":
                return json.dumps(self.arrivals.get(wanted, [])).encode()
            return b"ok"
        key, attempt = headers.get("idempotency-key", ""), int(headers.get("htq-attempt") or 0)
        self.arrivals.setdefault(route, []).append((key, attempt, at))
        self.keys.setdefault(route, set()).add(key)
        if route.startswith("/hold/") and attempt == 1:
            try:
                await asyncio.wait_for(reader.read(1), HOLD_OPEN_S)  # returns when the client goes
            except TimeoutError:
                pass
            return None
        if route.startswith("/slow/"):
            async with self.slow_lock:
                await asyncio.sleep(self.slow_s)
        return b"ok"


def serve_target(port: int, slow_ms: float) -> None:
    async def main():
        target = Target(slow_ms / 1000)
        server = await asyncio.start_server(target.handle, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- the broker's traffic -----------------------------------------------------------------------

_TASK_RE = re.compile(rb'\\"task\\": ?\\"([^\\"]*)\\"')
_BODY_RE = re.compile(rb'\\"body\\": ?\\"([A-Za-z0-9+/=]*)\\"')


def message_items(payload: dict) -> list:
    """The [id, attempt, due_ms] items of a delivery task message as Kombu stores it."""
    body = payload["body"]
    if payload.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return json.loads(body)[0][0]


class BrokerTap(threading.Thread):
    """Reads the broker's MONITOR stream: every LPUSH/RPUSH (a task message entering a queue), by
    task name, and the request attempts the delivery messages carry. stop() sends a marker through
    the broker and returns once the tap has read everything before it."""

    def __init__(self, url: str):
        super().__init__(name="broker-tap", daemon=True)
        self.client = redis.Redis.from_url(url)
        self.connection = redis.Connection(**self.client.connection_pool.connection_kwargs)
        self.marker = f"htq-bench-tap-{os.getpid()}-{time.time()}".encode()
        self.pushes = 0
        self.tasks: Counter[str] = Counter()
        self.items: Counter[str] = Counter()  # request id -> times published
        self.error: BaseException | None = None
        self.connection.connect()
        self.connection.send_command("MONITOR")
        if self.connection.read_response() not in (b"OK", "OK"):
            raise RuntimeError("MONITOR refused by the broker")

    def run(self) -> None:
        try:
            while True:
                line = self.connection.read_response()
                if self.marker in line:
                    return
                self._count(line)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def _count(self, line: bytes) -> None:
        start = line.find(b'] "')
        if start < 0:
            return
        command = line[start + 3:line.find(b'"', start + 3)].upper()
        if command not in (b"LPUSH", b"RPUSH"):
            return
        self.pushes += 1
        task = _TASK_RE.search(line)
        name = task.group(1).decode() if task else "?"
        self.tasks[name] += 1
        if name == DELIVER_TASK and (body := _BODY_RE.search(line)):
            payload = {"body": body.group(1).decode(), "properties": {"body_encoding": "base64"}}
            for item in message_items(payload):
                self.items[item[0]] += 1

    def stop(self) -> None:
        self.client.echo(self.marker)
        self.join(30)
        self.close()
        if self.is_alive():
            raise RuntimeError("the broker tap did not see its stop marker within 30 s")
        if self.error is not None:
            raise RuntimeError(f"the broker tap failed: {self.error!r}")

    def close(self) -> None:
        """Drop the MONITOR connection (its reader, if still running, ends on the error)."""
        self.connection.disconnect()
        self.client.close()


# Celery's log lines about beat's relay task (htq.tick since it does the relay with the sweep and
# the flush), in every version compared. Celery logs "succeeded" at INFO, which htq's logging
# drops below DEBUG (app/log.py): the backlog's worker runs at LOG_LEVEL=DEBUG, in every version.
RELAY_RAN = re.compile(r"Task htq\.(?:relay_requests|tick)\[[^]]*\] succeeded.*")
RELAY_DROPPED = re.compile(r"Discarding revoked task: htq\.(?:relay_requests|tick)\[.*")
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ", re.MULTILINE)


def relay_lines(log: str, pattern: re.Pattern, since: float, until: float) -> list[str]:
    """The lines of a worker's log (text format, local time) matching `pattern` logged between
    two epoch times."""
    found = []
    for line in log.splitlines():
        if (stamp := _LOG_TIME.match(line)) and (match := pattern.search(line)):
            at = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")) + int(stamp.group(2)) / 1000
            if since <= at <= until:
                found.append(match.group(0))
    return found


def pushes_by_commandstats(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("lpush", "rpush"))


# -- versions of htq ----------------------------------------------------------------------------


@dataclass
class Code:
    spec: str
    root: Path
    label: str
    description: str
    worktree: bool = False


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def resolve_code(spec: str, workdir: Path, index: int) -> Code:
    """A checkout directory as it is, or a git revision in a temporary worktree under `workdir`."""
    path = Path(spec)
    if path.is_dir():
        root = path.resolve()
        commit = _git("rev-parse", "--short", "HEAD", cwd=root)
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no", cwd=root))
        return Code(spec, root, commit + ("+" if dirty else ""),
                    f"{root} (working tree of {commit}{', with uncommitted changes' if dirty else ''})")
    commit = _git("rev-parse", "--short", f"{spec}^{{commit}}")
    return Code(spec, workdir / f"code-{index}-{commit}", commit,
                f"{commit} ({_git('log', '-1', '--format=%s', commit)[:60]}...), in a temporary worktree",
                worktree=True)


def add_worktree(code: Code) -> None:
    _git("worktree", "add", "--detach", str(code.root), code.label)


def remove_worktree(code: Code) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(code.root)], cwd=REPO, capture_output=True)
    shutil.rmtree(code.root, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=REPO, capture_output=True)


# -- figures ------------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def seconds(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def duplicates(arrivals: list) -> int:
    """Arrivals beyond the first of each (Idempotency-Key, Htq-Attempt)."""
    return len(arrivals) - len({(key, attempt) for key, attempt, _ in arrivals})


@dataclass
class Sizes:
    requests: int
    backlog: int
    slow_ms: float
    backlog_grace_s: float
    bound_s: float
    backlog_bound_s: float


@dataclass
class Bench:
    args: argparse.Namespace
    sizes: Sizes
    workdir: Path
    codes: list[Code] = field(default_factory=list)
    results: dict = field(default_factory=dict)

    def __post_init__(self):
        self.store = RedisServer(self.workdir / "redis-store")
        self.broker = RedisServer(self.workdir / "redis-broker")
        self.infra = ServiceProcesses(service_env("redis://unused"), self.workdir, die_with_parent=True)
        self.running: list[ServiceProcesses] = []
        self.http = requests.Session()
        self.runs = 0

    # -- set-up and tear-down -----------------------------------------------------------------

    def start(self) -> None:
        for index, spec in enumerate(self.args.code):
            code = resolve_code(spec, self.workdir, index)
            self.codes.append(code)  # first, so that stop() removes its worktree whatever happens next
            if code.worktree:
                add_worktree(code)
        self.store.start()
        self.broker.start()
        self.store_client = redis.Redis.from_url(self.store.url)
        self.broker_client = redis.Redis.from_url(self.broker.url)
        port = free_port()
        self.target = f"http://127.0.0.1:{port}"
        self.infra.start("target", [sys.executable, "-m", "bench.faults", "_target", str(port),
                                    str(self.sizes.slow_ms)])
        self.infra.wait_answering("target", self.target + "/__summary")
        for code in self.codes:
            self.check_imports(code)

    def stop(self) -> None:
        """Stop every child and remove the temporary worktrees; a second Ctrl-C or SIGTERM does not
        cut this short, and one step failing does not skip the others."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        steps = [procs.stop_all for procs in self.running] + [self.infra.stop_all, self.store.stop, self.broker.stop]
        steps += [lambda code=code: remove_worktree(code) for code in self.codes if code.worktree]
        for step in steps:
            try:
                step()
            except Exception as exc:  # go on with the others, saying what was left
                print(f"cleanup: {exc!r}", file=sys.stderr)

    def env(self, code: Code, **extra: str) -> dict[str, str]:
        return service_env(self.store.url, CELERY_BROKER_URL=self.broker.url, PYTHONPATH=str(code.root),
                           WEB_CONCURRENCY="1", **extra)

    def check_imports(self, code: Code) -> None:
        """Each version's processes import that version's packages, not this checkout's."""
        probe = "import app, config, workers.delivery; print(app.__file__, config.__file__)"
        out = subprocess.run([sys.executable, "-c", probe], cwd=code.root, env=self.env(code), check=True,
                             capture_output=True, text=True).stdout.split()
        if not all(Path(path).resolve().is_relative_to(code.root) for path in out):
            raise RuntimeError(f"{code.spec}: its processes would import {out}, not its own code")

    def services(self, code: Code, run: str, **extra_env: str) -> tuple[ServiceProcesses, str]:
        """Flushed Redis servers, then this version's web server and beat; stopped by finish()."""
        self.store_client.flushall()
        self.broker_client.flushall()
        logdir = self.workdir / run
        logdir.mkdir()
        procs = ServiceProcesses(self.env(code, **extra_env), logdir, die_with_parent=True, root=code.root)
        self.running.append(procs)
        base = procs.start_web(free_port())
        procs.start_beat()
        return procs, base

    def finish(self, procs: ServiceProcesses) -> None:
        procs.stop_all()
        self.running.remove(procs)

    # -- helpers --------------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def summary_of(self, path: str) -> dict:
        return self.http.get(f"{self.target}/__summary", params={"path": path}, timeout=10).json()

    def dump(self, path: str) -> list[tuple[str, int, float]]:
        return [tuple(item) for item in self.http.get(f"{self.target}/__dump", params={"path": path},
                                                       timeout=60).json()]

    def create_batches(self, base: str, bodies: list[dict]) -> list[dict]:
        created = []
        for start in range(0, len(bodies), BATCH_SIZE):
            response = self.http.post(base + "/v1/requests/batch", json={"requests": bodies[start:start + BATCH_SIZE]},
                                      timeout=60)
            if response.status_code != 201:
                raise RuntimeError(f"batch create answered {response.status_code}: {response.text[:500]}")
            created += response.json()["items"]
        return created

    def taken_by_workers(self) -> dict[str, int]:
        """Request id -> delivery messages holding it that a worker took from the broker (Kombu's
        unacked hash: received, not acknowledged)."""
        taken: Counter[str] = Counter()
        for raw in self.broker_client.hvals(UNACKED_HASH):
            payload = json.loads(raw)[0]
            if payload.get("headers", {}).get("task") == DELIVER_TASK:
                for item in message_items(payload):
                    taken[item[0]] += 1
        return taken

    def taken_messages(self, ids) -> int:
        """Delivery messages a worker took from the broker that carry any of these request ids."""
        ids = set(ids)
        return sum(1 for raw in self.broker_client.hvals(UNACKED_HASH)
                   if (payload := json.loads(raw)[0]).get("headers", {}).get("task") == DELIVER_TASK
                   and any(item[0] in ids for item in message_items(payload)))

    def run_name(self, scenario: str, code: Code) -> str:
        self.runs += 1
        return f"{self.runs}-{scenario}-{code.label.rstrip('+')}"

    def wait(self, what: str, check, timeout_s: float, procs: ServiceProcesses | None = None,
             names: tuple[str, ...] = ()) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            for name in names:
                if procs.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited; its log:\n{procs.log(name)[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(POLL_S)

    # -- 1. and 2. the kill ---------------------------------------------------------------------

    def kill_run(self, code: Code) -> dict:
        run = self.run_name("kill", code)
        self.say(f"  [{code.label}] load {os.getloadavg()[0]:.2f}: starting web, beat and the victim worker")
        procs, base = self.services(code, run)
        try:
            procs.start_worker("victim", concurrency=2)
            procs.wait_log("victim", " ready.")
            hold_path, eta_path = f"/hold/{run}", f"/eta/{run}"
            held = self.http.post(base + "/v1/requests", json={
                "url": self.target + hold_path, "method": "POST", "json": {"held": True},
                "timeout": HELD_TIMEOUT_S, "retry": {"backoff_base": 0}}, timeout=30)
            held.raise_for_status()
            held_id = held.json()["id"]
            self.wait("the held request's first attempt", lambda: self.summary_of(hold_path)["arrivals"] >= 1, 30,
                      procs, ("victim",))
            count = self.sizes.requests
            first_due_ms = int((time.time() + LEAD_S) * 1000)
            due_ms = [first_due_ms + int(n * SPREAD_S * 1000 / count) for n in range(count)]
            created = self.create_batches(base, [{"url": self.target + eta_path, "method": "POST", "json": {"n": n},
                                                  "eta": due / 1000} for n, due in enumerate(due_ms)])
            due_by_id = {item["id"]: due / 1000 for item, due in zip(created, due_ms)}
            self.wait("the victim to take every eta task",
                      lambda: due_by_id.keys() <= self.taken_by_workers().keys(), LEAD_S - 2, procs, ("victim",))
            time.sleep(SETTLE_S)
            messages = self.taken_messages(due_by_id.keys())
            killed_at = time.time()
            procs.kill("victim", signal.SIGKILL)
            procs.start_worker("rescuer", concurrency=2)
            if self.summary_of(eta_path)["arrivals"]:
                raise RuntimeError("eta requests arrived before the kill: raise LEAD_S")
            self.say(f"  [{code.label}] victim SIGKILLed {killed_at - first_due_ms / 1000 + LEAD_S:.1f} s after the "
                     f"creates, holding them in {messages} task messages; rescuer started; waiting up to "
                     f"{self.sizes.bound_s:.0f} s")

            def done() -> bool:
                return (self.summary_of(eta_path)["keys"] >= count
                        and max(self.summary_of(hold_path)["attempts"], default=0) >= 2)

            deadline = killed_at + self.sizes.bound_s
            while not done() and time.time() < deadline:
                if procs.procs["rescuer"].poll() is not None:
                    raise RuntimeError(f"rescuer exited; its log:\n{procs.log('rescuer')[-3000:]}")
                time.sleep(POLL_S)
            waited = time.time() - killed_at
            eta = self.dump(eta_path)
            hold = self.dump(hold_path)
            attempts = self.http.get(f"{base}/v1/requests/{held_id}/attempts", timeout=10).json().get("items", [])
        finally:
            self.finish(procs)
        first_at: dict[str, float] = {}
        for key, _, at in eta:
            first_at[key] = min(at, first_at.get(key, at))
        late = [at - due_by_id[key] for key, at in first_at.items() if key in due_by_id]
        second = [at for _, attempt, at in hold if attempt == 2]
        figures = {
            "count": count, "arrived": len(late), "missing": count - len(late),
            "p50": percentile(late, 50), "p99": percentile(late, 99), "max": max(late, default=None),
            "early": sum(1 for value in late if value < 0), "duplicates": duplicates(eta),
            "all_after_kill": max(first_at.values()) - killed_at if len(late) == count else None,
            "due_from_kill": (min(due_by_id.values()) - killed_at, max(due_by_id.values()) - killed_at),
            "retry_after_kill": min(second) - killed_at if second else None,
            "first_error": attempts[0].get("error") if attempts else None,
            "hold_duplicates": duplicates(hold), "waited": waited, "messages": messages,
        }
        self.say(f"  [{code.label}] arrived {figures['arrived']}/{count}, second attempt "
                 f"{seconds(figures['retry_after_kill'])} after the kill; waited {waited:.0f} s")
        return figures

    def report_kill(self, figures: dict[str, dict]) -> None:
        rows = [
            ("eta requests arrived", lambda f: f"{f['arrived']}/{f['count']}"),
            ("  still missing at the end of the wait", lambda f: str(f["missing"])),
            ("  lateness p50", lambda f: seconds(f["p50"], 2)),
            ("  lateness p99", lambda f: seconds(f["p99"], 2)),
            ("  lateness max", lambda f: seconds(f["max"], 2)),
            ("  arrived early", lambda f: str(f["early"])),
            ("  duplicates", lambda f: str(f["duplicates"])),
            ("  kill -> every one arrived", lambda f: seconds(f["all_after_kill"])),
            ("  due (from the kill)", lambda f: f"{f['due_from_kill'][0]:.1f}..{f['due_from_kill'][1]:.1f} s"),
            ("held attempt: kill -> 2nd attempt", lambda f: seconds(f["retry_after_kill"])),
            ("  duplicates", lambda f: str(f["hold_duplicates"])),
            ("waited after the kill", lambda f: seconds(f["waited"], 0)),
        ]
        self.table(rows, figures)
        for code in self.codes:
            self.say(f"  [{code.label}] first attempt's error: {figures[code.label]['first_error'] or '-'}")

    # -- 3. backlog -----------------------------------------------------------------------------

    def backlog_run(self, code: Code, kill: bool = False) -> dict:
        """Scenario 3, or with `kill` scenario 4: two workers, the "victim" SIGKILLed once
        KILL_AT_FRACTION of the backlog has arrived; the other ("worker") goes on alone."""
        run = self.run_name("backlog-kill" if kill else "backlog", code)
        count = self.sizes.backlog
        workers = ("worker", "victim") if kill else ("worker",)
        self.say(f"  [{code.label}] load {os.getloadavg()[0]:.2f}: starting web, beat and {len(workers)} worker(s) "
                 f"(HTQ_PUBLISH_GRACE={self.sizes.backlog_grace_s:g})")
        procs, base = self.services(code, run, HTQ_PUBLISH_GRACE=f"{self.sizes.backlog_grace_s:g}", LOG_LEVEL="DEBUG")
        tap, killed_at = None, None
        try:
            for name in workers:
                procs.start_worker(name, concurrency=2)
            for name in workers:
                procs.wait_log(name, " ready.")
            path = f"/slow/{run}"
            bodies = [{"url": self.target + path, "method": "POST", "json": {"n": n}} for n in range(count)]
            # From here on no child is started while the tap's thread runs (preexec_fn and threads).
            pushes_before = pushes_by_commandstats(self.broker_client)
            tap = BrokerTap(self.broker.url)
            tap.start()
            started = time.time()
            self.create_batches(base, bodies)
            created = time.time()
            deadline = started + self.sizes.backlog_bound_s
            while (arrived := self.summary_of(path)["keys"]) < count and time.time() < deadline:
                if procs.procs["worker"].poll() is not None:
                    raise RuntimeError(f"worker exited; its log:\n{procs.log('worker')[-3000:]}")
                if kill and killed_at is None and arrived >= KILL_AT_FRACTION * count:
                    procs.kill("victim", signal.SIGKILL)  # a kill starts no child: the tap's thread is safe
                    killed_at = time.time()
                    self.say(f"  [{code.label}] victim SIGKILLed with {arrived}/{count} arrived")
                time.sleep(POLL_S)
            time.sleep(SETTLE_S)  # publishes that follow the last arrival count too
            tap.stop()
            pushes = pushes_by_commandstats(self.broker_client) - pushes_before
            arrivals = self.dump(path)
            log = procs.log("worker")
        finally:
            if tap is not None:
                tap.close()
            self.finish(procs)
        delivered = len({key for key, _, _ in arrivals})
        last = max((at for _, _, at in arrivals), default=created)
        messages = tap.tasks[DELIVER_TASK]
        # Each create call publishes its own: requests due now, up to DELIVERY_CHUNK a message.
        minimum = sum(-(-min(BATCH_SIZE, count - start) // DELIVERY_CHUNK) for start in range(0, count, BATCH_SIZE))
        figures = {
            "count": count, "delivered": delivered, "missing": count - delivered, "duplicates": duplicates(arrivals),
            "create_s": created - started, "backlog_s": last - started,
            "rate": delivered / (last - started) if last > started else 0.0,
            "messages": messages, "minimum": minimum,
            "per_request": messages / delivered if delivered else None, "min_per_request": minimum / count,
            "over_min": messages / minimum, "attempts_published": sum(tap.items.values()),
            "republished": sum(1 for times in tap.items.values() if times > 1),
            "periodic": sum(n for name, n in tap.tasks.items() if name != DELIVER_TASK),
            "pushes_tap": tap.pushes, "pushes_stats": pushes, "retries": sum(1 for _, a, _ in arrivals if a > 1),
            "killed_at": killed_at, "kill_to_end_s": last - killed_at if killed_at else None,
            "relays_run": len(relay_lines(log, RELAY_RAN, started, last)),
            "relays_dropped": len(relay_lines(log, RELAY_DROPPED, started, last)),
            "relays_republished": sum(int(m.group(1)) for m in re.finditer(r"'republished': (\d+)",
                                                                         "\n".join(relay_lines(log, RELAY_RAN,
                                                                                               started, last)))),
        }
        self.say(f"  [{code.label}] delivered {delivered}/{count} in {figures['backlog_s']:.1f} s "
                 f"({figures['rate']:.0f}/s); {messages} delivery messages")
        return figures

    def report_backlog(self, figures: dict[str, dict]) -> None:
        rows = [
            ("requests delivered", lambda f: f"{f['delivered']}/{f['count']}"),
            *([("  victim killed -> last arrival", lambda f: seconds(f["kill_to_end_s"]))]
              if next(iter(figures.values()))["killed_at"] else []),
            ("  creating them took", lambda f: seconds(f["create_s"])),
            ("  backlog (first create -> last arrival)", lambda f: f"{seconds(f['backlog_s'])} ({f['rate']:.0f}/s)"),
            ("  duplicates", lambda f: str(f["duplicates"])),
            ("  attempts > 1 arrived", lambda f: str(f["retries"])),
            ("delivery task messages published", lambda f: str(f["messages"])),
            ("  per delivered request", lambda f: "-" if f["per_request"] is None else f"{f['per_request']:.4f}"),
            ("  times the no-failure minimum", lambda f: f"{f['over_min']:.2f}x"),
            ("request attempts they carried", lambda f: str(f["attempts_published"])),
            ("  requests published more than once", lambda f: str(f["republished"])),
            ("periodic task messages (beat)", lambda f: str(f["periodic"])),
            ("relay tasks during the backlog: run", lambda f: str(f["relays_run"])),
            ("  dropped as expired (waited > 5 s)", lambda f: str(f["relays_dropped"])),
            ("  requests they republished", lambda f: str(f["relays_republished"])),
            ("pushes: MONITOR / INFO commandstats", lambda f: f"{f['pushes_tap']} / {f['pushes_stats']}"),
        ]
        self.table(rows, figures)
        first = next(iter(figures.values()))
        self.say(f"  no-failure minimum: {first['minimum']} messages ({first['count']} requests due now, created "
                 f"{BATCH_SIZE} a call, travel up to {DELIVERY_CHUNK} a message) = {first['min_per_request']:.4f} "
                 "per request")
        for code in self.codes:
            f = figures[code.label]
            if f["backlog_s"] <= self.sizes.backlog_grace_s:
                self.say(f"  [{code.label}] warning: the backlog lasted {f['backlog_s']:.1f} s, not longer than the "
                         f"publish grace ({self.sizes.backlog_grace_s:g} s): raise --backlog or --slow-ms")
            if f["pushes_tap"] != f["pushes_stats"]:
                self.say(f"  [{code.label}] warning: MONITOR saw {f['pushes_tap']} pushes, INFO commandstats counted "
                         f"{f['pushes_stats']}")

    # -- output ---------------------------------------------------------------------------------

    def table(self, rows, figures: dict[str, dict]) -> None:
        width = max(24, *(len(code.label) + 2 for code in self.codes))
        self.say(f"  {'':<42}" + "".join(f"{code.label:>{width}}" for code in self.codes))
        for name, cell in rows:
            self.say(f"  {name:<42}" + "".join(f"{cell(figures[code.label]):>{width}}" for code in self.codes))

    def run(self) -> None:
        self.start()
        redis_version = self.store_client.info("server")["redis_version"]
        self.say(f"htq fault bench: {os.cpu_count()} CPUs, Redis {redis_version} (store, and a separate broker); "
                 f"load average before the run {os.getloadavg()[0]:.2f} (other processes skew the figures); "
                 f"logs in {self.workdir}")
        self.say("Versions (each started from its own checkout, with htq's default settings unless a scenario "
                 "says otherwise):")
        for code in self.codes:
            self.say(f"  {code.label:<10} {code.description}")
        if "kill" in self.args.only:
            self.say(f"\n1.+2. Kill -9 of a worker holding {self.sizes.requests} eta tasks (due {LEAD_S:.0f}-"
                     f"{LEAD_S + SPREAD_S:.0f} s after their creation) and running an attempt (timeout "
                     f"{HELD_TIMEOUT_S} s) the target holds open; a second worker started at once; wait bound "
                     f"{self.sizes.bound_s:.0f} s after the kill")
            self.results["kill"] = {code.label: self.kill_run(code) for code in self.codes}
            self.report_kill(self.results["kill"])
        if "backlog" in self.args.only:
            self.say(f"\n3. Backlog: {self.sizes.backlog} requests due now (batch route) behind one worker "
                     f"(concurrency 2), the target answering one request at a time after {self.sizes.slow_ms:g} ms; "
                     f"HTQ_PUBLISH_GRACE={self.sizes.backlog_grace_s:g} for every version (default 120) so that "
                     f"republishing can show; wait bound {self.sizes.backlog_bound_s:.0f} s")
            self.results["backlog"] = {code.label: self.backlog_run(code) for code in reversed(self.codes)}
            self.report_backlog(self.results["backlog"])
        if "backlog-kill" in self.args.only:
            self.say(f"\n4. Backlog with a kill: as 3., behind two workers (concurrency 2 each); one is SIGKILLed "
                     f"once {KILL_AT_FRACTION:.0%} of the backlog has arrived, the other goes on alone")
            self.results["backlog-kill"] = {code.label: self.backlog_run(code, kill=True) for code in self.codes}
            self.report_backlog(self.results["backlog-kill"])
        self.summary()

    def summary(self) -> None:
        self.say("\nSummary against the targets")
        results = self.results

        def line(text: str, verdicts: list[tuple[bool, str]]) -> None:
            self.say(f"  {text}")
            for code, (ok, detail) in zip(self.codes, verdicts):
                self.say(f"    [{'met ' if ok else 'MISS'}] {code.label:<10} {detail}")

        if "kill" in results:
            kill = [results["kill"][code.label] for code in self.codes]
            line(f"held requests delivered <= {TARGET_LATE_S:.0f} s after due:",
                 [(f["missing"] == 0 and f["max"] <= TARGET_LATE_S,
                   f"max lateness {seconds(f['max'])}, {f['arrived']}/{f['count']} arrived within "
                   f"{f['waited']:.0f} s of the kill, duplicates {f['duplicates']}") for f in kill])
            line(f"killed attempt retried <= {TARGET_RETRY_S:.0f} s after the kill:",
                 [(f["retry_after_kill"] is not None and f["retry_after_kill"] <= TARGET_RETRY_S,
                   f"second attempt {seconds(f['retry_after_kill'])} after the kill"
                   if f["retry_after_kill"] is not None else f"no second attempt within {f['waited']:.0f} s")
                  for f in kill])
        if "backlog" in results:
            figures = [results["backlog"][code.label] for code in self.codes]
            line(f"delivery messages per delivered request under a backlog close to the no-failure minimum "
                 f"(at most {TARGET_MESSAGES_OVER_MIN:.2f}x {figures[0]['min_per_request']:.4f}):",
                 [(f["missing"] == 0 and f["over_min"] <= TARGET_MESSAGES_OVER_MIN,
                   f"{'-' if f['per_request'] is None else format(f['per_request'], '.4f')} = {f['messages']} messages "
                   f"for {f['delivered']} delivered: {f['over_min']:.2f}x the minimum, duplicates {f['duplicates']}")
                  for f in figures])
        if "backlog-kill" in results:
            figures = [results["backlog-kill"][code.label] for code in self.codes]
            line(f"a kill mid-backlog loses nothing, and what the victim held is published again in shared "
                 f"messages, not one each (messages over the no-failure minimum at most "
                 f"{TARGET_EXTRA:.0%} of the requests published again):",
                 [(f["missing"] == 0 and f["messages"] - f["minimum"] <= TARGET_EXTRA * f["republished"],
                   f"{f['delivered']}/{f['count']} delivered, {f['messages'] - f['minimum']} messages over the minimum "
                   f"for {f['republished']} requests published again, duplicates {f['duplicates']}")
                  for f in figures])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller backlog and a 25 s wait after the kill: under 2 minutes")
    parser.add_argument("--code", nargs="+", default=[str(REPO), BASELINE_REV], metavar="DIR|REV",
                        help="versions to compare: checkout directories or git revisions "
                             f"(default: this working tree and {BASELINE_REV})")
    parser.add_argument("--requests", type=int, default=200, help="eta requests the victim holds (200)")
    parser.add_argument("--bound", type=float, help="seconds to wait after the kill (180; quick 25)")
    parser.add_argument("--backlog", type=int, help="requests of the backlog (10000; quick 3000)")
    parser.add_argument("--slow-ms", type=float, default=4.0,
                        help="the backlog target's time per request, one at a time (4)")
    parser.add_argument("--backlog-grace", type=float, default=5.0,
                        help="HTQ_PUBLISH_GRACE of the backlog scenario, every version (5)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS),
                        help="run only these scenarios (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory with all logs")
    return parser.parse_args(argv)


def sizes_for(args: argparse.Namespace) -> Sizes:
    quick = args.quick
    return Sizes(requests=args.requests, backlog=args.backlog or (3000 if quick else 10000), slow_ms=args.slow_ms,
                 backlog_grace_s=args.backlog_grace, bound_s=args.bound or (25.0 if quick else 180.0),
                 backlog_bound_s=60.0 if quick else 150.0)


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    if argv[:1] == ["_target"]:
        serve_target(int(argv[1]), float(argv[2]))
        return 0
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    workdir = Path(tempfile.mkdtemp(prefix="htq-bench-faults-"))
    bench = Bench(args, sizes_for(args), workdir)
    try:
        bench.run()
    except KeyboardInterrupt:
        print("interrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        bench.stop()
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
