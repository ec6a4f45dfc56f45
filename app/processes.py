"""htq's own processes started as children: web server, Celery worker and beat, against a Redis.

What the tests and the benches start to run htq as the Procfile does: each child in its own
process group, its output in a log file, stopped and reaped at the end. No test framework here.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from app.embedded import RedisServer, die_with_parent
from config.settings import load_settings

# The directory holding the app, workers and config packages: children run there, with it on
# their PYTHONPATH, so `-c config/gunicorn.py` and `-A workers` resolve as in a checkout.
ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# Worker-to-worker chatter (event heartbeats, mingle at start, gossip) that a short-lived worker
# on its own does without; production workers (Procfile) keep it.
SOLO_WORKER_OPTIONS = ("--without-heartbeat", "--without-mingle", "--without-gossip")


def web_argv(bind: str, app: str = "app:create_app()", root: Path = ROOT) -> list[str]:
    """gunicorn serving htq as the Procfile's `web` does, on `bind` (host:port), with the gunicorn
    settings of the checkout at `root` (this one unless given)."""
    return [sys.executable, "-m", "gunicorn", "-c", str(root / "config" / "gunicorn.py"), "--bind", bind, app]


def celery_argv(*args: str, app: str = "workers") -> list[str]:
    """`celery -A workers ...`: the Procfile's `worker` and `beat`, Flower, inspect."""
    return [sys.executable, "-m", "celery", "-A", app, *args]


class TemporaryRedis(RedisServer):
    """The embedded Redis in a fresh temporary directory, removed by cleanup()."""

    def __init__(self):
        super().__init__(Path(tempfile.mkdtemp(prefix="htq-redis-")))

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def service_env(redis_url: str, **extra: str) -> dict[str, str]:
    """This process's environment without any HTQ_, CELERY_ or WEBHOOK_ setting, on `redis_url`,
    private targets allowed (everything runs on 127.0.0.1), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTQ_", "CELERY_", "WEBHOOK_"))}
    env.update({"REDIS_URL": redis_url, "HTQ_ALLOW_PRIVATE_TARGETS": "1", "PYTHONPATH": str(ROOT),
                "LOG_LEVEL": "INFO"})
    env.update(extra)
    return env


class ServiceProcesses:
    """Children started with `env`, each in its own process group with its output in
    `logdir/<name>.log`; stop_all() stops and reaps every one.

    With `die_with_parent`, a child gets SIGTERM if this process dies without stopping it (Linux
    prctl in the child before exec; only for callers without threads, as preexec_fn requires).

    Children run from `root`, a checkout of htq (ROOT, this one, unless given): a bench comparing
    two versions starts each one's processes from its own checkout, with `root` as the PYTHONPATH
    of `env` too (service_env sets ROOT there).
    """

    def __init__(self, env: dict[str, str], logdir: Path, die_with_parent: bool = False, root: Path = ROOT):
        self.env = env
        self.logdir = Path(logdir)
        self.die_with_parent = die_with_parent
        self.root = Path(root)
        self.procs: dict[str, subprocess.Popen] = {}

    def start_web(self, port: int, app: str = "app:create_app()", name: str = "web",
                  ready_path: str = "/healthz") -> str:
        """gunicorn as the Procfile runs it, on 127.0.0.1:port; returns its base URL once
        `ready_path` answers."""
        self.start(name, web_argv(f"127.0.0.1:{port}", app, self.root))
        base = f"http://127.0.0.1:{port}"
        self.wait_answering(name, base + ready_path)
        return base

    def start_worker(self, name: str = "worker", concurrency: int = 4, pool: str | None = None, app: str = "workers",
                     options: Sequence[str] = SOLO_WORKER_OPTIONS) -> subprocess.Popen:
        """`celery -A <app> worker` named `<name>@<host>`, on `pool` (the one `env` configures,
        HTQ_WORKER_POOL or the default, unless given); give `options=()` to run it exactly as the
        Procfile does."""
        pool = pool or load_settings(self.env).worker_pool
        # Celery reads `-P prefork` (its default) as "the configured pool": the settings say what
        # the command line says, and the worker sizes its connections by them.
        return self.start(name, celery_argv("worker", "-l", self._log_level(), "-c", str(concurrency), "-P", pool,
                                            "-n", f"{name}@%h", *options, app=app),
                          env={**self.env, "HTQ_WORKER_POOL": pool, "HTQ_CONCURRENCY": str(concurrency)})

    def start_beat(self, name: str = "beat") -> subprocess.Popen:
        """`celery -A workers beat`, its schedule file in the log directory."""
        schedule = self.logdir / f"{name}-schedule"
        return self.start(name, celery_argv("beat", "-l", self._log_level(), "-s", str(schedule)))

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Any child: `argv` run from `root` with `env` (this object's unless given)."""
        with open(self.logdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, cwd=self.root, env=env or self.env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=die_with_parent if self.die_with_parent else None)
        self.procs[name] = proc
        return proc

    def wait_answering(self, name: str, url: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until `url` answers below 500; RuntimeError with the child's log if it exits or the time is up."""
        deadline = time.monotonic() + timeout_s
        while not _answers(url):
            self._check_starting(name, deadline)
            time.sleep(0.1)

    def wait_log(self, name: str, text: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until the child's log contains `text` (a worker's " ready.", beat's "beat: Starting")."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log(name):
            self._check_starting(name, deadline)
            time.sleep(0.1)

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str, sig: int) -> None:
        os.killpg(self.procs[name].pid, sig)
        self.procs[name].wait(20)

    def stop(self, *names: str) -> None:
        """Stop these children and whatever they left in their process groups."""
        procs = [(name, self.procs.pop(name)) for name in names if name in self.procs]
        for name, proc in procs:
            if proc.poll() is None:
                # SIGINT is gunicorn's quick shutdown: no waiting out long polls' graceful timeout.
                _killpg(proc.pid, signal.SIGINT if name.startswith("web") else signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for _, proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _killpg(proc.pid, signal.SIGKILL)  # pool children left behind, if any

    def stop_all(self) -> None:
        self.stop(*reversed(list(self.procs)))

    def _log_level(self) -> str:
        return self.env.get("LOG_LEVEL", "INFO")

    def _check_starting(self, name: str, deadline: float) -> None:
        if self.procs[name].poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start; its log:\n{self.log(name)[-3000:]}")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code < 500
    except (requests.ConnectionError, requests.Timeout):
        return False


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
