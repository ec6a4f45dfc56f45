"""Routes of /v1/flows and /v1/destinations: flow control per key and the circuit breakers."""
from __future__ import annotations

from app.api import examples
from app.api.common import Blueprint
from app.api.gates.schemas import DestinationListSchema, FlowStateSchema
from app.extensions import services

blp = Blueprint("gates", __name__, url_prefix="/v1",
                description="Flow control per key and the circuit breaker per destination.")


@blp.route("/flows/<key>")
@blp.response(200, FlowStateSchema, example=examples.FLOW)
def get_flow(key: str):
    """A flow key's limits (the latest sent with one of its requests) and its load now. 404 if no
    request sent the key in the last 30 days."""
    return services().gates.flow(key)


@blp.route("/destinations")
@blp.response(200, DestinationListSchema, example=examples.DESTINATIONS)
def list_destinations():
    """The destinations (`host[:port]`) whose circuit breaker has news: failures in a row, open,
    or half-open (one probe let through). A destination not listed is closed and healthy. The
    first 1,000 by name."""
    return {"items": services().gates.destinations()}
