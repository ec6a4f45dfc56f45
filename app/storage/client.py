"""Redis connections (the one factory, the one set of timeouts) and the Store that runs scripts."""
from __future__ import annotations

import _socket
import socket
from collections.abc import Mapping
from typing import Any

import redis
from redis.client import Pipeline
from redis.commands.core import Script as RedisScript
from redis.connection import parse_url
from redis.maint_notifications import MaintNotificationsConfig

from app.storage.scripts import Script

# Short socket timeouts so that a Redis outage answers 503 within seconds instead of hanging.
# No htq command blocks inside Redis: long polls wait on pub/sub (storage/notify.py).
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
# Connections per process. Past this, callers wait (up to SOCKET_TIMEOUT_S) for a free one instead
# of failing: hundreds of long polls in one gevent web worker may wake and query at the same moment
# (redis-py's default pool raises "Too many connections" past 100).
MAX_CONNECTIONS = 64
# What redis-py raises when Redis is unreachable or not ready: answered 503 with Retry-After.
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError)
# What a write refused at `maxmemory` raises (under the `noeviction` policy htq requires): answered
# 503 with Retry-After too. Reads and deletes still work then.
OUT_OF_MEMORY = redis.exceptions.OutOfMemoryError
# How Redis before 7 reports, inside a script's error, a write it refused at maxmemory.
_SCRIPT_OUT_OF_MEMORY = "-OOM command not allowed"


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


class OutOfMemoryReplies:
    """A script's write refused at maxmemory raises OUT_OF_MEMORY, as any other refused write does.

    Redis 7 answers such a script with an "-OOM ..." error, which redis-py raises as
    OutOfMemoryError; Redis 6 wraps it in a script error ("ERR Error running script ...: -OOM
    command not allowed ..."), a plain ResponseError. Turned into OutOfMemoryError here, where
    every reply is read (commands, scripts, pipelines), so nothing above has to know the wording.
    Redis checks memory only before a script's first write, so a refused script wrote nothing.
    """

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)
        except redis.ResponseError as exc:
            if type(exc) is redis.ResponseError and _SCRIPT_OUT_OF_MEMORY in str(exc):
                raise OUT_OF_MEMORY(str(exc)) from None
            raise


class TcpConnection(CheapReadinessCheck, OutOfMemoryReplies, redis.Connection):
    pass


class UnixConnection(CheapReadinessCheck, OutOfMemoryReplies, redis.UnixDomainSocketConnection):
    pass


class TlsConnection(OutOfMemoryReplies, redis.SSLConnection):
    pass  # no CheapReadinessCheck: TLS buffers what it decrypted, a peek at the socket cannot see it


CONNECTION_CLASSES = {redis.Connection: TcpConnection, redis.UnixDomainSocketConnection: UnixConnection,
                      redis.SSLConnection: TlsConnection}


def evicting_policy(client: redis.Redis) -> str | None:
    """Redis's maxmemory-policy when it may delete keys to make room (anything but `noeviction`),
    else None. Read from INFO, which managed Redis services answer even where CONFIG is disabled."""
    policy = client.info("memory").get("maxmemory_policy", "noeviction")
    return None if policy == "noeviction" else policy


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
    options.setdefault("connection_class", CONNECTION_CLASSES.get(url_class, url_class))
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        redis_url, decode_responses=True, **options))


class Store:
    """A Redis client and the scripts loaded through it: the one handle storage functions take.

    Scripts run with EVALSHA; redis-py loads a script again when Redis has lost it (a restart)."""

    def __init__(self, client: redis.Redis):
        self.redis = client
        self._loaded: dict[Script, RedisScript] = {}

    @classmethod
    def from_url(cls, redis_url: str) -> Store:
        return cls(connect(redis_url))

    def run(self, script: Script, keys: Mapping[str, Any], args: Mapping[str, Any], pipeline: Pipeline | None = None):
        """Run `script` with its KEYS and ARGV by name; with `pipeline`, queue it there instead."""
        loaded = self._loaded.get(script)
        if loaded is None:
            loaded = self._loaded[script] = self.redis.register_script(script.source)
        key_values, arg_values = script.inputs(keys, args)
        return loaded(keys=key_values, args=arg_values, client=pipeline)

    def pipeline(self, transaction: bool = False) -> Pipeline:
        return self.redis.pipeline(transaction=transaction)

    def ping(self) -> None:
        """Raises redis.RedisError when Redis does not answer."""
        self.redis.ping()

    def close(self) -> None:
        self.redis.close()
