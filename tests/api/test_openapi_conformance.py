"""The API as its OpenAPI document says, checked by schemathesis: a few generated requests per
operation, valid and invalid, through the Flask app (WSGI) on the test Redis. No server error,
every answer in the documented shape, nothing the document allows refused, nothing it forbids
taken (but where a rule below cannot be stated in OpenAPI 3.0)."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app import create_app
from app.core.publish import Publisher
from tests.support.settings import make_settings

EXAMPLES_PER_OPERATION = 10
# Where a document in OpenAPI 3.0 cannot be as strict as the server, which then refuses (422)
# some requests the document allows: header names as map keys (no propertyNames before 3.1), an
# eta at most HTQ_MAX_DELAY from now (a bound relative to the time of the request), and an
# Idempotency-Key sent again with another body; a schedule's cron expression and IANA zone, its
# `cron` exclusive with `every`, and the batch its target names being configured; a queue's
# `dead_letter_queue` existing, not being the queue, leading no cycle, with `max_receives` ≥ 1; a
# token's allowed host being a host name, *.suffix, IP address or CIDR network.
CANNOT_STATE_EVERY_RULE = ["POST /v1/requests", "POST /v1/requests/batch", "PUT /v1/batches/{name}",
                           "PUT /v1/schedules/{name}", "PUT /v1/queues/{name}", "POST /v1/tokens"]

CONFIG = schemathesis.Config.from_dict({
    "seed": 20261203,
    "generation": {"max-examples": EXAMPLES_PER_OPERATION, "mode": "all"},
    "phases": {"stateful": {"enabled": False}},
    "operations": [{"include-name": name, "checks": {"positive_data_acceptance": {"enabled": False}}}
                   for name in CANNOT_STATE_EVERY_RULE],
})
# The document comes from an app that is only asked for it; each case runs on a fresh app on the
# test Redis (the `app` fixture below), passed to the WSGI transport.
schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app(make_settings("redis://127.0.0.1:1/0")),
                                        config=CONFIG)


@pytest.fixture
def app(redis_url, sender):
    return create_app(make_settings(redis_url), publisher=Publisher(sender))


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_api_keeps_to_its_openapi_document(case, app):
    case.call_and_validate(app=app)


def test_the_document_states_the_rules_the_server_keeps(redis_url):
    document = create_app(make_settings(redis_url, max_delay_s=3600)).test_client().get("/openapi.json").get_json()
    schemas, paths = document["components"]["schemas"], document["paths"]
    create = schemas["RequestCreate"]
    assert create["properties"]["delay"]["maximum"] == 3600  # HTQ_MAX_DELAY, as configured
    assert create["properties"]["url"]["pattern"] == create["properties"]["callback_url"]["pattern"] \
        == schemas["BatchConfig"]["properties"]["endpoint"]["pattern"]
    assert create["properties"]["url"]["maxLength"] == 2048
    assert create["not"] == {"anyOf": [{"required": ["body", "json"]}, {"required": ["delay", "eta"]}]}
    assert paths["/v1/queues/{name}/messages"]["post"]["parameters"][0]["schema"]["maximum"] == 3600
    assert schemas["BatchMessage"]["properties"]["delay"]["maximum"] == 3600
    [name] = paths["/v1/queues/{name}"]["parameters"]
    assert name["schema"]["pattern"] == "^[A-Za-z0-9_-]{1,80}$"
    [request_id] = paths["/v1/requests/{request_id}"]["parameters"]
    assert request_id["schema"]["pattern"] == "^[0-9A-HJKMNP-TV-Z]{26}$"
    assert schemas["Status"]["properties"]["status"]["enum"][0] == "scheduled"
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= paths["/v1/requests"]["post"]["parameters"][0].items()
    assert paths["/v1/queues/{name}"]["put"]["requestBody"]["required"] is False
