"""The dashboard while Redis does not answer: a page saying so, 503 with Retry-After, never a 500."""
from __future__ import annotations

from app import create_app
from app.embedded import free_port
from tests.support.settings import make_settings


def test_pages_say_the_store_is_down_with_503():
    client = create_app(make_settings(f"redis://127.0.0.1:{free_port()}/0")).test_client()
    for path in ("/ui", "/ui/requests", "/ui/requests/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/ui/queues", "/ui/batches/log",
                 "/ui/workers"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.headers["Retry-After"] == "5" and response.mimetype == "text/html"
        assert "The store (Redis) does not answer" in response.text
