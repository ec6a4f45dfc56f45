"""/docs works offline: the page loads Swagger UI from htq itself, and the OpenAPI document shows
an example for every operation's body and answers."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from app import create_app
from tests.support.settings import make_settings

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture
def client(redis_url):
    return create_app(make_settings(redis_url)).test_client()


def test_the_docs_page_references_only_assets_that_htq_serves_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {asset.rsplit("/", 1)[1] for asset in assets} == {
        "swagger-ui.css", "swagger-ui-standalone-preset.js", "swagger-ui-bundle.js"}
    assert "//" not in html.replace("http://www.w3.org", "")  # no scheme-relative or absolute URL
    for asset in assets:
        assert not urlsplit(asset).netloc and asset.startswith("/docs/assets/"), asset
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.data) > 1000, asset
        assert answer.mimetype in {"text/css", "text/javascript", "application/javascript"}, answer.mimetype


def test_assets_outside_the_bundle_are_not_served(client):
    assert client.get("/docs/assets/../../../../etc/passwd").status_code == 404
    assert client.get("/docs/assets/missing.js").status_code == 404
