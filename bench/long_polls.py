"""Many long polls held at once over raw sockets: one connection each, answers collected with a selector."""
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
