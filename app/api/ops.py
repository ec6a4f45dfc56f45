"""Operations routes: liveness, readiness and Prometheus metrics (kept out of the OpenAPI spec)."""
from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import REGISTRY as PROCESS_REGISTRY

from app.extensions import services
from app.metrics import StoreCollector

blp = Blueprint("ops", __name__)


@blp.get("/healthz")
def healthz():
    return Response("OK", mimetype="text/plain")


@blp.get("/readyz")
def readyz():
    try:
        services().store.ping()
    except redis.RedisError as exc:
        response = jsonify({"ready": False, "redis": str(exc)})
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response
    return jsonify({"ready": True, "redis": "ok"})


@blp.get("/metrics")
def metrics():
    """Process metrics of this web process, plus the deployment's figures read from Redis now."""
    store_registry = CollectorRegistry(auto_describe=False)
    store_registry.register(StoreCollector(services().store, services().workers))
    body = generate_latest(PROCESS_REGISTRY) + generate_latest(store_registry)
    # content_type, not mimetype: Flask would add a second charset to CONTENT_TYPE_LATEST's.
    return Response(body, content_type=CONTENT_TYPE_LATEST)
