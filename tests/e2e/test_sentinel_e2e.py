"""A failover under load loses nothing accepted: web (gunicorn), a Celery worker and beat behind
Redis Sentinel with HTQ_REDIS_MIN_REPLICAS=1, a producer creating requests (with an
Idempotency-Key, retrying its 503s) and another pushing queue messages while the master is
killed with SIGKILL. Every request answered 201 is delivered to a real HTTP target, every message
answered 201 is in the queue; meanwhile the API answers 503 with Retry-After, never 500, and it
serves again within seconds of the promotion without any restart."""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest
import requests

from app.embedded import free_port
from app.processes import ServiceProcesses, service_env
from app.storage import keys
from app.storage.client import Store
from config.settings import load_settings
from tests.support.sentinel import MASTER_NAME, SentinelDeployment
from tests.support.waiting import wait_until

FAST = {"HTQ_HORIZON": "1", "HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "2", "WEB_CONCURRENCY": "1"}
QUEUE = "failover"


@dataclass
class Producer:
    """Sends one kind of write in a loop until stopped; `send()` returns (status, accepted id)."""

    name: str
    session: requests.Session = field(default_factory=requests.Session)
    accepted: list[str] = field(default_factory=list)
    statuses: list[tuple[float, int]] = field(default_factory=list)  # (time, status) of every answer
    sent: list[float] = field(default_factory=list)  # when each answered call was sent, in the same order
    bad: list[str] = field(default_factory=list)  # answers that are neither accepted nor 503 with Retry-After

    def record(self, response: requests.Response, sent_at: float) -> None:
        self.statuses.append((time.time(), response.status_code))
        self.sent.append(sent_at)
        if response.status_code == 503 and not response.headers.get("Retry-After"):
            self.bad.append(f"503 without Retry-After: {response.text}")
        elif response.status_code not in (200, 201, 503):
            self.bad.append(f"{response.status_code}: {response.text[:300]}")

    def first(self, status: int, after: float) -> float | None:
        return next((at for at, code in self.statuses if code == status and at > after), None)

    def met_the_gap(self, killed: float, switched: float) -> bool:
        """It saw the failover: a 503 after the kill, or a call that was in flight at the
        promotion (sent before it, answered after: it waited out the gap instead)."""
        return bool(self.first(503, killed)) or any(
            sent < switched <= answered for sent, (answered, _) in zip(self.sent, self.statuses))


def create_loop(base: str, target: str, producer: Producer, stop: threading.Event) -> None:
    while not stop.is_set():
        key = uuid.uuid4().hex
        while not stop.is_set():  # the same Idempotency-Key until it is accepted
            sent_at = time.time()
            response = producer.session.post(f"{base}/v1/requests", json={"url": f"{target}/d?k={key}"},
                                             headers={"Idempotency-Key": key}, timeout=15)
            producer.record(response, sent_at)
            if response.status_code in (200, 201):
                producer.accepted.append(key)
                break


def push_loop(base: str, producer: Producer, stop: threading.Event) -> None:
    while not stop.is_set():
        sent_at = time.time()
        response = producer.session.post(f"{base}/v1/queues/{QUEUE}/messages", json={"n": len(producer.accepted)},
                                         timeout=15)
        producer.record(response, sent_at)
        if response.status_code == 201:
            producer.accepted.append(response.json()["id"])


def readyz_loop(base: str, answers: list[tuple[float, int]], stop: threading.Event) -> None:
    while not stop.wait(0.02):
        try:
            answers.append((time.time(), requests.get(f"{base}/readyz", timeout=5).status_code))
        except requests.RequestException:
            answers.append((time.time(), 0))


@pytest.fixture
def deployment(tmp_path):
    deployment = SentinelDeployment(tmp_path / "redis")
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()


def test_a_master_killed_under_load_loses_nothing_accepted(deployment, tmp_path, http_target):
    env = service_env("redis://127.0.0.1:1/0", REDIS_SENTINELS=deployment.sentinels_setting,
                      REDIS_SENTINEL_MASTER=MASTER_NAME, HTQ_REDIS_MIN_REPLICAS="1", **FAST)
    settings = load_settings(env)
    procs = ServiceProcesses(env, tmp_path)
    store = Store.from_settings(settings)
    creates, pushes, ready = Producer("create"), Producer("push"), []
    stop, stop_ready = threading.Event(), threading.Event()
    threads = []
    try:
        base = procs.start_web(free_port())
        procs.start_worker(concurrency=2)
        procs.start_beat()
        threads = [threading.Thread(target=create_loop, args=(base, http_target.url, creates, stop)),
                   threading.Thread(target=push_loop, args=(base, pushes, stop)),
                   threading.Thread(target=readyz_loop, args=(base, ready, stop_ready))]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(creates.accepted) >= 50 and len(pushes.accepted) >= 50, 20)
        wait_until(lambda: len(http_target.requests_to("/d")) >= 20, 20)  # workers deliver before the kill

        watch = deployment.watch_switch()
        deployment.kill_master()
        killed = time.time()
        accepted_before = len(creates.accepted), len(pushes.accepted)
        switched = watch.wait(20)
        watch.close()
        # Writes are accepted again on the new master, confirmed by the remaining replica.
        wait_until(lambda: len(creates.accepted) > accepted_before[0] + 20
                   and len(pushes.accepted) > accepted_before[1] + 20, 20)
        stop.set()
        for thread in threads[:2]:
            thread.join(20)
        wait_until(lambda: any(at > switched and code == 200 for at, code in ready), 10)
    finally:
        stop.set()
        stop_ready.set()
        for thread in threads:
            thread.join(20)

    try:
        gap = {producer.name: producer.first(503, killed) or killed for producer in (creates, pushes)}
        timeline = {"first 503": min(gap.values()), "+switch-master": switched,
                    "first 201 push": pushes.first(201, gap["push"]),
                    "first 201 create": creates.first(201, gap["create"]),
                    "/readyz 200": next(at for at, code in ready if at > switched and code == 200)}
        print("\nfailover timeline (kill at t0): " + ", ".join(f"{name} t+{at - killed:.3f} s"
                                                                for name, at in timeline.items()))
        assert not creates.bad and not pushes.bad, creates.bad[:5] + pushes.bad[:5]
        assert creates.met_the_gap(killed, switched) and pushes.met_the_gap(killed, switched)

        # Every accepted request is delivered; every accepted message is stored.
        def undelivered() -> set[str]:
            delivered = {received.path.split("k=", 1)[1] for received in http_target.requests_to("/d")}
            return set(creates.accepted) - delivered

        wait_until(lambda: not undelivered(), 60, 0.1)
        stored = set(store.redis.hkeys(keys.queue_bodies(QUEUE)))
        assert set(pushes.accepted) <= stored, len(set(pushes.accepted) - stored)
        print(f"{len(creates.accepted)} requests accepted, all delivered; {len(pushes.accepted)} messages "
              f"accepted, all in the queue")
        for name in ("web", "worker", "beat"):
            assert procs.procs[name].poll() is None, procs.log(name)[-2000:]  # followed without restarts
        assert "Traceback" not in procs.log("web"), procs.log("web")[-3000:]
    finally:
        store.close()
        procs.stop_all()
