"""Scoped tokens across real web processes: a token made on one gunicorn works on another at
once, and once revoked on one it is refused by every process within a second, though each had
just served it (and so remembered it)."""
from __future__ import annotations

import time

import requests

from app.embedded import free_port

ADMIN = "e2e-admin-token"


def call(base: str, method: str, path: str, secret: str, **kwargs) -> requests.Response:
    return requests.request(method, base + path, headers={"Authorization": f"Bearer {secret}"}, timeout=10, **kwargs)


def test_a_revoked_token_is_refused_by_every_web_process_within_a_second(services_factory):
    procs = services_factory(HTQ_API_TOKENS=ADMIN, WEB_CONCURRENCY="2", LOG_LEVEL="WARNING")
    first = procs.start_web(free_port(), name="web-1")
    second = procs.start_web(free_port(), name="web-2")

    made = call(first, "POST", "/v1/tokens", ADMIN, json={"name": "reader", "scopes": ["read"]})
    assert made.status_code == 201, made.text
    token_id, secret = made.json()["id"], made.json()["token"]
    for base in (first, second):  # known at once everywhere, and remembered by each process now
        for _ in range(4):
            assert call(base, "GET", "/v1/queues", secret).status_code == 200
        assert call(base, "POST", "/v1/queues/q/messages", secret, json={"m": 1}).status_code == 403

    assert call(second, "GET", "/v1/queues", secret).status_code == 200
    revoked = call(first, "DELETE", f"/v1/tokens/{token_id}", ADMIN)
    revoked_at = time.monotonic()
    assert revoked.status_code == 204
    # Each process has two gunicorn workers, each with its own memory: a second after the
    # revocation, none of the four takes the token any more.
    while time.monotonic() - revoked_at < 1.0:
        for base in (first, second):
            assert call(base, "GET", "/v1/queues", secret).status_code in (200, 401)
    for base in (first, second):
        for _ in range(8):
            assert call(base, "GET", "/v1/queues", secret).status_code == 401
