"""The `htq` command: run everything at once, or one component; and `htq client`, the file client's commands."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from app import file_client
from app.core import clock
from app.embedded import RedisServer, die_with_parent
from app.processes import celery_argv, web_argv
from app.readiness import NotReady, wait_ready
from app.storage.client import Store
from config.settings import DEFAULT_WORKER_POOL, WORKER_POOLS, ConfigError, Settings, load_settings

STOP_TIMEOUT_S = 40  # above gunicorn's graceful_timeout
READY_TIMEOUT_S = 60  # web, worker and beat up (a first start on a slow machine takes ~5 s)


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
@click.option("--pool", type=click.Choice(sorted(WORKER_POOLS)), default=None,
              help=f"Worker pool. Default: HTQ_WORKER_POOL, else {DEFAULT_WORKER_POOL}.")
@click.option("--concurrency", type=int, default=None,
              help="Worker processes, threads or greenlets. Default: HTQ_CONCURRENCY, else the pool's default.")
@click.option("--virtual-clock", is_flag=True,
              help="HTQ_CLOCK=virtual: time that POST /v1/clock/advance moves ahead (development and tests).")
def run(host: str, port: int | None, pool: str | None, concurrency: int | None, virtual_clock: bool) -> None:
    """Web server, worker and beat together; an embedded Redis under ./.htq/ (HTQ_DATA_DIR) when
    REDIS_URL is unset.

    Its banner comes once web, worker and beat are all up, with the REDIS_URL that
    `celery -A workers inspect|control|events|flower` take to reach this htq.

    Ctrl-C or SIGTERM stops all of it: web, worker and beat first (the worker puts the tasks it
    holds back on the broker), Redis last. Ctrl-C again while stopping tells the worker to stop
    at once (Celery's cold shutdown). Private targets (127.0.0.1 ...) are allowed unless
    HTQ_ALLOW_PRIVATE_TARGETS says otherwise, so local demos work.
    """
    _check_settings()
    env = dict(os.environ)
    env.setdefault("HTQ_ALLOW_PRIVATE_TARGETS", "1")
    if pool:
        env["HTQ_WORKER_POOL"] = pool
    if concurrency:
        env["HTQ_CONCURRENCY"] = str(concurrency)
    settings = load_settings(env)
    port = port or settings.http_port
    if virtual_clock:
        env["HTQ_CLOCK"] = "virtual"
    # Every child runs in a session of its own, out of reach of the terminal: a Ctrl-C reaches
    # this process only, which hands it on in order. (Sent to the whole foreground group, it
    # stopped Redis at once, and the worker could not put the tasks it held back on the broker.)
    children: dict[str, subprocess.Popen] = {}
    received: list[int] = []

    def on_signal(signum: int, _frame) -> None:
        received.append(signum)
        if len(received) > 1:
            _signal_children(children.values(), signum)  # again: as a second Ctrl-C would

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    redis_server = None
    ready = False
    data_dir = Path(settings.data_dir).resolve()
    try:
        if not env.get("REDIS_URL") and not settings.redis_sentinels:
            redis_server = RedisServer(data_dir, detached=True)
            redis_server.start()
            env["REDIS_URL"] = redis_server.url
        data_dir.mkdir(parents=True, exist_ok=True)
        env["HTQ_DATA_DIR"] = str(data_dir)  # beat's schedule file goes there
        started_ms = clock.real_ms()  # the tick records the system's time (workers/tasks/beat.py)
        children["web"] = _start_child(web_argv(f"{host}:{port}"), env)
        children["worker"] = _start_child(
            celery_argv("worker", "-l", "INFO", "-P", settings.worker_pool, "-c", str(settings.concurrency)), env)
        children["beat"] = _start_child(celery_argv("beat", "-l", "INFO"), env)
        base = f"http://{host}:{port}"
        ready = _wait_ready(base, load_settings(env), children, started_ms, received)
        if ready:
            click.echo(f"htq listening on {base} (API docs at /docs). Ctrl-C stops.\n"
                       f"  REDIS_URL={env['REDIS_URL']} (celery -A workers inspect|control|events|flower "
                       f"reach this htq with it)\n"
                       f"  data in {data_dir}")
        while ready and not received:
            if any(child.poll() is not None for child in children.values()):
                click.echo("a component exited; stopping htq", err=True)
                break
            time.sleep(0.2)
    finally:
        _stop_children(children, received[0] if received else signal.SIGTERM)
        if redis_server:
            click.echo("htq: web, worker and beat stopped; stopping Redis", err=True)
            redis_server.stop()
    failed = [child for child in children.values() if child.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    sys.exit(1 if (failed or not ready) and not received else 0)


def _wait_ready(base: str, settings: Settings, children: dict[str, subprocess.Popen], since_ms: int,
                received: list[int]) -> bool:
    """Until web, worker and beat are up (app/readiness.py); False, with why on stderr, if one
    exits, a signal comes or READY_TIMEOUT_S passes."""
    def stopped() -> str | None:
        if received:
            return "stopped while starting"
        exited = [name for name, child in children.items() if child.poll() is not None]
        return f"{', '.join(exited)} exited while starting" if exited else None

    store = Store.from_settings(settings)  # REDIS_URL, or the master its Sentinels name
    try:
        wait_ready(base, store, children["worker"].pid, since_ms, READY_TIMEOUT_S, stopped)
        return True
    except NotReady as exc:
        click.echo(f"htq: {exc}; stopping", err=True)
        return False
    finally:
        store.close()


def _start_child(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A child of `htq run` in a session of its own, sent SIGTERM should `htq run` die first."""
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=die_with_parent)


def _signal_children(children: Iterable[subprocess.Popen], signum: int) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signum)


def _stop_children(children: dict[str, subprocess.Popen], signum: int) -> None:
    """Each child still running gets `signum` (gunicorn and Celery's main processes stop their own
    children), and is waited for; one still running after STOP_TIMEOUT_S is killed, with
    whatever its process group holds."""
    _signal_children(children.values(), signum)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(child.pid)
            child.wait()
        _kill_group(child.pid)  # anything its own children left behind


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", type=int, default=None, help="Default: PORT or HTTP_PORT, else 8080.")
def server(host: str, port: int | None) -> None:
    """The web server alone (gunicorn with gevent workers): the Procfile's `web`."""
    _check_settings()
    os.execv(sys.executable, web_argv(f"{host}:{port or load_settings().http_port}"))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """A Celery worker (`celery -A workers worker`); extra options go to Celery."""
    _check_settings()
    os.execv(sys.executable, celery_argv("worker", *celery_args))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Celery beat (`celery -A workers beat`). Run exactly one."""
    _check_settings()
    os.execv(sys.executable, celery_argv("beat", *celery_args))


# -- htq client: the earlier file client's job, on the native queue API (app/file_client.py) -----

TOKEN_HINT = " (give a token with --token or HTQ_TOKEN)"


def _client_failure(exc: file_client.ClientError) -> click.ClickException:
    return click.ClickException(f"{exc}{TOKEN_HINT if exc.status == 401 else ''}")


@contextmanager
def progress(length: int, label: str) -> Iterator[file_client.Progress]:
    """A progress bar on stderr when it is a terminal; nothing otherwise (pipes, files, CI)."""
    if not sys.stderr.isatty():
        yield file_client.NoProgress()
        return
    with click.progressbar(length=max(length, 1), label=label, file=sys.stderr, show_pos=True) as bar:
        yield bar


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
    api = file_client.QueueClient(url, queue, token)
    size = os.path.getsize(file) if file != "-" else 0
    pushed = 0
    try:
        with click.open_file(file, "rb") as source, progress(size, f"write {queue}") as bar:
            for lines, line_bytes in file_client.push_lines(api, source):
                pushed += lines
                bar.update(line_bytes)
    except OSError as exc:
        raise click.ClickException(f"{file}: {exc.strerror or exc}") from None
    except file_client.LineNotText as exc:
        raise click.ClickException(f"{file}: {exc} ({pushed} lines were pushed before this)") from None
    except file_client.ClientError as exc:
        failure = _client_failure(exc)
        failure.message += f" ({pushed} lines were pushed before this)"
        raise failure from None
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
    api = file_client.QueueClient(url, queue, token)
    try:
        with click.open_file(file, "ab" if append else "wb") as out, \
                progress(api.pending(), f"read {queue}") as bar:
            written, unacked = file_client.pull_lines(api, out, idle, bar)
    except OSError as exc:
        raise click.ClickException(f"{file}: {exc.strerror or exc}") from None
    except file_client.ClientError as exc:
        raise _client_failure(exc) from None
    if unacked:
        click.echo(f"warning: {unacked} lines were written but could not be acknowledged (their lock had "
                   f"ended); they may be read again", err=True)
    click.echo(f"read {written} lines from {queue} into {file}", err=True)


if __name__ == "__main__":
    main()
