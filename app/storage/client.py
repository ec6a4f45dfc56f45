"""Redis connections and the Lua scripts, loaded once per process from `storage/lua/`."""
from __future__ import annotations

import _socket
import socket
from functools import cached_property
from pathlib import Path

import redis
from redis.connection import parse_url
from redis.maint_notifications import MaintNotificationsConfig

LUA_DIR = Path(__file__).with_name("lua")

# Short socket timeouts so that a Redis outage answers 503 within seconds instead of hanging.
# No htq command blocks inside Redis: long polls wait on pub/sub (storage/notify.py).
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
# Connections per process. Past this, callers wait (up to SOCKET_TIMEOUT_S) for a free one instead
# of failing: hundreds of long polls in one gevent web worker may wake and query at the same moment
# (redis-py's default pool raises "Too many connections" past 100).
MAX_CONNECTIONS = 64


class CheapReadinessCheck:
    """Before the pool hands out a connection, redis-py checks that no reply is left unread on it
    and that the server has not closed it, with a poll of timeout 0. Under gevent (the web
    server) that poll is a trip through the event loop, ~120 µs, a third of the cost of a queue
    request. A non-blocking peek at the socket answers both questions with one system call: it
    reads a byte (a reply waits), nothing (the server closed it) or would block (neither). It is
    made through the C socket type, which gevent's monkey-patching leaves alone, so it never yields.
    """

    def can_read(self, timeout: float = 0) -> bool:
        reader = getattr(self._parser, "_reader", None)  # hiredis' reader, whose buffer we can ask
        if timeout or self._sock is None or reader is None:
            return super().can_read(timeout)
        if reader.has_data():
            return True
        peek = _socket.socket(fileno=self._sock.fileno())
        try:
            peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return True  # a byte waits, or b"": the server closed the connection
        except BlockingIOError:
            return False
        except OSError:
            return True  # reset: not reusable either
        finally:
            peek.detach()


class TcpConnection(CheapReadinessCheck, redis.Connection):
    pass


class UnixConnection(CheapReadinessCheck, redis.UnixDomainSocketConnection):
    pass


CONNECTION_CLASSES = {redis.Connection: TcpConnection, redis.UnixDomainSocketConnection: UnixConnection}


def connect(redis_url: str, **options) -> redis.Redis:
    """A client whose replies are str; every value htq stores is text (JSON or base64)."""
    options.setdefault("socket_timeout", SOCKET_TIMEOUT_S)
    options.setdefault("socket_connect_timeout", CONNECT_TIMEOUT_S)
    options.setdefault("health_check_interval", 30)
    options.setdefault("max_connections", MAX_CONNECTIONS)
    options.setdefault("timeout", SOCKET_TIMEOUT_S)  # the wait for a free connection
    # Maintenance notifications are a feature of managed Redis offerings. Left "auto", every new
    # connection asks for them (a command OSS Redis refuses) and the pool skips its check for
    # unread replies.
    options.setdefault("maint_notifications_config", MaintNotificationsConfig(enabled=False))
    url_class = parse_url(redis_url).get("connection_class", redis.Connection)
    options.setdefault("connection_class", CONNECTION_CLASSES.get(url_class, url_class))  # TLS: as it is
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        redis_url, decode_responses=True, **options))


class Scripts:
    """The Lua scripts by verb: `scripts.create(keys=[...], args=[...])`, also inside pipelines.

    redis-py's Script objects run EVALSHA and load the script again after a Redis restart.
    """

    def __init__(self, client: redis.Redis):
        self._client = client
        self._loaded: dict[str, redis.commands.core.Script] = {}

    def __getattr__(self, verb: str):
        if verb.startswith("_"):
            raise AttributeError(verb)
        script = self._loaded.get(verb)
        if script is None:
            path = LUA_DIR / f"{verb}.lua"
            if not path.exists():
                raise AttributeError(f"no Lua script {path.name}")
            script = self._loaded[verb] = self._client.register_script(load_lua(path))
        return script


def load_lua(path: Path) -> str:
    """The script's text with each `--#include NAME` line replaced by that file of `lua/`."""
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("--#include "):
            line = (LUA_DIR / line.split(None, 1)[1].strip()).read_text()
        lines.append(line)
    return "\n".join(lines)


class Store:
    """A Redis client plus its scripts: what core functions receive to reach storage."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    @cached_property
    def scripts(self) -> Scripts:
        return Scripts(self.redis)

    @classmethod
    def from_url(cls, redis_url: str) -> Store:
        return cls(connect(redis_url))
