"""Settings read from the environment, validated once, with the Celery configuration built from them."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DAY_S = 86400
MAX_DELAY_LIMIT_S = 3650 * DAY_S  # the largest HTQ_MAX_DELAY


class ConfigError(ValueError):
    """A setting in the environment is unusable; raised at start-up, never later."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(text: str) -> float:
    """Seconds from a number (`10`, `2.5`) or a Go-style duration (`10s`, `1m30s`, `500ms`)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pos, value = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            value += float(match.group(1)) * _DURATION_UNIT_S[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ConfigError(f"not a duration: {text!r} (use seconds or forms like 10s, 1m30s)") from None
    if value < 0:
        raise ConfigError(f"duration must not be negative: {text!r}")
    return value


def _number(env: Mapping[str, str], name: str, default, low, high, kind: type = float):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high, int)


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _number(env, name, default, low, high, float)


def _duration(env: Mapping[str, str], name: str, default: float, high: float) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = parse_duration_s(raw)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if value > high:
        raise ConfigError(f"{name} must be at most {high:g} seconds, got {raw!r}")
    return value


def _http_url(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return ""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL: {raw!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c in raw for c in " \t\r\n"):
        raise ConfigError(f"{name} must be an absolute http or https URL, got {raw!r}")
    return raw


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


SCOPE_NAMES = ("read", "publish", "consume", "admin")  # app.core.tokens.SCOPES


def _credentials(env: Mapping[str, str], name: str) -> tuple[tuple[tuple[str, str], ...], dict[str, frozenset[str]]]:
    """`AKID:SECRET[:scope+scope],...`: access key ids, their secrets, and the scopes each has
    (all, when none are given, as before scopes existed). A secret may hold ':', an id may not;
    a last ':' part made only of scope names joined by '+' is the scopes (a secret that itself
    ends so must then be followed by its scopes, `AKID:x:read:admin`)."""
    pairs, scopes = [], {}
    for entry in _list(env, name):
        key_id, sep, secret = entry.partition(":")
        granted = frozenset(SCOPE_NAMES)
        head, colon, tail = secret.rpartition(":")
        if colon and all(word in SCOPE_NAMES for word in tail.split("+")):
            secret, granted = head, frozenset(tail.split("+"))
        if not sep or not key_id.strip() or not secret:
            raise ConfigError(f"{name} must be AKID:SECRET or AKID:SECRET:scope+scope entries separated by commas")
        pairs.append((key_id.strip(), secret))
        scopes[key_id.strip()] = granted
    return tuple(pairs), scopes


def _sentinels(env: Mapping[str, str], name: str) -> tuple[tuple[str, int], ...]:
    """`host:port,...`: the Sentinels to ask where the Redis master is."""
    addresses = []
    for entry in _list(env, name):
        host, sep, port = entry.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"{name} must be host:port pairs separated by commas, got {entry!r}")
        addresses.append((host, int(port)))
    return tuple(addresses)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


# Celery worker pools htq runs on, with the concurrency each has by default (HTQ_CONCURRENCY): a
# delivery mostly waits on the network, so threads and greenlets come by the hundred, processes
# by the ten.
WORKER_POOLS = {"prefork": 10, "threads": 100, "gevent": 100}
DEFAULT_WORKER_POOL = "prefork"


def broker_url_for(redis_url: str) -> str:
    """kombu spells a unix-socket Redis `redis+socket://`; redis-py spells it `unix://`."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://"):]
    return redis_url


def sentinel_broker_url(redis_url: str, sentinels: tuple[tuple[str, int], ...]) -> str:
    """kombu's Sentinel transport URL: one `sentinel://` per Sentinel, separated by `;`, with the
    database and the master's credentials of `redis_url` on each."""
    parts = urlsplit(redis_url)
    auth = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    db = parts.path.strip("/") if parts.scheme.startswith("redis") else ""
    suffix = f"/{db}" if db else ""
    return ";".join(f"sentinel://{auth + '@' if auth else ''}{_netloc(host, port)}{suffix}" for host, port in sentinels)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Settings:
    """Everything htq reads from the environment. Build it with `load_settings()`."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = ""
    http_port: int = 8080
    worker_pool: str = DEFAULT_WORKER_POOL
    concurrency: int = WORKER_POOLS[DEFAULT_WORKER_POOL]
    api_tokens: tuple[str, ...] = ()
    sqs_credentials: tuple[tuple[str, str], ...] = ()  # (access key id, secret) pairs for /sqs
    # access key id -> the scopes its signed calls have (an id not here has them all)
    sqs_scopes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    allow_private_targets: bool = False
    allowed_hosts: tuple[str, ...] = ()
    signing_secret: str = ""
    retention_s: int = 7 * DAY_S
    max_delay_s: int = 365 * DAY_S
    max_body_bytes: int = 1024 * 1024
    response_max_bytes: int = 1024 * 1024
    default_timeout_s: float = 30.0
    horizon_s: float = 60.0
    publish_grace_s: float = 10.0
    lease_margin_s: float = 30.0
    long_poll_timeout_s: float = 10.0
    webhook_post_endpoint: str = ""
    webhook_batch_size: int = 10
    webhook_batch_interval_s: float = 10.0
    wq_visibility_timeout_ms: int = 1000
    web_concurrency: int = 2
    log_level: str = "INFO"
    log_format: str = "text"
    # What htq writes at run time (the embedded Redis of `htq run`, beat's schedule file); relative
    # paths are relative to the working directory of each process.
    data_dir: str = ".htq"
    clock: str = "real"  # or "virtual": real time plus an offset kept in Redis (app/core/clock.py)
    # The circuit breaker per destination (app/core/gates.py).
    breaker_failures: int = 10
    breaker_cooldown_s: float = 30.0
    # Redis Sentinel: where the store's and the broker's master is found, and followed after a
    # failover. REDIS_URL then gives only the database and the master's credentials.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = ""
    redis_sentinel_password: str = ""
    # Writes that accept work return once this many replicas hold them (WAIT), within this time.
    redis_min_replicas: int = 0
    redis_wait_timeout_s: float = 1.0

    # The durations scripts and scores use, in milliseconds (app.core.model.ms is the same rule
    # for API fields; config imports nothing of app).
    @property
    def horizon_ms(self) -> int:
        return _ms(self.horizon_s)

    @property
    def publish_grace_ms(self) -> int:
        return _ms(self.publish_grace_s)

    @property
    def lease_margin_ms(self) -> int:
        return _ms(self.lease_margin_s)

    @property
    def retention_ms(self) -> int:
        return _ms(self.retention_s)

    @property
    def max_request_bytes(self) -> int:
        """Cap on a whole HTTP request to the API: a batch of 100 bodies, with room for JSON."""
        return 16 * self.max_body_bytes + 64 * 1024

    @property
    def redis_wait_timeout_ms(self) -> int:
        return max(1, _ms(self.redis_wait_timeout_s))

    def broker_transport_options(self) -> dict:
        # The broker's visibility timeout must stay far above the scheduling horizon: workers
        # hold ETA tasks for at most `horizon_s`, and anything later waits in the store.
        options = {"visibility_timeout": 900, "socket_connect_timeout": 5}
        if self.redis_sentinels and not self.broker_url:
            options["master_name"] = self.redis_sentinel_master
            # Without a socket timeout, a consumer waiting on a master killed without a word would
            # wait for TCP to give up; with it, it asks the Sentinels again within seconds.
            options["socket_timeout"] = 5
            sentinel_kwargs = {"socket_timeout": 2, "socket_connect_timeout": 2}
            if self.redis_sentinel_password:
                sentinel_kwargs["password"] = self.redis_sentinel_password
            options["sentinel_kwargs"] = sentinel_kwargs
        return options

    def celery_config(self) -> dict:
        """The Celery configuration shared by the web side (publishing) and the workers."""
        if self.broker_url or not self.redis_sentinels:
            broker = broker_url_for(self.broker_url or self.redis_url)
        else:
            broker = sentinel_broker_url(self.redis_url, self.redis_sentinels)
        return {
            "broker_url": broker,
            "broker_transport_options": self.broker_transport_options(),
            "broker_connection_retry_on_startup": True,
            # An error answer from the broker (a Redis out of memory refuses even a worker's
            # start-up reads, which kombu sends in MULTI) restarts the consumer, as a lost
            # connection does, instead of stopping the worker.
            "broker_channel_error_retry": True,
            # A publish gives up within about a second when the broker is down: what was stored is
            # published again by the relay, and an API call must not hang.
            "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.3,
                                          "interval_max": 0.5},
            "task_default_queue": "htq",
            "task_serializer": "json",
            "accept_content": ["json"],
            "result_backend": None,
            "task_ignore_result": True,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 4,
            "worker_pool": self.worker_pool,
            "worker_concurrency": self.concurrency,
            "worker_hijack_root_logger": False,
            # Task events on by default, so Flower (`celery -A workers flower`) and `celery events`
            # show each delivery, batch POST and notice as it is published, received and done.
            # Beat's housekeeping ticks send none (workers/tasks/beat.py).
            "worker_send_task_events": True,
            "task_send_sent_event": True,
            # Beat's schedule file goes under the data directory, never the working directory.
            "beat_schedule_filename": os.path.join(self.data_dir, "beat-schedule"),
            "timezone": "UTC",
            "enable_utc": True,
        }


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment; a bad value raises ConfigError naming the variable."""
    env = os.environ if env is None else env
    log_format = env.get("LOG_FORMAT", "text").lower()
    if log_format not in {"text", "json"}:
        raise ConfigError(f"LOG_FORMAT must be text or json, got {log_format!r}")
    clock = env.get("HTQ_CLOCK", "real").lower()
    if clock not in {"real", "virtual"}:
        raise ConfigError(f"HTQ_CLOCK must be real or virtual, got {clock!r}")
    secret = env.get("HTQ_SIGNING_SECRET", "")
    if secret and not secret.startswith("whsec_"):
        raise ConfigError("HTQ_SIGNING_SECRET must look like whsec_<base64>")
    port_raw = env.get("PORT") or env.get("HTTP_PORT") or "8080"
    sentinels = _sentinels(env, "REDIS_SENTINELS")
    sentinel_master = env.get("REDIS_SENTINEL_MASTER", "").strip()
    if sentinels and not sentinel_master:
        raise ConfigError("REDIS_SENTINEL_MASTER must name the master's service when REDIS_SENTINELS is set")
    if sentinel_master and not sentinels:
        raise ConfigError("REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not (host:port,...)")
    redis_url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    # Under the store's 5 s socket timeout, so that a WAIT is answered before the read gives up.
    wait_timeout_s = _duration(env, "HTQ_REDIS_WAIT_TIMEOUT", 1.0, 4.0)
    if wait_timeout_s <= 0:
        raise ConfigError("HTQ_REDIS_WAIT_TIMEOUT must be more than 0 (WAIT 0 would wait forever)")
    if sentinels and not redis_url.startswith(("redis://", "rediss://")):
        raise ConfigError(f"with REDIS_SENTINELS, REDIS_URL must be a redis:// or rediss:// URL, got {redis_url!r}")
    sqs_credentials, sqs_scopes = _credentials(env, "HTQ_SQS_CREDENTIALS")
    pool = env.get("HTQ_WORKER_POOL", "").strip().lower() or DEFAULT_WORKER_POOL
    if pool not in WORKER_POOLS:
        raise ConfigError(f"HTQ_WORKER_POOL must be one of {', '.join(WORKER_POOLS)}, got {pool!r}")
    return Settings(
        redis_url=redis_url,
        broker_url=env.get("CELERY_BROKER_URL", ""),
        http_port=_int({"PORT": port_raw}, "PORT", 8080, 1, 65535),
        worker_pool=pool,
        concurrency=_int(env, "HTQ_CONCURRENCY", WORKER_POOLS[pool], 1, 1000),
        api_tokens=_list(env, "HTQ_API_TOKENS"),
        sqs_credentials=sqs_credentials,
        sqs_scopes=sqs_scopes,
        allow_private_targets=_flag(env, "HTQ_ALLOW_PRIVATE_TARGETS"),
        allowed_hosts=_list(env, "HTQ_ALLOWED_HOSTS"),
        signing_secret=secret,
        retention_s=_int(env, "HTQ_RETENTION", 7 * DAY_S, 60, 3650 * DAY_S),
        max_delay_s=_int(env, "HTQ_MAX_DELAY", 365 * DAY_S, 0, MAX_DELAY_LIMIT_S),
        max_body_bytes=_int(env, "HTQ_MAX_BODY_BYTES", 1024 * 1024, 1, 64 * 1024 * 1024),
        response_max_bytes=_int(env, "HTQ_RESPONSE_MAX_BYTES", 1024 * 1024, 0, 64 * 1024 * 1024),
        default_timeout_s=_float(env, "HTQ_DEFAULT_TIMEOUT", 30.0, 1, 1800),
        horizon_s=_float(env, "HTQ_HORIZON", 60.0, 0.1, 300),
        publish_grace_s=_float(env, "HTQ_PUBLISH_GRACE", 10.0, 0.1, 3600),
        lease_margin_s=_float(env, "HTQ_LEASE_MARGIN", 30.0, 0.1, 3600),
        long_poll_timeout_s=_float(env, "HTQ_LONG_POLL_TIMEOUT", 10.0, 0, 300),
        webhook_post_endpoint=_http_url(env, "WEBHOOK_POST_ENDPOINT"),
        webhook_batch_size=_int(env, "WEBHOOK_BATCH_SIZE", 10, 1, 10000),
        webhook_batch_interval_s=_duration(env, "WEBHOOK_BATCH_INTERVAL", 10.0, DAY_S),
        wq_visibility_timeout_ms=_int(env, "WQ_VISIBILITY_TIMEOUT_MS", 1000, 0, 43200 * 1000),
        web_concurrency=_int(env, "WEB_CONCURRENCY", os.cpu_count() or 1, 1, 256),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        log_format=log_format,
        data_dir=env.get("HTQ_DATA_DIR") or ".htq",
        clock=clock,
        breaker_failures=_int(env, "HTQ_BREAKER_FAILURES", 10, 1, 100_000),
        breaker_cooldown_s=_duration(env, "HTQ_BREAKER_COOLDOWN", 30.0, DAY_S),
        redis_sentinels=sentinels,
        redis_sentinel_master=sentinel_master,
        redis_sentinel_password=env.get("REDIS_SENTINEL_PASSWORD", ""),
        redis_min_replicas=_int(env, "HTQ_REDIS_MIN_REPLICAS", 0, 0, 100),
        redis_wait_timeout_s=wait_timeout_s,
    )
