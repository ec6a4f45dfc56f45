"""Redis connections (the one factory, the one set of timeouts) and the Store that runs scripts."""
from __future__ import annotations

import _socket
import socket
from collections.abc import Mapping
from typing import Any

import hiredis
import redis
from redis.client import Pipeline
from redis.commands.core import Script as RedisScript
from redis.connection import parse_url
from redis.maint_notifications import MaintNotificationsConfig
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection, SentinelManagedSSLConnection

from app.storage.scripts import Script

# Short socket timeouts so that a Redis outage answers 503 within seconds instead of hanging.
# No htq command blocks inside Redis: long polls wait on pub/sub (storage/notify.py).
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0
# Connections per process. Past this, callers wait (up to SOCKET_TIMEOUT_S) for a free one instead
# of failing: hundreds of long polls in one gevent web worker may wake and query at the same moment
# (redis-py's default pool raises "Too many connections" past 100).
MAX_CONNECTIONS = 64
# What redis-py raises when Redis is unreachable or not ready: answered 503 with Retry-After. A
# write sent to a master demoted to replica (a failover under way) is refused with ReadOnlyError;
# the Sentinels not knowing a master raise MasterNotFoundError, a ConnectionError.
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.BusyLoadingError,
               redis.exceptions.ReadOnlyError)
# What a write refused at `maxmemory` raises (under the `noeviction` policy htq requires): answered
# 503 with Retry-After too. Reads and deletes still work then.
OUT_OF_MEMORY = redis.exceptions.OutOfMemoryError
# How Redis before 7 reports, inside a script's error, a write it refused at maxmemory, and a
# write refused by a replica (the master this connection reached has been demoted).
_SCRIPT_OUT_OF_MEMORY = "-OOM command not allowed"
_SCRIPT_READ_ONLY = "-READONLY "


# What a replication barrier publishes on: nobody subscribes; PUBLISH is only a replicated write.
BARRIER_CHANNEL = "htq:barrier"


class NotReplicated(redis.ConnectionError):
    """A write was made on the master but fewer replicas than HTQ_REDIS_MIN_REPLICAS confirmed it
    within HTQ_REDIS_WAIT_TIMEOUT: it may be lost in a failover, so it is not acknowledged (503;
    the client retries, with its Idempotency-Key where it has one)."""


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
        # Never a wait: a socket made from a descriptor takes socket.getdefaulttimeout(), which
        # some library may have set (a Celery worker as it stops), and with a timeout a recv
        # first waits for data that long, then reads the idle connection as broken. The
        # descriptor is non-blocking already: the connection has a timeout of its own.
        peek.settimeout(0.0)
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
            if type(exc) is redis.ResponseError and _SCRIPT_READ_ONLY in str(exc):
                raise redis.exceptions.ReadOnlyError(str(exc)) from None  # Redis 6: nothing was written
            raise


class FollowsFailover:
    """A connection to the master the Sentinels name. A write refused as read-only (the master was
    demoted to replica) closes it, so that the next command asks the Sentinels again; the caller
    gets a ConnectionError, answered 503. redis-py's SentinelManagedConnection does the same for a
    plain command's ReadOnlyError, but not for a script's (raised above it, by OutOfMemoryReplies)."""

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)
        except redis.exceptions.ReadOnlyError as exc:
            self.disconnect()
            raise redis.ConnectionError(f"the master was demoted to replica ({exc})") from None


_INT64_MIN, _INT64_MAX = -2 ** 63, 2 ** 63 - 1


class _HiredisPacker:
    """Packs a command with hiredis straight from its arguments; `fallback` (redis-py's packer)
    takes what hiredis refuses and raises redis-py's errors for it."""

    def __init__(self, fallback) -> None:
        self.fallback = fallback

    def pack(self, *args) -> list[bytes]:
        # "CLIENT SETNAME" and such: redis-py splits them. An int past 64 bits goes to redis-py too:
        # hiredis 3.5 crashes the process on one too long to print (4,300 digits), redis-py raises.
        if type(args[0]) is str and " " not in args[0] \
                and not any(type(arg) is int and not _INT64_MIN <= arg <= _INT64_MAX for arg in args):
            try:
                return [hiredis.pack_command(args)]
            except (TypeError, UnicodeError):
                pass  # a bool, bytearray, an enum or a lone surrogate
        return self.fallback.pack(*args)


class HiredisPacking:
    """Commands packed by hiredis, which takes str (as UTF-8), int, float and bytes as they are.
    redis-py's own packer first turns each argument into bytes in Python, ~1 µs apiece: most of
    the cost of a script call for a task message's 50 requests (~800 values: ~800 µs, ~160 µs
    packed here). Anything else goes to redis-py's packer, as before."""

    def _construct_command_packer(self, packer):
        packer = super()._construct_command_packer(packer)
        if redis.utils.HIREDIS_AVAILABLE and self.encoder.encoding.lower().replace("-", "") == "utf8" \
                and self.encoder.encoding_errors == "strict":
            return _HiredisPacker(packer)
        return packer


class TcpConnection(HiredisPacking, CheapReadinessCheck, OutOfMemoryReplies, redis.Connection):
    pass


class UnixConnection(HiredisPacking, CheapReadinessCheck, OutOfMemoryReplies, redis.UnixDomainSocketConnection):
    pass


class TlsConnection(HiredisPacking, OutOfMemoryReplies, redis.SSLConnection):
    pass  # no CheapReadinessCheck: TLS buffers what it decrypted, a peek at the socket cannot see it


class SentinelTcpConnection(FollowsFailover, HiredisPacking, CheapReadinessCheck, OutOfMemoryReplies,
                            SentinelManagedConnection):
    pass


class SentinelTlsConnection(FollowsFailover, HiredisPacking, OutOfMemoryReplies, SentinelManagedSSLConnection):
    pass


CONNECTION_CLASSES = {redis.Connection: TcpConnection, redis.UnixDomainSocketConnection: UnixConnection,
                      redis.SSLConnection: TlsConnection}


class SentinelBlockingConnectionPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's pool of connections to the master its Sentinels name, which waits for a free
    connection as BlockingConnectionPool does instead of raising past max_connections."""


def evicting_policy(client: redis.Redis) -> str | None:
    """Redis's maxmemory-policy when it may delete keys to make room (anything but `noeviction`),
    else None. Read from INFO, which managed Redis services answer even where CONFIG is disabled."""
    policy = client.info("memory").get("maxmemory_policy", "noeviction")
    return None if policy == "noeviction" else policy


def connect(redis_url: str, sentinels: tuple[tuple[str, int], ...] = (), master: str = "",
            sentinel_password: str = "", **options) -> redis.Redis:
    """A client whose replies are str; every value htq stores is text (JSON or base64).

    With `sentinels`, the client talks to the master the Sentinels name `master` and follows it
    through failovers; `redis_url` then gives only the database, credentials and TLS."""
    options.setdefault("socket_timeout", SOCKET_TIMEOUT_S)
    options.setdefault("socket_connect_timeout", CONNECT_TIMEOUT_S)
    options.setdefault("health_check_interval", 30)
    options.setdefault("max_connections", MAX_CONNECTIONS)
    options.setdefault("timeout", SOCKET_TIMEOUT_S)  # the wait for a free connection
    # Maintenance notifications are a feature of managed Redis offerings. Left "auto", every new
    # connection asks for them (a command OSS Redis refuses) and the pool skips its check for
    # unread replies.
    options.setdefault("maint_notifications_config", MaintNotificationsConfig(enabled=False))
    url_options = parse_url(redis_url)
    url_class = url_options.get("connection_class", redis.Connection)
    if sentinels:
        return _sentinel_master(url_options, sentinels, master, sentinel_password, url_class, options)
    options.setdefault("connection_class", CONNECTION_CLASSES.get(url_class, url_class))
    return redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
        redis_url, decode_responses=True, **options))


def connect_to(settings, **options) -> redis.Redis:
    """connect() to the Redis of `settings` (a config.Settings): REDIS_URL, or its Sentinels."""
    return connect(settings.redis_url, settings.redis_sentinels, settings.redis_sentinel_master,
                   settings.redis_sentinel_password, **options)


def _sentinel_master(url_options: dict, sentinels, master: str, sentinel_password: str, url_class,
                     options: dict) -> redis.Redis:
    tls = issubclass(url_class, redis.SSLConnection)
    kwargs = {k: v for k, v in url_options.items() if k not in ("host", "port", "path", "connection_class")}
    kwargs.update(options)
    kwargs["connection_class"] = SentinelTlsConnection if tls else SentinelTcpConnection
    sentinel_kwargs = {"socket_timeout": CONNECT_TIMEOUT_S, "socket_connect_timeout": CONNECT_TIMEOUT_S}
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    # The Sentinels' own connections; the master's take the pool options passed to master_for.
    manager = Sentinel(list(sentinels), sentinel_kwargs=sentinel_kwargs)
    return manager.master_for(master, connection_pool_class=SentinelBlockingConnectionPool,
                              decode_responses=True, **kwargs)


class Store:
    """A Redis client and the scripts loaded through it: the one handle storage functions take.

    Scripts run with EVALSHA; redis-py loads a script again when Redis has lost it (a restart)."""

    def __init__(self, client: redis.Redis, min_replicas: int = 0, wait_timeout_ms: int = 1000):
        self.redis = client
        self.min_replicas = min_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self._loaded: dict[Script, RedisScript] = {}

    @classmethod
    def from_url(cls, redis_url: str) -> Store:
        return cls(connect(redis_url))

    @classmethod
    def from_settings(cls, settings, **options) -> Store:
        """The store of `settings` (a config.Settings): its Redis or Sentinels, and its WAIT rule;
        `options` go to the connection pool (connect())."""
        return cls(connect_to(settings, **options), settings.redis_min_replicas, settings.redis_wait_timeout_ms)

    def run(self, script: Script, keys: Mapping[str, Any], args: Mapping[str, Any], pipeline: Pipeline | None = None,
            durable: bool = False):
        """Run `script` with its KEYS and ARGV by name; with `pipeline`, queue it there instead.

        `durable`: the script accepts work, so with min_replicas it returns only once that many
        replicas hold what it wrote (WAIT on the same connection), else raises NotReplicated."""
        loaded = self._loaded.get(script)
        if loaded is None:
            loaded = self._loaded[script] = self.redis.register_script(script.source)
        key_values, arg_values = script.inputs(keys, args)
        if not durable or not self.min_replicas or pipeline is not None:
            return loaded(keys=key_values, args=arg_values, client=pipeline)
        # EVALSHA and WAIT in one round trip. (Through a pipeline, redis-py's Script would first
        # ask SCRIPT EXISTS, one more round trip per write.)
        for _ in range(2):
            pipe = self.redis.pipeline(transaction=False)
            pipe.evalsha(loaded.sha, len(key_values), *key_values, *arg_values)
            pipe.execute_command("WAIT", self.min_replicas, self.wait_timeout_ms)
            try:
                reply, acked = pipe.execute()
            except redis.exceptions.NoScriptError:  # a new master (failover) or a restarted one
                self.redis.script_load(script.source)
                continue
            self._check_replicas(acked)
            return reply
        raise redis.exceptions.NoScriptError(f"script {loaded.sha} keeps being unknown")

    def execute_durable(self, pipeline: Pipeline) -> list:
        """pipeline.execute() for writes that accept work: with min_replicas, a WAIT goes last
        and NotReplicated is raised unless enough replicas confirmed them."""
        if not self.min_replicas:
            return pipeline.execute()
        pipeline.execute_command("WAIT", self.min_replicas, self.wait_timeout_ms)
        *replies, acked = pipeline.execute()
        self._check_replicas(acked)
        return replies

    def barrier(self) -> None:
        """With min_replicas, return once that many replicas hold everything the master holds now:
        an idempotent replay answers only what a failover cannot lose. A PUBLISH is replicated, so
        WAITing for this connection's PUBLISH waits for every write before it, whoever made it."""
        if not self.min_replicas:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.publish(BARRIER_CHANNEL, "")
        pipe.execute_command("WAIT", self.min_replicas, self.wait_timeout_ms)
        self._check_replicas(pipe.execute()[1])

    def _check_replicas(self, acked) -> None:
        if int(acked) < self.min_replicas:
            raise NotReplicated(f"{acked} of the {self.min_replicas} replicas required confirmed the write "
                                f"within {self.wait_timeout_ms} ms")

    def pipeline(self, transaction: bool = False) -> Pipeline:
        return self.redis.pipeline(transaction=transaction)

    def ping(self) -> None:
        """Raises redis.RedisError when Redis does not answer."""
        self.redis.ping()

    def close(self) -> None:
        self.redis.close()
