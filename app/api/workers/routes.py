"""Routes of /v1/workers: the live worker processes."""
from __future__ import annotations

from app.api import examples
from app.api.common import Blueprint
from app.api.workers.schemas import WorkerListSchema
from app.extensions import services

blp = Blueprint("workers", __name__, url_prefix="/v1/workers", description="The live Celery worker processes.")


@blp.route("")
@blp.response(200, WorkerListSchema, example=examples.WORKERS)
def list_workers():
    """The workers that heartbeated within the last few seconds, by name. A worker that stops
    heartbeating (killed, frozen, its host lost) leaves this list within 10 s, and whatever it held
    goes back to work at once."""
    return {"items": services().workers.live()}
