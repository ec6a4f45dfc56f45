"""The htq web application: `create_app()` builds it."""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from app.core.publish import Publisher
from config import Settings, load_settings


def create_app(settings: Settings | None = None, *, publisher: Publisher | None = None,
               clock_ms: Callable[[], int] | None = None) -> Flask:
    """Application factory: request class, settings, logging, extensions, error handlers,
    blueprints, in that order.

    `publisher` and `clock_ms` stand in for the broker and the real clock (tests inject them)."""
    settings = settings or load_settings()
    app = Flask(__name__)
    _register_request_class(app)
    _register_config(app, settings)
    _register_logging(settings)
    _register_extensions(app, settings, publisher, clock_ms)
    _register_errors(app)
    _register_response_rules(app)
    _register_auth(app)
    _register_blueprints(app)
    _register_env_batch(app)
    _check_redis_policy(app)
    return app


def _register_request_class(app: Flask) -> None:
    from app.request import Request

    app.request_class = Request


def _register_config(app: Flask, settings: Settings) -> None:
    from app.api.docs import ASSETS_URL as SWAGGER_UI_ASSETS_URL

    app.config.update(
        HTQ_SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        API_TITLE="htq",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_ASSETS_URL,
        JSON_SORT_KEYS=False,
    )
    from app.api.common import JSONProvider

    app.json = JSONProvider(app)
    app.json.sort_keys = False


def _register_logging(settings: Settings) -> None:
    from app.log import configure_logging

    configure_logging(settings.log_level, settings.log_format)


def _register_extensions(app: Flask, settings: Settings, publisher: Publisher | None,
                         clock_ms: Callable[[], int] | None) -> None:
    from app.api.openapi import init_document
    from app.extensions import api, init_services

    api.init_app(app)
    init_document(app, api, settings)
    init_services(app, settings, publisher, clock_ms)


def _register_errors(app: Flask) -> None:
    from app.errors import register_error_handlers

    register_error_handlers(app)


def _register_response_rules(app: Flask) -> None:
    from app.responses import register_response_rules

    register_response_rules(app)


def _register_auth(app: Flask) -> None:
    from app.auth import init_auth

    init_auth(app)


def _register_blueprints(app: Flask) -> None:
    from app.api.batches.routes import blp as batches_blp
    from app.api.clock.routes import blp as clock_blp
    from app.api.docs import blp as docs_assets_blp
    from app.api.gates.routes import blp as gates_blp
    from app.api.openapi import finish_document
    from app.api.ops import blp as ops_blp
    from app.api.queues.routes import blp as queues_blp
    from app.api.requests.routes import blp as requests_blp
    from app.api.schedules.routes import blp as schedules_blp
    from app.api.sqs.routes import blp as sqs_blp
    from app.api.tokens.routes import blp as tokens_blp
    from app.api.workers.routes import blp as workers_blp
    from app.compat.forwarder import blp as compat_forwarder_blp
    from app.compat.htq import blp as compat_htq_blp
    from app.compat.pushpull import blp as compat_pushpull_blp
    from app.compat.timers import blp as compat_timers_blp
    from app.compat.wq import blp as compat_wq_blp
    from app.extensions import api
    from app.ui.views import blp as ui_blp

    app.register_blueprint(ops_blp)
    app.register_blueprint(docs_assets_blp)
    api.register_blueprint(requests_blp)
    api.register_blueprint(queues_blp)
    api.register_blueprint(batches_blp)
    api.register_blueprint(schedules_blp)
    api.register_blueprint(workers_blp)
    api.register_blueprint(gates_blp)
    api.register_blueprint(clock_blp)
    api.register_blueprint(tokens_blp)
    app.register_blueprint(compat_timers_blp)
    app.register_blueprint(compat_htq_blp)
    app.register_blueprint(compat_wq_blp)
    app.register_blueprint(compat_pushpull_blp)
    app.register_blueprint(compat_forwarder_blp)
    app.register_blueprint(ui_blp)
    app.register_blueprint(sqs_blp)
    finish_document(api)


def _register_env_batch(app: Flask) -> None:
    """Configure the `log` batch from WEBHOOK_* when set. Redis being down is not fatal here: the
    batch is also configured by the workers, and by the first request that needs it."""
    import logging

    import redis

    from app.extensions import services

    with app.app_context():
        try:
            services().batches.ensure_env_batch()
        except redis.RedisError as exc:
            logging.getLogger(__name__).warning("batch log: not configured from WEBHOOK_* yet (%s)", exc)


def _check_redis_policy(app: Flask) -> None:
    """Warn when Redis may evict keys: a full Redis would then delete htq's requests, messages and
    records without an error anywhere, where `noeviction` refuses writes (503) and keeps them."""
    import logging

    import redis

    from app.extensions import services
    from app.storage.client import evicting_policy

    try:
        with app.app_context():
            policy = evicting_policy(services().store.redis)
    except redis.RedisError:
        return  # not reachable yet: nothing to tell
    if policy:
        logging.getLogger(__name__).warning(
            "Redis maxmemory-policy is %s: once Redis is full it deletes keys, and with them requests, messages "
            "and records, silently. Set maxmemory-policy noeviction (see README.rst, Operations).", policy)
