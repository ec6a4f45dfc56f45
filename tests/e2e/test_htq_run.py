"""`htq run` as a user starts it: embedded Redis, web, worker and beat; Ctrl-C stops all of it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from app.embedded import free_port
from app.processes import ROOT
from tests.support.waiting import wait_until


def htq_command() -> list[str]:
    installed = Path(sys.executable).with_name("htq")
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "app.cli"]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


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
        wait_until(lambda: _get(base + "/readyz") == 200, timeout_s=60, interval_s=0.2)
        yield proc, base, tmp_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _get(url: str) -> int | None:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None


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
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert proc.wait(40) == 0
    wait_until(lambda: not group_alive(proc.pid), timeout_s=10)
