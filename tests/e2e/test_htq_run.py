"""`htq run` as a user starts it: embedded Redis, web, worker and beat; Ctrl-C stops all of it, in
order: Redis last, once the worker has put the tasks it held back on the broker."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
import redis
import requests

from app.embedded import RedisServer, free_port
from app.processes import ROOT
from app.storage import keys
from tests.support.waiting import wait_until


def htq_command() -> list[str]:
    installed = Path(sys.executable).with_name("htq")
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "app.cli"]


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now (children, grandchildren ...), from /proc."""
    children: dict[int, set[int]] = defaultdict(set)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].add(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children[todo.pop()] - found:
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def ctrl_c(proc: subprocess.Popen) -> None:
    """What Ctrl-C in a terminal does: SIGINT to the foreground process group, which `htq run` leads."""
    os.killpg(proc.pid, signal.SIGINT)


@pytest.fixture
def htq_run(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "HTQ_", "CELERY_", "WEBHOOK_"))}
    env["PYTHONPATH"] = str(ROOT)
    log = open(tmp_path / "htq-run.log", "wb")
    proc = subprocess.Popen([*htq_command(), "run", "--port", str(port), "--concurrency", "2"], cwd=tmp_path,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: banner(tmp_path / "htq-run.log") or proc.poll() is not None, timeout_s=60, interval_s=0.05)
        assert proc.poll() is None, (tmp_path / "htq-run.log").read_text(errors="replace")
        yield proc, base, tmp_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


BANNER = re.compile(r"htq listening on (?P<base>\S+) .*\n  REDIS_URL=(?P<redis_url>\S+) .*\n  data in (?P<data>.+)\n")


def banner(log: Path) -> re.Match | None:
    """The banner `htq run` prints once web, worker and beat are up."""
    return BANNER.search(log.read_text(errors="replace"))


def test_htq_run_serves_the_api_delivers_and_stops_cleanly_on_ctrl_c(htq_run, http_target):
    proc, base, workdir = htq_run
    assert requests.get(base + "/healthz", timeout=5).text == "OK"
    created = requests.post(base + "/v1/requests", json={"url": http_target.url + "/run-hook", "body": "hi"},
                            timeout=5)
    assert created.status_code == 201
    response = requests.get(base + created.json()["links"]["response"] + "?wait=25", timeout=30)
    assert response.status_code == 200 and response.json()["status_code"] == 200
    assert http_target.requests_to("/run-hook")[0].body == b"hi"
    assert (workdir / ".htq" / "appendonly.aof").exists()
    log_text = (workdir / "htq-run.log").read_text(errors="replace")
    assert f"htq listening on {base}" in log_text
    started = descendants(proc.pid)
    assert len(started) >= 4  # Redis, gunicorn (and its worker), the Celery worker (and its pool), beat
    ctrl_c(proc)
    assert proc.wait(40) == 0
    wait_until(lambda: not any(running(pid) for pid in started), timeout_s=10)


@pytest.mark.parametrize("stop", [ctrl_c, lambda proc: proc.send_signal(signal.SIGTERM)], ids=["ctrl-c", "sigterm"])
def test_a_stop_ends_web_worker_and_beat_before_redis_and_the_worker_hands_its_tasks_back(htq_run, http_target,
                                                                                           stop):
    proc, base, workdir = htq_run
    log = workdir / "htq-run.log"
    # Due in 40 s, within the horizon: published at once with an eta, so the worker holds the task
    # (received, not acknowledged) until then.
    created = requests.post(base + "/v1/requests/batch", json={"requests": [
        {"url": f"{http_target.url}/later/{n}", "delay": 40} for n in range(3)]}, timeout=5)
    assert created.status_code == 201
    store = redis.Redis.from_url(banner(log)["redis_url"])
    [worker] = requests.get(base + "/v1/workers", timeout=5).json()["items"]
    wait_until(lambda: store.scard(keys.worker_held(worker["name"])) == 3, timeout_s=20, interval_s=0.1)
    store.close()
    started = descendants(proc.pid)

    stop(proc)
    assert proc.wait(40) == 0
    wait_until(lambda: not any(running(pid) for pid in started), timeout_s=10)
    text = log.read_text(errors="replace")
    restored = text.index("Restoring 1 unacknowledged message(s)")  # the worker, on its way out
    assert text.index("stopping Redis", restored) > restored  # htq run stops Redis after that
    redis_log = (workdir / ".htq" / "redis.log").read_text()
    assert "Received SIGTERM scheduling shutdown" in redis_log and "SIGINT" not in redis_log  # from htq run
    assert "Redis is now ready to exit" in redis_log
    shutdown = datetime.strptime(re.search(r"(\d+ \w+ \d+ [\d:.]+) # User requested shutdown", redis_log)[1],
                                 "%d %b %Y %H:%M:%S.%f")
    restoring = datetime.strptime(re.search(r"([\d-]+ [\d:,]+) INFO \S+: Restoring", text)[1], "%Y-%m-%d %H:%M:%S,%f")
    assert restoring <= shutdown

    # The held task is back on the broker's queue, nothing is left recorded as unacknowledged:
    # the next start delivers the requests at once instead of after the broker's visibility timeout.
    server = RedisServer(workdir / ".htq")
    server.start()
    try:
        client = redis.Redis(port=server.port)
        assert client.llen("htq") == 1 and client.hlen("unacked") == 0
        client.close()
    finally:
        server.stop()


def test_the_banner_comes_once_web_worker_and_beat_are_up_and_names_the_redis_url_for_celery(htq_run, http_target):
    proc, base, workdir = htq_run
    found = banner(workdir / "htq-run.log")
    assert found["base"] == base and Path(found["data"]) == workdir / ".htq"
    # The worker is live, beat's tick has run: the first request after the banner goes at once.
    assert len(requests.get(base + "/v1/workers", timeout=5).json()["items"]) == 1
    before = time.time()
    created = requests.post(base + "/v1/requests", json={"url": http_target.url + "/first"}, timeout=5)
    assert created.status_code == 201
    [received] = http_target.wait_for(1, "/first", timeout_s=10)
    assert received.at - before < 1.0, received.at - before
    # `celery -A workers inspect` reaches this htq's worker with the REDIS_URL of the banner.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "HTQ_", "CELERY_"))}
    pinged = subprocess.run([sys.executable, "-m", "celery", "-A", "workers", "inspect", "ping", "--timeout", "5"],
                            cwd=ROOT, env={**env, "REDIS_URL": found["redis_url"], "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert pinged.returncode == 0 and "pong" in pinged.stdout, pinged.stdout + pinged.stderr
    # What htq writes at run time is under the data directory, nothing in the working directory.
    assert list((workdir / ".htq").glob("beat-schedule*"))
    assert sorted(path.name for path in workdir.iterdir()) == [".htq", "htq-run.log"]


def test_idle_it_logs_nothing_and_a_delivery_is_one_line_with_its_ids(htq_run, http_target):
    proc, base, workdir = htq_run
    log = workdir / "htq-run.log"
    wait_until(lambda: ticked_twice(banner(log)["redis_url"]), timeout_s=10)
    quiet_from = len(log.read_text(errors="replace").splitlines())
    time.sleep(IDLE_S)  # what is measured here is the absence of lines over a stretch of time
    idle_lines = log.read_text(errors="replace").splitlines()[quiet_from:]
    assert idle_lines == [], idle_lines  # ~10 ticks, heartbeats, sweeps: none of it is a line at INFO

    created = requests.post(base + "/v1/requests", json={"url": http_target.url + "/one"}, timeout=5).json()
    http_target.wait_for(1, "/one")
    wait_until(lambda: requests.get(f"{base}/v1/requests/{created['id']}/status", timeout=5).json()["status"]
               == "succeeded", timeout_s=10)
    time.sleep(1.5)  # a tick or two after the delivery: still nothing more
    lines = log.read_text(errors="replace").splitlines()[quiet_from:]
    assert len(lines) == 1, lines
    assert re.search(rf"request {created['id']}: attempt 1 -> succeeded \(200\) in \d+ ms$", lines[0]), lines


IDLE_S = 10.0


def ticked_twice(redis_url: str) -> bool:
    client = redis.Redis.from_url(redis_url)
    try:
        first = client.hget(keys.beat(), "ticks")
        return first is not None and int(first) >= 2
    finally:
        client.close()
