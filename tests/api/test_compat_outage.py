"""A Redis outage answers 503 with Retry-After in each earlier system's own error shape."""
from __future__ import annotations

import pytest

from app import create_app
from tests.support.settings import make_settings


@pytest.mark.parametrize("method, path, body, shape", [
    ("post", "/compat/timers/timers", {"seconds": 5, "url": "http://127.0.0.1:9/t"}, "error"),
    ("post", "/compat/wq/", {"a": 1}, "error"),
    ("post", "/compat/pushpull/queues/jobs", b"hello", None),
    ("post", "/compat/forwarder/log", {"user_id": 1}, "message"),
])
def test_redis_outage_is_503_with_retry_after_in_the_profile_shape(method, path, body, shape):
    settings = make_settings("redis://127.0.0.1:1/0", webhook_post_endpoint="http://127.0.0.1:9/log")
    client = create_app(settings).test_client()
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == 503 and response.headers["Retry-After"]
    if shape:
        assert shape in response.get_json() and "code" not in response.get_json()  # not the native shape
    else:
        assert b"unavailable" in response.data
