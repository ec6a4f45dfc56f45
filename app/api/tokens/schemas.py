"""Schemas of /v1/tokens."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.core.tokens import MAX_ALLOWED_HOSTS, SCOPES

_ID = {"example": "01JEAKQ7M3F4W2Z8V6T5R9N1PB", "description": "the token's id (not its secret)"}

EXAMPLE = {"name": "shop front end", "scopes": ["publish"], "allowed_hosts": ["*.example.com", "10.1.0.0/16"]}
TOKEN_EXAMPLE = {"id": "01JEAKQ7M3F4W2Z8V6T5R9N1PB", **EXAMPLE, "created_at": "2026-12-03T15:00:00.000Z"}
CREATED_EXAMPLE = {**TOKEN_EXAMPLE, "token": "htq_x7Qm2vR8sLx0aTkZw0EJpikGYVQm3vR8sLx0aTkZw0E"}


class TokenCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200),
                         metadata={"description": "what the token is for, for people"})
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), required=True,
                         validate=validate.Length(min=1, max=len(SCOPES)),
                         metadata={"description": "read, publish, consume and/or admin"})
    # The characters an entry may have; which entries make sense (a name, *.suffix, an address or
    # a network) is checked by app/core/tokens.py.
    allowed_hosts = fields.List(fields.String(validate=validate.Regexp(r"^[A-Za-z0-9.:*/\[\]-]{1,260}$")),
                                load_default=list, validate=validate.Length(max=MAX_ALLOWED_HOSTS),
                                metadata={"description": "hosts the token's requests, schedules and batches may "
                                                         "target: names, *.suffix, IP addresses, CIDR networks; "
                                                         "empty: any host the server allows"})


class TokenSchema(Schema):
    id = fields.String(required=True, metadata=_ID)
    name = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True)
    allowed_hosts = fields.List(fields.String(), required=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})


class CreatedTokenSchema(TokenSchema):
    token = fields.String(required=True, metadata={"description": "the secret: shown this once, never again"})


class TokenListSchema(Schema):
    items = fields.List(fields.Nested(TokenSchema), required=True)
