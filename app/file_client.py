"""The file client: a text file through a queue line by line, over the /v1/queues API.

Errors. Every failure is a `ClientError` carrying `status` (the HTTP status, None when no answer
came), the server's `message` and its structured `errors`. `Unreachable` (no connection was
made) and `NoReply` (the request went out, no answer came back) have no status; `HTTPError` is an
answer of 400 or more. Callers decide on `status` and on the type, never on message text.

A missing queue is `QueueMissing`: a 404 in the API's error shape (`{"code": 404, ...}`) on one of
the routes this client calls (push, receive, ack, get the queue). None of them looks up a message
by id, so on them a 404 can only mean the queue. It can also mean the URL does not lead to the
queue API at all (a wrong base path answers 404 in the same shape): the first time a client sees
a 404 before any call of it has succeeded, it asks `GET /v1/queues` once, and a 404 there too is
an `HTTPError`, not a missing queue. A 404 in another shape (a proxy's page) is an `HTTPError`.

Retries (tenacity). A call is tried up to `ATTEMPTS` times, waiting `BACKOFF_FIRST_S` and then
twice as long each time (a `Retry-After` of the server's, up to `RETRY_AFTER_MAX_S`, when it
asks for longer), on transient failures only; whether a failure may be retried depends on
whether the call is safe to replay:

- Any call: `Unreachable` (refused, no route, DNS, connect timeout): nothing was sent, so nothing
  was processed; 429, which refuses a request without processing it; and an error answered with
  `Htq-Nothing-Stored: true` (a 503 when Redis is out of memory or could not be reached).
- Receive, ack and get-queue also on `NoReply` (read timeout, connection reset) and 502, 503,
  504. They are safe to replay: a receive retried after its answer was lost locks messages that
  nobody writes; they come back when the lock ends (at-least-once, as any lost reader). An ack is
  idempotent: acknowledging again changes nothing; the messages the lost attempt acknowledged are
  then reported `not_found`, and a read warns they may be read again (a false alarm on the safe
  side).
- A push is not replayed on those: it may have been stored, and a replay would push its lines a
  second time. A read timeout or a reset may come after the server stored the batch; 502 and 504
  come from a proxy that may have forwarded it; htq answers 503 for a Redis connection error or
  timeout (app/errors.py), and a timeout may come after Redis wrote the batch.
- Never any other 4xx: the request is wrong and sending it again changes nothing.

The waits are not randomised: a file client runs as one or two processes, not a fleet.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import IO, Any, Protocol

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential
from urllib3.exceptions import NewConnectionError

BATCH_LINES = 100  # messages per push, receive and ack (the API's batch limit)
BATCH_BYTES = 4 * 1024 * 1024  # a push request stays well under the server's request cap
LOCK_S = 120  # what a read holds a batch for while it writes and acknowledges it
MAX_WAIT_S = 20  # the API's longest receive wait
CONNECT_TIMEOUT_S = 10
TIMEOUT_S = 30  # for an answer, beyond a receive's wait
ATTEMPTS = 4
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
RETRY_AFTER_MAX_S = 10.0
MISSING_QUEUE_POLL_S = 0.25
TRANSIENT_STATUSES = frozenset({502, 503, 504})
TOO_MANY_REQUESTS = 429


class ClientError(Exception):
    """A call to the queue API failed; `status` is None when no HTTP answer came."""

    status: int | None = None

    def __init__(self, request: str, message: str, *, errors: Any = None):
        super().__init__(request, message)
        self.request = request  # "POST http://host/v1/queues/q/messages/batch"
        self.message = message
        self.errors = errors
        self.attempts = 1

    def __str__(self) -> str:
        return f"{self.request} failed: {self.message}{self._tries()}"

    def _tries(self) -> str:
        return f" (after {self.attempts} attempts)" if self.attempts > 1 else ""


class Unreachable(ClientError):
    """No connection could be made: the request was not sent."""

    def __init__(self, request: str, message: str, *, base: str):
        super().__init__(request, message)
        self.base = base

    def __str__(self) -> str:
        return f"cannot reach {self.base}: {self.message}{self._tries()}"


class NoReply(ClientError):
    """The request was sent, or partly, and no answer came (read timeout, connection reset):
    the server may have acted on it."""


class HTTPError(ClientError):
    """The server answered with an error status; `message` and `errors` come from its JSON body."""

    def __init__(self, request: str, status: int, message: str, *, errors: Any = None,
                 retry_after_s: float | None = None, api_shape: bool = False, nothing_stored: bool = False):
        super().__init__(request, message, errors=errors)
        self.status = status
        self.retry_after_s = retry_after_s
        self.nothing_stored = nothing_stored  # the server says so (Htq-Nothing-Stored: a 503 of a full Redis)
        self.api_shape = api_shape  # the body is the API's error shape {code, status, message, errors}

    def __str__(self) -> str:
        detail = f": {self.message}" if self.message else ""
        if self.errors:
            detail += f" {json.dumps(self.errors)}"
        return f"{self.request}: HTTP {self.status}{detail}{self._tries()}"


class QueueMissing(HTTPError):
    """The queue does not exist (yet): nobody has pushed to it."""


class LineTooLarge(HTTPError):
    """One line alone is more than the server takes in a request (413)."""

    def __init__(self, line: int, refused: HTTPError):
        super().__init__(refused.request, refused.status, refused.message, errors=refused.errors,
                         api_shape=refused.api_shape)
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line} is too large for the server: {super().__str__()}"


class LineNotText(ValueError):
    """A line of the file is not UTF-8 text; `line` is its number, from 1."""

    def __init__(self, line: int):
        super().__init__(f"line {line} is not UTF-8 text")
        self.line = line


class Progress(Protocol):
    """What pull_lines reports to: click's progress bar, or NoProgress."""

    length: int

    def update(self, n_steps: int) -> None: ...


class NoProgress:
    length = 0

    def update(self, n_steps: int) -> None:
        pass


def _retry_after_s(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _may_retry(exc: BaseException, *, replayable: bool) -> bool:
    if isinstance(exc, Unreachable) or (isinstance(exc, HTTPError) and (exc.status == TOO_MANY_REQUESTS
                                                                        or exc.nothing_stored)):
        return True
    if not replayable:
        return False
    return isinstance(exc, NoReply) or (isinstance(exc, HTTPError) and exc.status in TRANSIENT_STATUSES)


_exponential = wait_exponential(multiplier=BACKOFF_FIRST_S, max=BACKOFF_MAX_S)


def _wait(state: RetryCallState) -> float:
    """The exponential backoff, or the server's Retry-After when it asks for longer."""
    backoff = _exponential(state)
    exc = state.outcome.exception() if state.outcome else None
    retry_after_s = getattr(exc, "retry_after_s", None)
    return max(backoff, min(retry_after_s, RETRY_AFTER_MAX_S)) if retry_after_s is not None else backoff


class QueueClient:
    """The /v1/queues calls the file client makes on one queue, over one keep-alive session (use
    one per thread: `another()`). `sleep` is what waits between attempts."""

    def __init__(self, url: str, queue: str, token: str | None, *, timeout_s: float = TIMEOUT_S,
                 sleep: Callable[[float], None] = time.sleep):
        self.base = url.rstrip("/")
        self.queue = queue
        self.token = token
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.queue_url = f"{self.base}/v1/queues/{requests.utils.quote(queue, safe='')}"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self._api_seen = False  # a call has succeeded: the base URL leads to the queue API

    def another(self) -> QueueClient:
        """The same client on its own connection, for another thread."""
        return QueueClient(self.base, self.queue, self.token, timeout_s=self.timeout_s, sleep=self.sleep)

    def push(self, bodies: list[str]) -> None:
        """One request: all of `bodies` stored in order, or none (413 when too large together)."""
        self._call("POST", self.queue_url + "/messages/batch", {"messages": [{"body": b} for b in bodies]},
                   replayable=False)

    def receive(self, wait_s: float) -> list[dict]:
        """Up to BATCH_LINES messages, each locked for LOCK_S; [] when none came within wait_s."""
        body = {"max": BATCH_LINES, "visibility_timeout": LOCK_S, "wait": wait_s}
        return self._json(self._call("POST", self.queue_url + "/messages/receive", body, replayable=True,
                                     timeout_s=wait_s + self.timeout_s))["messages"]

    def ack(self, messages: list[dict]) -> list[dict]:
        """The messages that could not be acknowledged, each with its reason (`not_found`, `stale`)."""
        items = [{"id": message["id"], "receipt": message["receipt"]} for message in messages]
        return self._json(self._call("POST", self.queue_url + "/messages/ack", {"messages": items},
                                     replayable=True))["failed"]

    def pending(self) -> int:
        """Messages in the queue, visible, locked or delayed; 0 when it does not exist."""
        try:
            queue = self._json(self._call("GET", self.queue_url, replayable=True))
        except QueueMissing:
            return 0
        return queue["visible"] + queue["in_flight"] + queue["delayed"]

    def _call(self, method: str, url: str, body: Any = None, *, replayable: bool, timeout_s: float | None = None,
              on_queue: bool = True) -> requests.Response:
        retrying = Retrying(retry=retry_if_exception(lambda exc: _may_retry(exc, replayable=replayable)),
                            stop=stop_after_attempt(ATTEMPTS), wait=_wait, sleep=self.sleep, reraise=True)
        try:
            response = retrying(self._send, method, url, body, timeout_s or self.timeout_s)
        except ClientError as exc:
            exc.attempts = retrying.statistics.get("attempt_number", 1)
            if on_queue and exc.status == 404 and exc.api_shape and self._leads_to_queue_api():
                raise QueueMissing(exc.request, 404, exc.message, errors=exc.errors, api_shape=True) from None
            raise
        self._api_seen = True
        return response

    def _leads_to_queue_api(self) -> bool:
        """Whether the base URL leads to the queue API: a call has succeeded, or GET /v1/queues does."""
        if not self._api_seen:
            try:
                self._call("GET", f"{self.base}/v1/queues", replayable=True, on_queue=False)
            except HTTPError as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    def _send(self, method: str, url: str, body: Any, timeout_s: float) -> requests.Response:
        request = f"{method} {url}"
        try:
            response = self.session.request(method, url, json=body, timeout=(CONNECT_TIMEOUT_S, timeout_s))
        except requests.ConnectionError as exc:  # ConnectTimeout is one too
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            if isinstance(exc, requests.ConnectTimeout) or isinstance(reason, NewConnectionError):
                raise Unreachable(request, str(reason or exc), base=self.base) from None
            if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.ProxyError)):
                raise ClientError(request, str(exc)) from None
            raise NoReply(request, str(exc)) from None
        except requests.Timeout as exc:
            raise NoReply(request, str(exc)) from None
        except requests.RequestException as exc:
            raise ClientError(request, str(exc)) from None
        if response.ok:
            return response
        raise self._error(request, response)

    @staticmethod
    def _error(request: str, response: requests.Response) -> HTTPError:
        try:
            error = response.json()
        except ValueError:
            error = None
        common = {"retry_after_s": _retry_after_s(response),
                  "nothing_stored": response.headers.get("Htq-Nothing-Stored") == "true"}
        if not isinstance(error, dict):
            return HTTPError(request, response.status_code, "", **common)
        return HTTPError(request, response.status_code, str(error.get("message") or ""), errors=error.get("errors"),
                         api_shape=error.get("code") == response.status_code, **common)

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"{response.request.method} {response.url}",
                              f"HTTP {response.status_code} with a body that is not JSON") from None


def push_lines(client: QueueClient, source: Iterable[bytes]) -> Iterator[tuple[int, int]]:
    """Push each line of `source` (UTF-8, without its newline) as one message, in order, in
    batches of BATCH_LINES or BATCH_BYTES. Yields (lines, bytes) as each request is stored, so
    the caller knows what was pushed when a later one fails. A batch the server finds too large
    (413) is split in two; a single line it refuses is LineTooLarge."""
    batch: list[str] = []
    sizes: list[int] = []
    batch_bytes = pushed = 0
    for number, raw in enumerate(source, 1):
        try:
            batch.append(raw[:-1].decode("utf-8") if raw.endswith(b"\n") else raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise LineNotText(number) from None
        sizes.append(len(raw))
        batch_bytes += len(raw)
        if len(batch) == BATCH_LINES or batch_bytes >= BATCH_BYTES:
            yield from _push_split(client, batch, sizes, pushed + 1)
            pushed += len(batch)
            batch, sizes, batch_bytes = [], [], 0
    if batch:
        yield from _push_split(client, batch, sizes, pushed + 1)


def _push_split(client: QueueClient, lines: list[str], sizes: list[int], first_line: int) -> Iterator[tuple[int, int]]:
    try:
        client.push(lines)
    except HTTPError as exc:
        if exc.status != 413:
            raise
        if len(lines) == 1:
            raise LineTooLarge(first_line, exc) from None
        half = len(lines) // 2
        yield from _push_split(client, lines[:half], sizes[:half], first_line)
        yield from _push_split(client, lines[half:], sizes[half:], first_line + half)
        return
    yield len(lines), sum(sizes)


def message_line(body: Any) -> bytes:
    """A received message as a line: text as is, any other JSON as compact JSON text."""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


def pull_lines(client: QueueClient, out: IO[bytes], idle_s: float, bar: Progress) -> tuple[int, int]:
    """(lines written, lines not acknowledged) once nothing arrived for idle_s seconds.

    A batch is acknowledged once its lines are written and flushed; that acknowledgement runs
    while the next batch is received (on its own connection), and the one after waits for it."""
    written = unacked = 0
    acker = client.another()
    pending_ack: Future | None = None
    last_seen = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as executor:
        while (remaining := idle_s - (time.monotonic() - last_seen)) > 0:
            try:
                messages = client.receive(min(remaining, MAX_WAIT_S))
            except QueueMissing:
                time.sleep(min(MISSING_QUEUE_POLL_S, remaining))  # a queue appears with its first message
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
