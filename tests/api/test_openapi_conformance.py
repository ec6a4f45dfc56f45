"""The OpenAPI document states the rules the server keeps, with limits taken from the settings."""
from __future__ import annotations

from app import create_app
from tests.support.settings import make_settings


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
