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


def _json_schema(node):
    """An OpenAPI 3.0 schema as JSON Schema: `nullable` becomes a null type, the boolean
    exclusive bounds become numbers."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _json_schema(value) for key, value in node.items() if key not in {"nullable", "example"}}
    for bound, exclusive in (("maximum", "exclusiveMaximum"), ("minimum", "exclusiveMinimum")):
        if converted.get(exclusive) is True:
            converted[exclusive] = converted.pop(bound)
        elif converted.get(exclusive) is False:
            del converted[exclusive]
    if node.get("nullable") and "type" in node:
        converted["type"] = [node["type"], "null"]
    elif node.get("nullable") and "$ref" in node:
        converted = {"anyOf": [{"$ref": node["$ref"]}, {"type": "null"}]}
    return converted


def _examples_of(content: dict) -> list:
    return [media["example"] for media in content.values() if "example" in media] + [
        example["value"] for media in content.values() for example in media.get("examples", {}).values()]


def test_every_operation_has_examples_of_its_body_and_its_answers_that_fit_their_schemas(client):
    import jsonschema_rs

    document = client.get("/openapi.json").get_json()
    components = _json_schema(document["components"])

    def check(example, schema, where):
        if schema:
            jsonschema_rs.validate({"allOf": [_json_schema(schema)], "components": components}, example)

    missing = []
    operations = [(method, path, operation) for path, item in document["paths"].items()
                  for method, operation in item.items() if method in HTTP_METHODS]
    assert len(operations) >= 31
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        body = operation.get("requestBody")
        if body:
            for media_type, media in body["content"].items():
                if "example" not in media:
                    missing.append(f"{where} request {media_type}")
                else:
                    check(media["example"], media.get("schema"), where)
        successes = {status: answer for status, answer in operation["responses"].items() if status.startswith("2")}
        assert successes, where
        for status, answer in operation["responses"].items():
            if "$ref" in answer:
                answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
            for media_type, media in answer.get("content", {}).items():
                schema = media.get("schema", {})
                referenced = (document["components"]["schemas"].get(schema.get("$ref", "").rsplit("/", 1)[-1], {}))
                found = _examples_of({media_type: media}) or ([referenced["example"]] if "example" in referenced
                                                             else [])
                if not found:
                    missing.append(f"{where} {status} {media_type}")
                for example in found:
                    check(example, schema, where)
    assert missing == [], "\n".join(missing)


def test_an_example_that_does_not_fit_its_schema_is_caught():
    import jsonschema_rs

    schema = {"type": "object", "properties": {"id": {"type": "string", "nullable": True}},
              "additionalProperties": False}
    jsonschema_rs.validate(_json_schema(schema), {"id": None})
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.validate(_json_schema(schema), {"id": None, "extra": 1})
