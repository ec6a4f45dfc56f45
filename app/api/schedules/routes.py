"""Routes of /v1/schedules: recurring runs that make a request, a queue message or a batch record.

A bad schedule name is 422 on PUT and 404 elsewhere (no schedule can have it).
"""
from __future__ import annotations

from flask.views import MethodView

from app.api.common import Blueprint, require_json_body
from app.api.egress import check_targets, origin, request_targets
from app.api.schedules.schemas import (
    EXAMPLE,
    RESOURCE_EXAMPLE,
    RUN_EXAMPLE,
    RunIdSchema,
    ScheduleListSchema,
    SchedulePutSchema,
    ScheduleSchema,
)
from app.extensions import services

blp = Blueprint("schedules", __name__, url_prefix="/v1/schedules",
                description="Recurring schedules: a cron or interval timetable, each tick run exactly once.")
require_json_body(blp)


@blp.route("")
@blp.response(200, ScheduleListSchema, example={"items": [RESOURCE_EXAMPLE]})
def list_schedules():
    """Every schedule, by name."""
    return {"items": services().schedules.list()}


@blp.route("/<name:name>")
class ScheduleItem(MethodView):
    @blp.arguments(SchedulePutSchema, example=EXAMPLE)
    @blp.response(200, ScheduleSchema, example=RESOURCE_EXAMPLE)
    @blp.alt_response(201, schema=ScheduleSchema, description="Created", example=RESOURCE_EXAMPLE)
    def put(self, fields, name):
        """Create (201) or replace (200) a schedule: `cron` (in `timezone`) or `every` seconds, and
        a `target`: `{"request": <a /v1/requests body>}`, `{"queue": name, "message": any}` or
        `{"batch": name, "record": any}`.

        Each tick runs exactly once. A local time inside a DST gap runs at the first instant after
        the gap; a local time that occurs twice runs once, the first time. Ticks missed while htq
        was down collapse into one run of the latest of them. Runs so far are kept on replace."""
        if "request" in fields["target"]:
            check_targets(request_targets(fields["target"]["request"]), at=("target", "request"))
        resource, created = services().schedules.put(name, fields, origin())
        return resource, 201 if created else 200

    @blp.response(200, ScheduleSchema, example=RESOURCE_EXAMPLE)
    def get(self, name):
        """The schedule, with its next run, its latest run and the number of runs."""
        return services().schedules.get(name)

    @blp.response(204)
    def delete(self, name):
        """Delete the schedule; the requests it made stay until they expire."""
        services().schedules.delete(name)


@blp.route("/<name:name>/pause", methods=["POST"])
@blp.response(200, ScheduleSchema, example={**RESOURCE_EXAMPLE, "paused": True, "next_run_at": None})
def pause_schedule(name):
    """Stop running ticks until resumed (repeat: 200)."""
    return services().schedules.pause(name)


@blp.route("/<name:name>/resume", methods=["POST"])
@blp.response(200, ScheduleSchema, example=RESOURCE_EXAMPLE)
def resume_schedule(name):
    """Run ticks again from the next one after now; ticks passed while paused do not run."""
    return services().schedules.resume(name)


@blp.route("/<name:name>/run", methods=["POST"])
@blp.response(202, RunIdSchema, example=RUN_EXAMPLE)
def run_schedule(name):
    """Run once now, outside the timetable (the next tick stays where it is); the id of the
    request, message or record made."""
    return {"id": services().schedules.run_now(name)}
