"""A worker host lost for real: hosts are network namespaces joined by a bridge (bench/netns.py),
with Redis, the web server, beat and two workers each on a host of its own. The host whose worker
holds every request (its eta tasks) has its link cut, then all its processes killed with SIGKILL,
one second before they are due: each request still arrives, within 15 s of its due time. htq's
default intervals apply. Skipped, with the reason, where namespaces cannot be made (root and iproute2)."""
from __future__ import annotations

import socket
import time

import pytest
import redis
import requests

from app.processes import service_env, web_argv
from app.storage import keys
from bench import netns
from bench.cluster import CUT_BEFORE_DUE_S, REDIS_PORT, WEB_PORT, HostProcesses, redis_argv
from tests.support.http_target import HttpTarget
from tests.support.waiting import wait_until

LATE_S = 15  # the bound of the issue: held work delivered within 15 s of its due time
COUNT = 150
LEAD_S = 10.0

_reason = netns.unavailable_reason()
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


@pytest.fixture
def network():
    netns.sweep_stale()
    net = netns.Network()
    yield net
    net.destroy()


def live_names(web: str) -> set[str]:
    return {worker["name"] for worker in requests.get(web + "/v1/workers", timeout=10).json()["items"]}


def test_a_lost_worker_host_loses_no_request_and_its_held_requests_arrive_in_time(network, tmp_path):
    hosts = {role: network.add_host(role) for role in ("redis", "web", "beat", "victim", "rescuer")}
    redis_url = f"redis://{hosts['redis'].address}:{REDIS_PORT}/0"
    env = service_env(redis_url)
    procs = {role: HostProcesses(host, env, tmp_path / role) for role, host in hosts.items()}
    target = HttpTarget(host=network.gateway)
    target.start()
    try:
        (tmp_path / "data").mkdir()
        procs["redis"].start("redis", redis_argv(hosts["redis"].address, REDIS_PORT, tmp_path / "data"))
        store = redis.Redis.from_url(redis_url)
        wait_until(lambda: _pings(store), 20, 0.05)
        web = f"http://{hosts['web'].address}:{WEB_PORT}"
        procs["web"].start("web", web_argv(f"{hosts['web'].address}:{WEB_PORT}"))
        procs["beat"].start_beat()
        procs["victim"].start_worker("victim", concurrency=2)
        procs["web"].wait_answering("web", web + "/healthz")
        victim = f"victim@{socket.gethostname()}"
        wait_until(lambda: victim in live_names(web), 30, 0.1)

        due_at = time.time() + LEAD_S
        bodies = [{"url": f"{target.url}/held/{n}", "eta": due_at} for n in range(COUNT)]
        for start in range(0, COUNT, 100):
            created = requests.post(web + "/v1/requests/batch", json={"requests": bodies[start:start + 100]},
                                    timeout=30)
            assert created.status_code == 201, created.text
        wait_until(lambda: store.scard(keys.worker_held(victim)) == COUNT, LEAD_S, 0.05)  # all in its memory
        procs["rescuer"].start_worker("rescuer", concurrency=2)
        procs["rescuer"].wait_log("rescuer", " ready.")
        assert time.time() < due_at, "the set-up took longer than the lead: nothing was held at the cut"

        time.sleep(max(0.0, due_at - CUT_BEFORE_DUE_S - time.time()))  # the scenario: lost just before due
        network.lose(hosts["victim"])
        assert netns.ip("netns", "pids", hosts["victim"].namespace).stdout.split() == []

        wait_until(lambda: victim not in live_names(web), 30, 0.1)
        wait_until(lambda: len(_first_arrivals(target)) == COUNT, LEAD_S + LATE_S + 10, 0.1)
        arrivals = _first_arrivals(target)
        late = {n: at - due_at for n, at in arrivals.items()}
        assert set(late) == {str(n) for n in range(COUNT)}
        assert max(late.values()) <= LATE_S, sorted(late.values())[-5:]
        assert min(late.values()) > -0.05  # none early
        keys_by_path: dict[str, set[str]] = {}
        for received in target.received:
            keys_by_path.setdefault(received.path, set()).add(received.headers["Idempotency-Key"])
        assert all(len(ids) == 1 for ids in keys_by_path.values())  # a repeat is the same request
    finally:
        target.stop()
        network.destroy()  # every process of every host killed (and reaped): no graceful stops to wait out
        for host_procs in procs.values():
            for proc in host_procs.procs.values():
                proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def _first_arrivals(target: HttpTarget) -> dict[str, float]:
    first: dict[str, float] = {}
    for received in list(target.received):
        if received.path.startswith("/held/"):
            n = received.path.rsplit("/", 1)[1]
            first[n] = min(received.at, first.get(n, received.at))
    return first
