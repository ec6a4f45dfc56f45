"""A failover under load loses nothing accepted: web (gunicorn), a Celery worker and beat behind
Redis Sentinel with HTQ_REDIS_MIN_REPLICAS=1, producers creating requests (with an
Idempotency-Key, retrying their 503s) and pushing queue messages while the master is
killed with SIGKILL, once or twice in a row. Every request answered 201 is delivered to a real
HTTP target, every message answered 201 is in the queue; meanwhile the API answers 503 with
Retry-After, never 500, no call waits longer than CALL_BOUND_S, and it serves again within
seconds of each promotion without any restart."""
from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from app.embedded import free_port
from app.processes import ServiceProcesses, service_env
from app.storage import keys
from app.storage.client import Store
from config.settings import load_settings
from tests.support.http_target import HttpTarget
from tests.support.sentinel import MASTER_NAME, SentinelDeployment
from tests.support.waiting import wait_until

FAST = {"HTQ_HORIZON": "1", "HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "2", "WEB_CONCURRENCY": "1"}
QUEUE = "failover"
# The longest an API call may take across a failover: a write that accepts work waits for its
# replica at most HTQ_REDIS_WAIT_TIMEOUT (1 s), a publish gives up within about a second
# (task_publish_retry_policy). Just after a promotion the remaining replicas are still
# reconnecting, so a write can wait its full second before its 503, and a loaded 2-core machine
# (one gunicorn worker, 10+ processes) needs the rest. Before the task-sent event was bounded
# too, a create whose task went out just before the kill waited for the promotion: at least
# DOWN_AFTER_MS (3 s) plus the election, 5.2 s measured, well over this bound.
CALL_BOUND_S = 3.0
# Creates sent at once: the more there are, the likelier the kill falls between a create's task
# message and its task-sent event, where the call waited for the promotion.
CREATE_THREADS = 3


@dataclass
class Producer:
    """One kind of write, sent in a loop until stopped by one thread or more: what was accepted and
    every call's answer."""

    name: str
    accepted: list[str] = field(default_factory=list)
    # (sent, answered, status) of each call; status 0: no answer (timeout, connection reset)
    calls: list[tuple[float, float, int]] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # answers that are neither accepted nor 503 with Retry-After
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, response: requests.Response, sent_at: float) -> None:
        with self._lock:
            self.calls.append((sent_at, time.time(), response.status_code))
            if response.status_code == 503 and not response.headers.get("Retry-After"):
                self.bad.append(f"503 without Retry-After: {response.text}")
            elif response.status_code not in (200, 201, 503):
                self.bad.append(f"{response.status_code}: {response.text[:300]}")

    def record_failure(self, exc: requests.RequestException, sent_at: float) -> None:
        """A call that got no answer: a bad one, and its duration counts as a call's."""
        answered = time.time()
        with self._lock:
            self.calls.append((sent_at, answered, 0))
            self.bad.append(f"no answer after {answered - sent_at:.3f} s: {exc!r}")

    def first(self, status: int, after: float, before: float = math.inf) -> float | None:
        return min((answered for _, answered, code in self.calls if code == status and after < answered < before),
                   default=None)

    def met_the_gap(self, killed: float, switched: float, until: float = math.inf) -> bool:
        """It saw the failover: a 503 after the kill (and before `until`, the next kill), or a call
        that was in flight at the promotion (sent before it, answered after: it waited out the gap
        instead)."""
        return (self.first(503, killed, until) is not None
                or any(sent < switched <= answered for sent, answered, _ in self.calls))

    def longest_call(self, start: float, end: float) -> tuple[float, float]:
        """(duration, sent at) of the longest call in flight at some moment between start and end."""
        return max(((answered - sent, sent) for sent, answered, _ in self.calls if answered >= start and sent <= end),
                   default=(0.0, start))


def create_loop(base: str, target: str, producer: Producer, stop: threading.Event) -> None:
    session = requests.Session()
    while not stop.is_set():
        key = uuid.uuid4().hex
        while not stop.is_set():  # the same Idempotency-Key until it is accepted
            sent_at = time.time()
            try:
                response = session.post(f"{base}/v1/requests", json={"url": f"{target}/d?k={key}"},
                                        headers={"Idempotency-Key": key}, timeout=15)
            except requests.RequestException as exc:
                producer.record_failure(exc, sent_at)
                continue
            producer.record(response, sent_at)
            if response.status_code in (200, 201):
                producer.accepted.append(key)
                break


def push_loop(base: str, producer: Producer, stop: threading.Event) -> None:
    session = requests.Session()
    while not stop.is_set():
        sent_at = time.time()
        try:
            response = session.post(f"{base}/v1/queues/{QUEUE}/messages", json={"n": len(producer.accepted)},
                                    timeout=15)
        except requests.RequestException as exc:
            producer.record_failure(exc, sent_at)
            continue
        producer.record(response, sent_at)
        if response.status_code == 201:
            producer.accepted.append(response.json()["id"])


def readyz_loop(base: str, answers: list[tuple[float, int]], stop: threading.Event) -> None:
    while not stop.wait(0.02):
        try:
            answers.append((time.time(), requests.get(f"{base}/readyz", timeout=5).status_code))
        except requests.RequestException:
            answers.append((time.time(), 0))


@dataclass
class Failover:
    killed: float  # time.time() of the kill -9
    switched: float  # of the +switch-master


@dataclass
class Load:
    """htq's processes behind the Sentinels, with the producers and a /readyz poller running."""

    procs: ServiceProcesses
    store: Store
    http_target: HttpTarget
    creates: Producer = field(default_factory=lambda: Producer("create"))
    pushes: Producer = field(default_factory=lambda: Producer("push"))
    ready: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    stop_ready: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def producers(self) -> tuple[Producer, Producer]:
        return self.creates, self.pushes

    def start(self) -> None:
        base = self.procs.start_web(free_port())
        self.procs.start_worker(concurrency=2)
        self.procs.start_beat()
        self.threads = [
            *(threading.Thread(target=create_loop, args=(base, self.http_target.url, self.creates, self.stop),
                               name=f"create-{i}") for i in range(CREATE_THREADS)),
            threading.Thread(target=push_loop, args=(base, self.pushes, self.stop), name="push"),
            threading.Thread(target=readyz_loop, args=(base, self.ready, self.stop_ready), name="readyz")]
        for thread in self.threads:
            thread.start()
        wait_until(lambda: len(self.creates.accepted) >= 50 and len(self.pushes.accepted) >= 50, 20)
        wait_until(lambda: len(self.http_target.requests_to("/d")) >= 20, 20)  # workers deliver before the kill

    def accepting_again(self, more: int = 20) -> None:
        """Until each producer has `more` writes accepted from now on."""
        before = [len(producer.accepted) for producer in self.producers]
        wait_until(lambda: all(len(p.accepted) > n + more for p, n in zip(self.producers, before)), 20)

    def stop_all(self) -> None:
        """Stops the producers and the poller; fails if one has not ended (a call stuck past its
        timeout, or a loop that does not see the stop)."""
        self.stop.set()
        self.stop_ready.set()
        deadline = time.monotonic() + 20  # a call sent just before the stop ends within its 15 s timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        still_running = [thread.name for thread in self.threads if thread.is_alive()]
        assert not still_running, f"threads still running after the stop: {still_running}"


@contextmanager
def load_behind(deployment: SentinelDeployment, tmp_path: Path, http_target: HttpTarget) -> Iterator[Load]:
    env = service_env("redis://127.0.0.1:1/0", REDIS_SENTINELS=deployment.sentinels_setting,
                      REDIS_SENTINEL_MASTER=MASTER_NAME, HTQ_REDIS_MIN_REPLICAS="1", **FAST)
    load = Load(ServiceProcesses(env, tmp_path), Store.from_settings(load_settings(env)), http_target)
    try:
        load.start()
        yield load
    finally:
        try:
            load.stop_all()
        finally:
            load.store.close()
            load.procs.stop_all()


def fail_over(deployment: SentinelDeployment, load: Load) -> Failover:
    """kill -9 of the master once a replica can take over; returns when writes are accepted again
    on the new master, confirmed by a remaining replica."""
    deployment.wait_replicas_in_sync()
    watch = deployment.watch_switch()
    try:
        deployment.kill_master()
        killed = time.time()
        switched = watch.wait(20)
    finally:
        watch.close()
    load.accepting_again()
    return Failover(killed, switched)


def check_answers(load: Load, failover: Failover, until: float = math.inf) -> None:
    """What the producers saw of one failover, from its kill until `until` (the next failover's
    kill): 503s with Retry-After or calls waiting it out, no 500, no call longer than
    CALL_BOUND_S; and /readyz back after the promotion."""
    creates, pushes = load.producers
    killed, switched = failover.killed, failover.switched
    first_503s = [at for producer in load.producers if (at := producer.first(503, killed, until)) is not None]
    timeline = {"first 503": min(first_503s, default=killed),
                "+switch-master": switched,
                "first 201 push": pushes.first(201, switched, until),
                "first 201 create": creates.first(201, switched, until),
                "/readyz 200": next((at for at, code in load.ready if switched < at < until and code == 200), None)}
    missing = [name for name, at in timeline.items() if at is None]
    assert not missing, f"none after the promotion (t+{switched - killed:.3f} s): {missing}"
    longest = {producer.name: producer.longest_call(killed, max(timeline.values())) for producer in load.producers}
    print("\nfailover timeline (kill at t0): " + ", ".join(f"{name} t+{at - killed:.3f} s"
                                                            for name, at in timeline.items())
          + "; longest call: " + ", ".join(f"{name} {took:.3f} s (sent t+{sent - killed:.3f} s)"
                                           for name, (took, sent) in longest.items()))
    assert not creates.bad and not pushes.bad, creates.bad[:5] + pushes.bad[:5]
    assert creates.met_the_gap(killed, switched, until) and pushes.met_the_gap(killed, switched, until)
    assert all(took <= CALL_BOUND_S for took, _ in longest.values()), longest


def check_nothing_lost(load: Load) -> None:
    """Every accepted request is delivered; every accepted message is stored; the processes
    followed without restarts."""
    creates, pushes = load.producers

    def undelivered() -> set[str]:
        delivered = {received.path.split("k=", 1)[1] for received in load.http_target.requests_to("/d")}
        return set(creates.accepted) - delivered

    wait_until(lambda: not undelivered(), 60, 0.1)
    stored = set(load.store.redis.hkeys(keys.queue_bodies(QUEUE)))
    assert set(pushes.accepted) <= stored, len(set(pushes.accepted) - stored)
    print(f"{len(creates.accepted)} requests accepted, all delivered; {len(pushes.accepted)} messages "
          f"accepted, all in the queue")
    for name in ("web", "worker", "beat"):
        assert load.procs.procs[name].poll() is None, load.procs.log(name)[-2000:]  # followed without restarts
    assert "Traceback" not in load.procs.log("web"), load.procs.log("web")[-3000:]


@contextmanager
def started(directory: Path, replicas: int) -> Iterator[SentinelDeployment]:
    deployment = SentinelDeployment(directory, replicas=replicas)
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def deployment(tmp_path):
    with started(tmp_path / "redis", replicas=2) as deployment:
        yield deployment


@pytest.fixture
def deployment_for_two_failovers(tmp_path):
    """A replica more: after two failovers the master still has one to confirm its writes."""
    with started(tmp_path / "redis", replicas=3) as deployment:
        yield deployment


def test_a_master_killed_under_load_loses_nothing_accepted(deployment, tmp_path, http_target):
    with load_behind(deployment, tmp_path, http_target) as load:
        failover = fail_over(deployment, load)
        load.stop.set()
        wait_until(lambda: any(at > failover.switched and code == 200 for at, code in load.ready), 10)
        load.stop_all()
        check_answers(load, failover)
        check_nothing_lost(load)


def test_two_masters_killed_in_a_row_lose_nothing_accepted(deployment_for_two_failovers, tmp_path, http_target):
    # The second master is killed once it has accepted and confirmed writes of its own, and the
    # workers have released and delivered what they held: what was written on it (a worker's
    # release of held requests among it) must survive on the third.
    deployment = deployment_for_two_failovers
    with load_behind(deployment, tmp_path, http_target) as load:
        first = fail_over(deployment, load)
        delivered = len(http_target.requests_to("/d"))
        wait_until(lambda: len(http_target.requests_to("/d")) >= delivered + 20, 20)
        second = fail_over(deployment, load)
        load.stop.set()
        wait_until(lambda: any(at > second.switched and code == 200 for at, code in load.ready), 10)
        load.stop_all()
        check_answers(load, first, until=second.killed)
        check_answers(load, second)
        check_nothing_lost(load)
