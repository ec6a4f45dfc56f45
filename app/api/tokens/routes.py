"""Routes of /v1/tokens: scoped API tokens, made, listed and revoked by an admin token."""
from __future__ import annotations

from flask.views import MethodView

from app.api.common import Blueprint, require_json_body
from app.api.tokens.schemas import (
    CREATED_EXAMPLE,
    EXAMPLE,
    TOKEN_EXAMPLE,
    CreatedTokenSchema,
    TokenCreateSchema,
    TokenListSchema,
    TokenSchema,
)
from app.extensions import services

blp = Blueprint("tokens", __name__, url_prefix="/v1/tokens",
                description="Scoped API tokens (admin only): each limited to some scopes and, for what it "
                            "creates, to some hosts.")
require_json_body(blp)


@blp.route("")
class Tokens(MethodView):
    @blp.arguments(TokenCreateSchema, example=EXAMPLE)
    @blp.response(201, CreatedTokenSchema, example=CREATED_EXAMPLE)
    def post(self, fields):
        """Make a token. Its secret (`token`) is in this answer only: htq keeps a hash of it."""
        token, secret = services().tokens.create(fields["name"], fields["scopes"], fields["allowed_hosts"])
        return {**token.public(), "token": secret}

    @blp.response(200, TokenListSchema, example={"items": [TOKEN_EXAMPLE]})
    def get(self):
        """Every token made here, oldest first, without secrets (HTQ_API_TOKENS are not listed)."""
        return {"items": [token.public() for token in services().tokens.list()]}


@blp.route("/<token_id>")
class TokenItem(MethodView):
    @blp.response(200, TokenSchema, example=TOKEN_EXAMPLE)
    def get(self, token_id):
        """One token, without its secret."""
        return services().tokens.get(token_id).public()

    @blp.response(204)
    def delete(self, token_id):
        """Revoke the token: every web process refuses it within a second."""
        services().tokens.revoke(token_id)
