"""Sends one HTTP attempt and says what came of it: the only code in htq that talks to targets."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NameResolutionError, NewConnectionError
from urllib3.util import Retry, parse_url
from urllib3.util.connection import allowed_gai_family

from app.core.egress import Allowlist
from app.core.outcome import FAILED, NETWORK, RETRY, SUCCEEDED, TIMEOUT, Outcome

logger = logging.getLogger(__name__)

USER_AGENT = "htq/0.1"
POOL_SIZE = 32
CHUNK_BYTES = 64 * 1024
SIGNATURE_PREFIX = "whsec_"

# socket.getaddrinfo's signature: (host, port, family, type) -> [(family, type, proto, name, sockaddr)].
Resolver = Callable[..., list[tuple]]
# Distinct allowlists whose connection pools a Deliverer keeps; the least recently used goes first.
ALLOWLIST_POOLS = 64
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Every attempt is one try; made once here rather than by urllib3 on every call.
_NO_RETRIES = Retry.from_int(False, redirect=False)
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Sent unless the caller's headers say otherwise; ours (Idempotency-Key and the rest) come after.
# identity: the stored body is exactly the bytes received, consistent with its headers.
_DEFAULT_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Accept": "*/*",
                    "Connection": "keep-alive"}


class DestinationRefused(Exception):
    """The target is not an allowed destination; retrying cannot help, so the attempt fails."""


@dataclass(frozen=True)
class DeliveryConfig:
    """What a Deliverer needs from the settings, so tests can build one without the environment."""

    allow_private: bool = False
    allowed_hosts: tuple[str, ...] = ()
    signing_secret: str = ""
    response_max_bytes: int = 1024 * 1024
    # Certificate authorities trusted for https targets: certifi's bundle unless a file is named.
    ca_certs: str | None = None
    # Keep-alive connections kept per target (host and port): as many as attempts sent at once.
    connections: int = POOL_SIZE

    @classmethod
    def from_settings(cls, settings) -> DeliveryConfig:
        return cls(
            allow_private=settings.allow_private_targets,
            allowed_hosts=tuple(settings.allowed_hosts),
            signing_secret=settings.signing_secret,
            response_max_bytes=settings.response_max_bytes,
        )


def classify(status_code: int) -> str:
    """The contract's retry rule: only answers that may change on their own are worth another try."""
    if 200 <= status_code <= 299:
        return SUCCEEDED
    if status_code in (408, 425, 429) or 500 <= status_code <= 599:
        return RETRY
    return FAILED


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); a date in the past is 0."""
    value = (value or "").strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": a UTC time from a source that does not say where it is
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _is_public(ip: IPAddress) -> bool:
    """`is_global` is the base; IPv6 forms that carry an IPv4 address are judged by that address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _is_public(embedded)
        if ip.is_site_local:
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


class _Guard:
    """Resolves a host and admits its addresses only if every one of them is an allowed destination:
    by the server's settings, then, when one is given, by a token's allowlist, which only narrows."""

    def __init__(self, config: DeliveryConfig, allowlist: Allowlist | None = None,
                 resolver: Resolver = socket.getaddrinfo) -> None:
        self.allowlist = allowlist
        self.resolver = resolver
        self.allow_private = config.allow_private
        names, networks = set(), []
        for entry in config.allowed_hosts:
            entry = entry.strip().strip("[]").lower()
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.rstrip("."))
        self.names: frozenset[str] = frozenset(names)
        self.networks: tuple[IPNetwork, ...] = tuple(networks)

    def resolve(self, host: str, port: int | None) -> list[tuple]:
        """getaddrinfo results, all checked; raises DestinationRefused or socket.gaierror."""
        host = host.strip("[]")
        infos = self.resolver(host, port, allowed_gai_family(), socket.SOCK_STREAM)
        if not (self.allow_private or host.rstrip(".").lower() in self.names):
            for info in infos:
                ip = ipaddress.ip_address(info[4][0])
                if not (_is_public(ip) or self._listed(ip)):
                    raise DestinationRefused(f"{_where(host, ip)} not a public address")
        if self.allowlist is not None and not self.allowlist.admits_name(host):
            for info in infos:
                if not self.allowlist.admits_address(info[4][0]):
                    raise DestinationRefused(f"{_where(host, info[4][0])} not among the token's allowed hosts")
        return infos

    def _listed(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


def _where(host: str, address) -> str:
    return f"{address} is" if host == str(address) else f"{host} resolves to {address}, which is"


class _GuardedConnection:
    """Resolves, checks and connects in one step, so the socket can only reach an address that was
    checked (no DNS rebinding in between); TLS still uses the host name for SNI and certificates."""

    guard: _Guard

    def _new_conn(self) -> socket.socket:
        try:
            infos = self.guard.resolve(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        error: OSError = OSError(f"{self.host} resolves to no address")
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


def _guarded_pool_classes(guard: _Guard) -> dict[str, type]:
    """Pool classes whose connections all pass through `guard`; classes, because urllib3 builds
    pools and connections itself from the classes it is given."""
    classes: dict[str, type] = {}
    for scheme, pool_cls, conn_cls in (("http", HTTPConnectionPool, HTTPConnection),
                                       ("https", HTTPSConnectionPool, HTTPSConnection)):
        guarded = type(f"Guarded{conn_cls.__name__}", (_GuardedConnection, conn_cls), {"guard": guard})
        classes[scheme] = type(f"Guarded{pool_cls.__name__}", (pool_cls,), {"ConnectionCls": guarded})
    return classes


def _signing_key(secret: str) -> bytes | None:
    if not secret:
        return None
    try:
        return base64.b64decode(secret.removeprefix(SIGNATURE_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("the signing secret must be whsec_ followed by base64") from None


def _elapsed_ms(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


class Deliverer:
    """One pool of keep-alive connections per instance (one instance per worker process), made
    of guarded connections; safe to call from several threads (or greenlets) at once. Every
    failure is reported in the Outcome, never raised.

    urllib3 directly, with no requests.Session: no proxies or .netrc from the environment (a
    proxy would dodge the guard), no cookies carried from one target's answer into another
    caller's request, and half the CPU per attempt."""

    def __init__(self, config: DeliveryConfig, resolver: Resolver = socket.getaddrinfo) -> None:
        self.config = config
        self.resolver = resolver
        self._key = _signing_key(config.signing_secret)
        # The pool of each target sent to, by (allowlist, scheme, host, port), past PoolManager's
        # lookup, which costs a key of some twenty fields on every call.
        self._recent: dict[tuple, HTTPConnectionPool] = {}
        self._pools = self._pool_manager(_Guard(config, resolver=resolver))
        # A token's allowlist has pools of its own: a connection made under one allowlist is
        # never reused under another, which might not admit its address.
        self._allowlist_pools: OrderedDict[tuple[str, ...], urllib3.PoolManager] = OrderedDict()
        self._lock = threading.Lock()

    def _pools_for(self, allowed_hosts: Sequence[str] | None) -> urllib3.PoolManager:
        if not allowed_hosts:
            return self._pools
        key = tuple(allowed_hosts)
        with self._lock:
            pools = self._allowlist_pools.get(key)
            if pools is not None:
                self._allowlist_pools.move_to_end(key)
                return pools
            pools = self._allowlist_pools[key] = self._pool_manager(
                _Guard(self.config, Allowlist(key), self.resolver))
            if len(self._allowlist_pools) > ALLOWLIST_POOLS:
                _, oldest = self._allowlist_pools.popitem(last=False)
                oldest.clear()  # its pools are forgotten; their connections close as they are let go
            return pools

    def _pool(self, allowed_hosts: Sequence[str] | None, scheme: str, host: str | None,
              port: int | None) -> HTTPConnectionPool:
        """The connection pool of a target under an allowlist (or none), remembered by those alone
        until its PoolManager drops it (`_forget`)."""
        key = (tuple(allowed_hosts) if allowed_hosts else None, scheme, host, port or _DEFAULT_PORTS[scheme])
        pool = self._recent.get(key)
        manager = self._pools_for(allowed_hosts)  # also keeps the allowlist among the recently used
        if pool is None:
            with manager.pools.lock:  # so that the pool cannot be dropped before it is remembered
                pool = self._recent[key] = manager.connection_from_host(host, port=port, scheme=scheme)
        return pool

    def _forget(self, pool: HTTPConnectionPool) -> None:
        """A PoolManager dropped `pool` (its least recently used, or all of an allowlist's): its
        connections close as they are let go."""
        for key, remembered in list(self._recent.items()):
            if remembered is pool:
                self._recent.pop(key, None)

    def _pool_manager(self, guard: _Guard) -> urllib3.PoolManager:
        pools = urllib3.PoolManager(num_pools=POOL_SIZE, maxsize=self.config.connections, retries=False,
                                    cert_reqs="CERT_REQUIRED", ca_certs=self.config.ca_certs or certifi.where())
        pools.pool_classes_by_scheme = _guarded_pool_classes(guard)
        pools.pools.dispose_func = self._forget
        return pools

    def send(self, *, delivery_id: str, attempt: int, method: str, url: str,
             headers: dict[str, str], body: bytes | None, timeout_s: float, webhook_id: str | None = None,
             allowed_hosts: Sequence[str] | None = None) -> Outcome:
        """One attempt, bounded as a whole by `timeout_s` (connect, send, read the body).

        `allowed_hosts`, a token's allowlist (app/core/egress.py), is checked again here against
        the addresses the connection goes to, after the server's own guard: a name that resolved
        to an admitted address when the request was created and resolves elsewhere now is refused.

        `delivery_id` is the id of what is delivered, a request or a batch: it is sent as the
        Idempotency-Key (and webhook-id), the same on every attempt, and names the log lines.
        `webhook_id`, when given, is the webhook-id instead: a notice about a request (its
        callback, its cancel notice) is a message of its own for Standard Webhooks receivers."""
        start = time.monotonic()
        try:
            target = parse_url(url)
        except LocationParseError as exc:
            return Outcome(FAILED, elapsed_ms=_elapsed_ms(start), error=f"invalid request: {exc}")
        scheme = target.scheme or ""
        if scheme not in ("http", "https"):
            return self._refused(delivery_id, start, f"unsupported URL scheme {scheme!r}")
        try:
            # What PoolManager.urlopen does without redirects, minus parsing the URL again.
            response = self._pool(allowed_hosts, scheme, target.host, target.port).urlopen(
                method.upper(), target.request_uri, body=body,
                headers=self._headers(delivery_id, attempt, headers, body, webhook_id),
                timeout=urllib3.Timeout(total=timeout_s), redirect=False, retries=_NO_RETRIES,
                assert_same_host=False, preload_content=False, decode_content=False)
        except DestinationRefused as exc:
            return self._refused(delivery_id, start, str(exc))
        except NewConnectionError as exc:  # a ConnectTimeoutError by class, but no timeout
            return Outcome(RETRY, elapsed_ms=_elapsed_ms(start), error=f"connection error: {exc}", failure=NETWORK)
        except urllib3.exceptions.TimeoutError:
            return Outcome(RETRY, elapsed_ms=_elapsed_ms(start), error=f"timeout after {timeout_s:g}s", failure=TIMEOUT)
        except ValueError as exc:
            # A wrong URL, method or header will be just as wrong on the next attempt: urllib3's
            # LocationValueError and http.client's refusals of an illegal method or header
            # (UnicodeEncodeError among them) are all ValueErrors.
            return Outcome(FAILED, elapsed_ms=_elapsed_ms(start), error=f"invalid request: {exc}")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return Outcome(RETRY, elapsed_ms=_elapsed_ms(start), error=f"connection error: {exc}", failure=NETWORK)
        try:
            body_read, truncated, error = self._read_body(response, start + timeout_s, timeout_s)
        finally:
            # A body left unread closes its connection instead of being drained; a body read to
            # its end has already given its connection back to the pool.
            response.close()
            response.release_conn()
        status = response.status
        verdict = RETRY if error else classify(status)
        outcome = Outcome(
            verdict,
            status_code=status,
            reason=response.reason or "",
            headers=dict(response.headers),
            body=body_read,
            truncated=truncated,
            elapsed_ms=_elapsed_ms(start),
            error=error,
            # Also on answers the default rule does not retry: a request's retry.on may.
            retry_after_s=parse_retry_after(response.headers.get("Retry-After")) if verdict != SUCCEEDED else None,
            failure=(TIMEOUT if error.startswith("timeout") else NETWORK) if error else None,
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s attempt %d: %s %s -> %s %s in %d ms", delivery_id, attempt, method,
                         target.host, status, verdict, outcome.elapsed_ms)
        return outcome

    def close(self) -> None:
        self._recent.clear()
        self._pools.clear()
        with self._lock:
            for pools in self._allowlist_pools.values():
                pools.clear()
            self._allowlist_pools.clear()

    def _headers(self, delivery_id: str, attempt: int, headers: dict[str, str],
                 body: bytes | None, webhook_id: str | None = None) -> dict[str, str | bytes]:
        """Defaults, then the caller's headers, then ours, which win: the contract promises them
        on every attempt. Names are compared without case; the last one written keeps its value."""
        merged: dict[str, tuple[str, str | bytes]] = {name.lower(): (name, value)
                                                      for name, value in _DEFAULT_HEADERS.items()}
        for name, value in headers.items():
            # http.client would refuse a value beyond Latin-1; UTF-8 sends what the caller wrote.
            merged[name.lower()] = (name, value if value.isascii() else value.encode())
        merged["idempotency-key"] = ("Idempotency-Key", delivery_id)
        merged["htq-attempt"] = ("Htq-Attempt", str(attempt))
        if self._key is not None:
            timestamp = str(int(time.time()))
            message_id = webhook_id or delivery_id
            signed = f"{message_id}.{timestamp}.".encode() + (body or b"")
            digest = hmac.new(self._key, signed, hashlib.sha256).digest()
            merged["webhook-id"] = ("webhook-id", message_id)
            merged["webhook-timestamp"] = ("webhook-timestamp", timestamp)
            merged["webhook-signature"] = ("webhook-signature", "v1," + base64.b64encode(digest).decode())
        return dict(merged.values())

    def _read_body(self, response: urllib3.BaseHTTPResponse, deadline: float,
                   timeout_s: float) -> tuple[bytes, bool, str | None]:
        """Reads at most response_max_bytes (+1 to know there was more), giving each read only the
        time left, so a target that trickles bytes cannot stretch the attempt past its deadline."""
        limit = self.config.response_max_bytes
        raw = response
        chunks: list[bytes] = []
        size = 0
        error = None
        try:
            while size <= limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                connection = raw.connection
                if connection is not None and connection.sock is not None:
                    connection.sock.settimeout(remaining)
                chunk = raw.read1(min(CHUNK_BYTES, limit + 1 - size), decode_content=False)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError):
            error = f"timeout after {timeout_s:g}s"
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            error = f"connection error: {exc}"
        body = b"".join(chunks)
        return body[:limit], size > limit, error

    def _refused(self, delivery_id: str, start: float, why: str) -> Outcome:
        logger.warning("%s: destination refused: %s", delivery_id, why)
        return Outcome(FAILED, elapsed_ms=_elapsed_ms(start), error=f"destination refused: {why}")
