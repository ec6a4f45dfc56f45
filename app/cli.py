"""The `htq` command: run everything at once, or one component, or the line-by-line file client."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click
import requests

import config as config_package
from app.embedded import RedisServer
from config.settings import ConfigError, load_settings

GUNICORN_CONFIG = Path(config_package.__file__).with_name("gunicorn.py")
DATA_DIR = Path(".htq")
STOP_TIMEOUT_S = 40  # above gunicorn's graceful_timeout


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


# -- htq client: the earlier file client's job, on the native queue API -------------------------

CLIENT_BATCH = 100  # messages per push, receive and ack (the API's batch limit)
CLIENT_BATCH_BYTES = 4 * 1024 * 1024  # a push request stays well under the server's request cap
CLIENT_LOCK_S = 120  # what a read holds a batch for while it writes and acknowledges it
CLIENT_MAX_WAIT_S = 20  # the API's longest receive wait
CLIENT_TIMEOUT_S = 30


class QueueMissing(Exception):
    """The queue does not exist (yet): nobody has pushed to it."""


class QueueClient:
    """The /v1/queues calls the file client makes, over one keep-alive session; every failure is
    a ClickException with a message that says what went wrong."""

    def __init__(self, url: str, queue: str, token: str | None):
        self.base = url.rstrip("/")
        self.queue = queue
        self.token = token
        self.queue_url = f"{self.base}/v1/queues/{requests.utils.quote(queue, safe='')}"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, timeout_s: float = CLIENT_TIMEOUT_S) -> Any:
        url = self.queue_url + path
        try:
            response = self.session.request(method, url, json=body, timeout=(10, timeout_s))
        except requests.ConnectionError as exc:
            raise click.ClickException(f"cannot reach {self.base}: {exc}") from None
        except requests.RequestException as exc:
            raise click.ClickException(f"{method} {url} failed: {exc}") from None
        if response.ok:
            return response.json() if response.content else None
        try:
            error = response.json()
        except ValueError:
            error = {}
        message = error.get("message") if isinstance(error, dict) else None
        if response.status_code == 404 and str(message).startswith("No queue"):
            raise QueueMissing(message)
        detail = f": {message}" if message else ""
        if error.get("errors") if isinstance(error, dict) else None:
            detail += f" {json.dumps(error['errors'])}"
        hint = " (give a token with --token or HTQ_TOKEN)" if response.status_code == 401 else ""
        raise click.ClickException(f"{method} {url}: HTTP {response.status_code}{detail}{hint}")

    def push(self, lines: list[str], first_line: int) -> None:
        """Push lines in order; a batch the server finds too large is split, and a single line
        it refuses is named."""
        try:
            self.call("POST", "/messages/batch", {"messages": [{"body": line} for line in lines]})
        except click.ClickException as exc:
            if "HTTP 413" not in exc.message:
                raise
            if len(lines) == 1:
                raise click.ClickException(f"line {first_line} is too large for the server: {exc.message}") from None
            half = len(lines) // 2
            self.push(lines[:half], first_line)
            self.push(lines[half:], first_line + half)

    def receive(self, wait_s: float) -> list[dict]:
        return self.call("POST", "/messages/receive", {"max": CLIENT_BATCH, "visibility_timeout": CLIENT_LOCK_S,
                                                       "wait": wait_s}, timeout_s=wait_s + CLIENT_TIMEOUT_S)["messages"]

    def ack(self, messages: list[dict]) -> list[dict]:
        items = [{"id": message["id"], "receipt": message["receipt"]} for message in messages]
        return self.call("POST", "/messages/ack", {"messages": items})["failed"]

    def pending(self) -> int:
        try:
            queue = self.call("GET", "")
        except QueueMissing:
            return 0
        return queue["visible"] + queue["in_flight"] + queue["delayed"]


class NoProgress:
    length = 0

    def update(self, steps: int) -> None:
        pass


@contextmanager
def progress(length: int, label: str) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal; nothing otherwise (pipes, files, CI)."""
    if not sys.stderr.isatty():
        yield NoProgress()
        return
    with click.progressbar(length=max(length, 1), label=label, file=sys.stderr, show_pos=True) as bar:
        yield bar


def message_line(body: Any) -> bytes:
    """A received message as a line: text as is, any other JSON as compact JSON text."""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


token_option = click.option("--token", envvar="HTQ_TOKEN", default=None,
                            help="Bearer token, when the server sets HTQ_API_TOKENS. Default: HTQ_TOKEN.")


@main.group()
def client() -> None:
    """Move a text file through a queue line by line, over the queue API at URL."""


@client.command("write")
@click.argument("url")
@click.argument("queue")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@token_option
def client_write(url: str, queue: str, file: str, token: str | None) -> None:
    """Push FILE (UTF-8 text, `-` for stdin) to QUEUE, one message per line, in order."""
    api = QueueClient(url, queue, token)
    size = os.path.getsize(file) if file != "-" else 0
    pushed = 0
    try:
        with click.open_file(file, "rb") as source, progress(size, f"write {queue}") as bar:
            batch: list[str] = []
            batch_bytes = 0
            for number, raw in enumerate(source, 1):
                try:
                    batch.append(raw[:-1].decode("utf-8") if raw.endswith(b"\n") else raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise click.ClickException(f"{file}: line {number} is not UTF-8 text") from None
                batch_bytes += len(raw)
                if len(batch) == CLIENT_BATCH or batch_bytes >= CLIENT_BATCH_BYTES:
                    api.push(batch, pushed + 1)
                    pushed += len(batch)
                    bar.update(batch_bytes)
                    batch, batch_bytes = [], 0
            if batch:
                api.push(batch, pushed + 1)
                pushed += len(batch)
                bar.update(batch_bytes)
    except OSError as exc:
        raise click.ClickException(f"{file}: {exc.strerror or exc}") from None
    except click.ClickException as exc:
        exc.message += f" ({pushed} lines were pushed before this)"
        raise
    click.echo(f"pushed {pushed} lines from {file} to {queue}", err=True)


@client.command("read")
@click.argument("url")
@click.argument("queue")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, allow_dash=True))
@click.option("--idle", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Stop once the queue has stayed empty for this many seconds.")
@click.option("--append", is_flag=True, help="Add to FILE instead of replacing it.")
@token_option
def client_read(url: str, queue: str, file: str, idle: float, append: bool, token: str | None) -> None:
    """Pull QUEUE into FILE (`-` for stdout), one line per message, until it stays empty for --idle
    seconds. Each batch is acknowledged once its lines are written and flushed, so a read that
    stops half-way loses nothing: what it did not write comes back to the queue."""
    api = QueueClient(url, queue, token)
    written = unacked = 0
    try:
        with click.open_file(file, "ab" if append else "wb") as out, \
                progress(api.pending(), f"read {queue}") as bar:
            written, unacked = pull_lines(api, out, idle, bar)
    except OSError as exc:
        raise click.ClickException(f"{file}: {exc.strerror or exc}") from None
    if unacked:
        click.echo(f"warning: {unacked} lines were written but could not be acknowledged (their lock had "
                   f"ended); they may be read again", err=True)
    click.echo(f"read {written} lines from {queue} into {file}", err=True)


def pull_lines(api: QueueClient, out: IO[bytes], idle_s: float, bar: Any) -> tuple[int, int]:
    """(lines written, lines not acknowledged) once nothing arrived for idle_s seconds.

    A batch is acknowledged once its lines are written and flushed; that acknowledgement runs
    while the next batch is received (on its own connection), and the one after waits for it."""
    written = unacked = 0
    acker = QueueClient(api.base, api.queue, api.token)
    pending_ack: Future | None = None
    last_seen = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as executor:
        while (remaining := idle_s - (time.monotonic() - last_seen)) > 0:
            try:
                messages = api.receive(min(remaining, CLIENT_MAX_WAIT_S))
            except QueueMissing:
                time.sleep(min(0.25, remaining))  # nobody pushed yet: a queue appears with its first message
                continue
            if not messages:
                continue
            out.write(b"".join(message_line(message["body"]) for message in messages))
            out.flush()
            if pending_ack is not None:
                unacked += len(pending_ack.result())
            pending_ack = executor.submit(acker.ack, messages)
            written += len(messages)
            bar.length = max(bar.length, written)  # more arrived than the queue held at the start
            bar.update(len(messages))
            last_seen = time.monotonic()
        if pending_ack is not None:
            unacked += len(pending_ack.result())
    return written, unacked


if __name__ == "__main__":
    main()
