"""What the OpenAPI document states beyond the schemas: path parameter formats (and the URL
converters that enforce them), limits that come from the settings, and rules that span fields.

The document is held to the server by tests/api/test_openapi_conformance.py (schemathesis): a
request it allows must not be refused, unless a rule below says why it cannot be stated."""
from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from werkzeug.routing import BaseConverter, UnicodeConverter

from app.api import examples
from app.api.validators import MAX_HEADERS, HeaderMap
from app.core.model import NAME_PATTERN
from config import Settings

REQUEST_ID_PATTERN = "[0-9A-HJKMNP-TV-Z]{26}"  # app.core.ids: ULID layout, Crockford base32


class RequestIdConverter(BaseConverter):
    """A request id in a path: "/v1/requests/batch" is then only the batch route (POST), not
    also a request named "batch" that GET and DELETE would look up."""

    regex = REQUEST_ID_PATTERN


class MessageIdConverter(BaseConverter):
    """A message id in a path: any segment but the words of the routes beside it (batch,
    receive, ack), which no message id can be."""

    regex = r"(?!(?:batch|receive|ack)(?![^/]))[^/]+"


class RecordIdConverter(BaseConverter):
    """A batch record id in a path (`<epoch>.<number>`, checked by the core: a malformed one is an
    unknown record, 404): any segment but "batch", the route beside it."""

    regex = r"(?!batch(?![^/]))[^/]+"


class NameConverter(UnicodeConverter):
    """A queue or batch name in a path: matched as any segment (a bad name is 422 where it would
    create, 404 where it is looked up), documented with the name rule."""


CONVERTERS = {"request_id": RequestIdConverter, "message_id": MessageIdConverter, "record_id": RecordIdConverter,
              "name": NameConverter}
PARAMETER_SCHEMAS = {
    RequestIdConverter: {"type": "string", "pattern": f"^{REQUEST_ID_PATTERN}$"},
    MessageIdConverter: {"type": "string", "minLength": 1},
    RecordIdConverter: {"type": "string", "minLength": 1},
    NameConverter: {"type": "string", "pattern": f"^{NAME_PATTERN}$"},
}

# Field metadata naming the setting that bounds it: {"maximum_setting": "max_delay_s"}.
MAXIMUM_SETTING = "maximum_setting"

# Rules across fields of a request body: OpenAPI 3.0 states them with `not`.
REQUEST_EXCLUSIONS = {"not": {"anyOf": [{"required": ["body", "json"]}, {"required": ["delay", "eta"]}]}}


def register_converters(api: Api) -> None:
    """Once, before any app: each app built afterwards documents these path parameters."""
    for converter, schema in PARAMETER_SCHEMAS.items():
        api.register_converter(converter, lambda _converter, schema=schema: dict(schema))


def init_document(app: Flask, api: Api, settings: Settings) -> None:
    """Before the blueprints: the URL converters, and the maximums taken from the settings."""
    app.url_map.converters.update(CONVERTERS)

    def maximum_from_settings(_converter, field, **_kwargs) -> dict:
        name = field.metadata.get(MAXIMUM_SETTING)
        return {"maximum": getattr(settings, name)} if name else {}

    def header_map_rules(_converter, field, **_kwargs) -> dict:
        if not isinstance(field, HeaderMap):
            return {}
        return {"maxProperties": MAX_HEADERS,
                "additionalProperties": {"type": "string", "pattern": "^[^\\r\\n\\x00]*$"}}

    api.ma_plugin.converter.add_attribute_function(maximum_from_settings)
    api.ma_plugin.converter.add_attribute_function(header_map_rules)


def finish_document(api: Api) -> None:
    """After the blueprints: the rules across fields, and the example of the error shape every
    operation may answer."""
    api.spec.components.schemas["RequestCreate"].update(REQUEST_EXCLUSIONS)
    api.spec.components.schemas["BulkCancel"]["minProperties"] = 1  # at least one filter
    api.spec.components.schemas["Error"]["example"] = examples.ERROR
