"""Many long polls held at once over raw sockets (one connection each, answers collected with a
selector), and a way to tell from Redis that they are all waiting."""
from __future__ import annotations

import json
import selectors
import socket
import time


def open_long_polls(port: int, queue: str, count: int, body: dict) -> selectors.BaseSelector:
    """`count` raw HTTP receive requests on `queue` left waiting; each socket's data collects its answer."""
    payload = json.dumps(body).encode()
    request = (b"POST /v1/queues/%s/messages/receive HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (queue.encode(), len(payload), payload))
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(request)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, bytearray())
    return selector


def collect(selector: selectors.BaseSelector, count: int, timeout_s: float) -> list[bytes]:
    """Up to `count` whole answers (the server closes each connection), waiting at most timeout_s."""
    answers: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(answers) < count and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            chunk = key.fileobj.recv(65536)
            if chunk:
                key.data.extend(chunk)
            else:
                selector.unregister(key.fileobj)
                key.fileobj.close()
                answers.append(bytes(key.data))
    return answers


def scripts_run(client) -> int:
    """Scripts Redis has run (EVALSHA calls that did not fail) since its statistics were last
    reset with CONFIG RESETSTAT. `client` is a redis-py client of that Redis."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))


def parked(client, count: int) -> bool:
    """Whether `count` queue receives with a wait, sent after a CONFIG RESETSTAT of a Redis that
    nothing else is using meanwhile, are all waiting in the web server.

    Each runs the receive script when it arrives, registers as a waiter (app/storage/notify.py),
    runs it once more, then sleeps until a publish or its periodic re-check (2.5 s later at the
    earliest). So 2 x count scripts run means every poll is waiting, provided that getting them
    all there took less than 2.5 s; otherwise early re-checks make this true a little sooner.
    """
    return scripts_run(client) >= 2 * count


def wait_parked(client, count: int, timeout_s: float = 30.0) -> None:
    """Until parked(client, count)."""
    deadline = time.monotonic() + timeout_s
    while not parked(client, count):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} long polls were not all waiting after {timeout_s:g} s "
                               f"({scripts_run(client)} receive scripts run)")
        time.sleep(0.01)
