"""Generated input on the compat routes, which the OpenAPI document (and so schemathesis) does not
cover: any JSON value, any bytes, any path segment. Never a server error, and every error in the
profile's own shape."""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from app.core.publish import Publisher
from tests.support.settings import make_settings

EXAMPLES = 40

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
# Bodies close to what each profile reads, then anything at all.
field_values = json_values | st.sampled_from(["http://127.0.0.1:9/x", "https://example.com/a?b=c", "get", "POST"])
objects = st.dictionaries(st.sampled_from(["url", "method", "data", "headers", "timeout", "hours", "minutes",
                                           "seconds", "user_id", "total", "title", "meta", "completed"]),
                          field_values, max_size=6)
bodies = (objects | json_values).map(lambda value: json.dumps(value).encode()) | st.binary(max_size=64)
# Path segments as a client sends them: text, or any bytes percent-encoded (not UTF-8 included).
segments = (st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#%"), min_size=1, max_size=30)
            | st.binary(min_size=1, max_size=30).map(lambda raw: quote(raw, safe="")))


def native(body) -> bool:
    return {"code", "status", "message"} <= set(body) <= {"code", "status", "message", "errors"}


def shape_of(path: str):
    if path.startswith("/compat/timers"):
        return lambda body: set(body) == {"error"} and set(body["error"]) == {"code", "details"}
    if path.startswith("/compat/wq"):
        return lambda body: set(body) == {"error"} and isinstance(body["error"], str)
    if path.startswith("/compat/forwarder"):
        return lambda body: set(body) == {"message"} and isinstance(body["message"], str)
    return native


@pytest.fixture
def client(redis_url, sender):
    settings = make_settings(redis_url, webhook_post_endpoint="http://127.0.0.1:9/log", long_poll_timeout_s=0)
    return create_app(settings, publisher=Publisher(sender)).test_client()


def check(response, path: str) -> None:
    assert response.status_code < 500, (path, response.get_data(as_text=True))
    if response.status_code >= 400 and not path.startswith("/compat/pushpull"):
        body = response.get_json()
        # A path or method no route has is answered before any profile is known: htq's own shape.
        routing = response.status_code in (404, 405) and native(body)
        assert shape_of(path)(body) or routing, (path, response.get_data(as_text=True))


@pytest.mark.parametrize("path", ["/compat/timers/timers", "/compat/htq/", "/compat/wq/", "/compat/forwarder/log",
                                  "/compat/pushpull/push/q"])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", "application/octet-stream"]))
def test_any_body_on_a_compat_post_is_answered_without_a_server_error(client, path, body, content_type):
    check(client.post(path, data=body, content_type=content_type), path)


@pytest.mark.parametrize("template", ["/compat/timers/timers/{}", "/compat/htq/{}/", "/compat/htq/{}/status/",
                                      "/compat/htq/{}/response/", "/compat/wq/{}", "/compat/pushpull/pull/{}",
                                      "/compat/wq/?amount={}"])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=segments, method=st.sampled_from(["GET", "DELETE", "PATCH"]))
def test_any_id_or_name_in_a_compat_path_is_answered_without_a_server_error(client, template, segment, method):
    path = template.format(segment)
    check(client.open(path, method=method), path)
