"""Swagger UI's files for /docs, served by htq itself from the pinned swagger-ui-bundle package:
the API docs work offline and never load code from a third-party host."""
from __future__ import annotations

from flask import Blueprint, send_from_directory
from swagger_ui_bundle import swagger_ui_path

ASSETS_URL = "/docs/assets/"  # flask-smorest's Swagger UI page loads its CSS and scripts from here
ASSETS_MAX_AGE_S = 86400

blp = Blueprint("docs_assets", __name__)


@blp.get(ASSETS_URL + "<path:filename>")
def asset(filename: str):
    return send_from_directory(swagger_ui_path, filename, max_age=ASSETS_MAX_AGE_S)
