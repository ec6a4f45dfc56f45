"""Routes of /v1/clock: read the clock, and move a virtual one ahead (development and tests)."""
from __future__ import annotations

from app.api import examples
from app.api.clock.schemas import AdvancedSchema, AdvanceSchema, ClockSchema
from app.api.common import Blueprint
from app.extensions import services

blp = Blueprint("clock", __name__, url_prefix="/v1/clock",
                description="htq's clock; with HTQ_CLOCK=virtual, one that tests and development move ahead.")


@blp.route("")
@blp.response(200, ClockSchema, example=examples.CLOCK)
def get_clock():
    """htq's now, and whether it is virtual (real time plus an offset shared by every process)."""
    return services().clock.state()


@blp.route("/advance", methods=["POST"])
@blp.arguments(AdvanceSchema, example=examples.ADVANCE)
@blp.response(200, AdvancedSchema, example=examples.ADVANCED)
@blp.alt_response(409, description="The clock is real (HTQ_CLOCK=real): it cannot be moved")
def advance_clock(body):
    """Move a virtual clock `seconds` ahead: everything that came due meanwhile happens as if that
    time had passed (deferred requests and retries, queue delays, visibility timeouts and
    retention, batch intervals, request expiry), in due order and promptly. Time never moves back."""
    return services().clock.advance(body["seconds"])
