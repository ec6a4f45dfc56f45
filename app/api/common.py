"""What the JSON routes share: the JSON provider, the Blueprint class and the check of request bodies."""
from __future__ import annotations

import flask_smorest
import orjson
from flask import abort, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import ValidationError
from marshmallow import fields as ma_fields
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from app.core import jsontext

BODY_METHODS = ("POST", "PUT", "PATCH")


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, writing with orjson: 100 received messages are written in a fifth of
    the time. What orjson refuses (integers over 64 bits) is written by Flask's own, and what that
    cannot write for depth (a value stored before depth was limited) without recursion. Reading
    is `jsontext.loads`, for `request.get_json()` too."""

    def dumps(self, obj, **kwargs) -> str:
        try:
            return orjson.dumps(obj, default=self.default, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
        except orjson.JSONEncodeError:
            pass
        try:
            return super().dumps(obj, **kwargs)
        except (RecursionError, TypeError):  # too deep, or an orjson Fragment inside
            return jsontext.dumps_iteratively(obj, self.default)

    def loads(self, s, **kwargs):
        return jsontext.loads(s)


class Parser(FlaskParser):
    """webargs' parser, reading JSON bodies with `jsontext.loads`: what it refuses (NaN,
    Infinity, too deep ...) is 400 with the reason, and no per-field `errors`."""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        return jsontext.loads(req.get_data(cache=True))

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        abort_malformed(error)

    def load_querystring(self, req, schema):
        """As webargs, but a parameter of one value given twice (?delay=1&delay=2) is 422:
        webargs would take the first and drop the other."""
        repeated = [name for name, field in schema.fields.items()
                    if not isinstance(field, ma_fields.List) and len(req.args.getlist(name)) > 1]
        if repeated:
            raise ValidationError({name: ["Give this parameter once."] for name in repeated})
        return super().load_querystring(req, schema)


def abort_malformed(error: ValueError):
    """400 for a body that is not JSON as htq reads it, saying why."""
    flask_smorest.abort(400, message=f"Malformed JSON body: {jsontext.reason(error)}")


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, with every argument schema built once, when the route is
    declared (given a schema class, webargs builds a new instance on each request, ~40 µs), and
    JSON bodies read by `Parser`."""

    ARGUMENTS_PARSER = Parser()

    def arguments(self, schema, *args, **kwargs):
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)


def require_json_body(blp: Blueprint) -> None:
    """415 for a request body that is not JSON, before any view or schema sees it."""

    @blp.before_request
    def _check_content_type():
        if request.method in BODY_METHODS and (request.content_length or request.headers.get("Transfer-Encoding")):
            if not request.is_json:
                abort(415, description="Send the body as application/json.")
