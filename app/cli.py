"""The `htq` command: run everything at once, or one component, or the line-by-line file client."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

import config as config_package
from app.embedded import RedisServer
from config.settings import ConfigError, load_settings

GUNICORN_CONFIG = Path(config_package.__file__).with_name("gunicorn.py")
DATA_DIR = Path(".htq")
STOP_TIMEOUT_S = 20


def _server_argv(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), "--bind", f"{host}:{port}",
            "app:create_app()"]


def _celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers", *args]


def _check_settings() -> None:
    try:
        load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(package_name="htq")
def main() -> None:
    """htq: deferred HTTP requests, message queues and batch forwarding."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default: PORT or HTTP_PORT, else 8080.")
@click.option("--concurrency", type=int, default=None, help="Worker processes. Default: HTQ_CONCURRENCY, else 10.")
def run(host: str, port: int | None, concurrency: int | None) -> None:
    """Web server, worker and beat together; an embedded Redis under ./.htq/ when REDIS_URL is unset.

    Ctrl-C or SIGTERM stops all of it. Private targets (127.0.0.1 ...) are allowed unless
    HTQ_ALLOW_PRIVATE_TARGETS says otherwise, so local demos work.
    """
    _check_settings()
    settings = load_settings()
    port = port or settings.http_port
    env = dict(os.environ)
    env.setdefault("HTQ_ALLOW_PRIVATE_TARGETS", "1")
    if concurrency:
        env["HTQ_CONCURRENCY"] = str(concurrency)
    redis_server = None
    if not env.get("REDIS_URL"):
        redis_server = RedisServer(DATA_DIR.resolve())
        redis_server.start()
        env["REDIS_URL"] = redis_server.url
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        DATA_DIR.mkdir(exist_ok=True)
        children.append(subprocess.Popen(_server_argv(host, port), env=env))
        children.append(subprocess.Popen(_celery_argv("worker", "-l", "INFO", "-c", env.get("HTQ_CONCURRENCY", "10")),
                                         env=env))
        children.append(subprocess.Popen(_celery_argv("beat", "-l", "INFO",
                                                      "-s", str(DATA_DIR.resolve() / "beat-schedule")), env=env))
        where = f"embedded Redis, data in {DATA_DIR.resolve()}" if redis_server else env["REDIS_URL"]
        click.echo(f"htq listening on http://{host}:{port} (API docs at /docs; {where}). Ctrl-C stops.")
        while not stopping:
            if any(child.poll() is not None for child in children):
                click.echo("a component exited; stopping htq", err=True)
                break
            time.sleep(0.2)
    finally:
        _stop_children(children)
        if redis_server:
            redis_server.stop()
    failed = [child for child in children if child.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    sys.exit(1 if failed and not stopping else 0)


def _stop_children(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", type=int, default=None, help="Default: PORT or HTTP_PORT, else 8080.")
def server(host: str, port: int | None) -> None:
    """The web server alone (gunicorn with gevent workers): the Procfile's `web`."""
    _check_settings()
    os.execv(sys.executable, _server_argv(host, port or load_settings().http_port))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """A Celery worker (`celery -A workers worker`); extra options go to Celery."""
    _check_settings()
    os.execv(sys.executable, _celery_argv("worker", *celery_args))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Celery beat (`celery -A workers beat`). Run exactly one."""
    _check_settings()
    os.execv(sys.executable, _celery_argv("beat", *celery_args))


if __name__ == "__main__":
    main()
