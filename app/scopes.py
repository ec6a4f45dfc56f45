"""The one table of which scope each route needs: (endpoint, method) -> scope, or OPEN.

Every rule the app registers must be here (tests/api/test_scopes.py walks app.url_map), so a new
route cannot be forgotten: its test fails until it is given a scope. Reading is `read`; creating
work is `publish`; taking messages is `consume` (even where an older API takes them with a GET);
changing configuration, redriving, canceling, retrying, running a request now, the clock and the
tokens themselves are `admin`. A token with `admin` may do everything.

/sqs (an SQS-compatible endpoint) takes every action at one URL: its routes map to SQS_ROUTE and
call `sqs_action_scope(action)` to learn the scope of the action they were asked for.
"""
from __future__ import annotations

from app.core.tokens import ADMIN, CONSUME, PUBLISH, READ

OPEN = None  # no token needed
SQS_ROUTE = "by SQS action"  # the route checks sqs_action_scope() itself

_EVERY_GET = {"GET": READ}

ROUTE_SCOPES: dict[str, dict[str, str | None]] = {
    # operations and documents
    "ops.healthz": {"GET": OPEN},
    "ops.readyz": _EVERY_GET,
    "ops.metrics": _EVERY_GET,
    "api-docs.openapi_json": _EVERY_GET,
    "api-docs.openapi_swagger_ui": _EVERY_GET,
    "docs_assets.asset": _EVERY_GET,
    "static": _EVERY_GET,
    # /v1/requests
    "requests.Requests": {"GET": READ, "POST": PUBLISH},
    "requests.create_batch": {"POST": PUBLISH},
    "requests.RequestItem": {"GET": READ, "DELETE": ADMIN},
    "requests.request_attempts": _EVERY_GET,
    "requests.RequestResponse": {"GET": READ, "DELETE": ADMIN},
    "requests.request_status": _EVERY_GET,
    "requests.retry_request": {"POST": ADMIN},
    "requests.run_request": {"POST": ADMIN},
    "requests.cancel_matching": {"POST": ADMIN},
    # /v1/queues
    "queues.list_queues": _EVERY_GET,
    "queues.Queue": {"GET": READ, "PUT": ADMIN, "DELETE": ADMIN},
    "queues.dead_letters": _EVERY_GET,
    "queues.redrive": {"POST": ADMIN},
    "queues.push_message": {"POST": PUBLISH},
    "queues.push_batch": {"POST": PUBLISH},
    "queues.receive": {"POST": CONSUME},
    "queues.Message": {"DELETE": CONSUME, "PATCH": CONSUME},
    "queues.ack_batch": {"POST": CONSUME},
    # /v1/batches
    "batches.list_batches": _EVERY_GET,
    "batches.BatchItem": {"GET": READ, "PUT": ADMIN, "DELETE": ADMIN},
    "batches.dead_batches": _EVERY_GET,
    "batches.redrive_dead": {"POST": ADMIN},
    "batches.add_record": {"POST": PUBLISH},
    "batches.add_records": {"POST": PUBLISH},
    "batches.record_receipt": _EVERY_GET,
    # /v1/schedules
    "schedules.list_schedules": _EVERY_GET,
    "schedules.ScheduleItem": {"GET": READ, "PUT": ADMIN, "DELETE": ADMIN},
    "schedules.pause_schedule": {"POST": ADMIN},
    "schedules.resume_schedule": {"POST": ADMIN},
    "schedules.run_schedule": {"POST": PUBLISH},
    # the rest of /v1
    "workers.list_workers": _EVERY_GET,
    "gates.list_destinations": _EVERY_GET,
    "gates.get_flow": _EVERY_GET,
    "clock.get_clock": _EVERY_GET,
    "clock.advance_clock": {"POST": ADMIN},
    "tokens.Tokens": {"GET": ADMIN, "POST": ADMIN},
    "tokens.TokenItem": {"GET": ADMIN, "DELETE": ADMIN},
    # /compat
    "compat_timers.health": _EVERY_GET,
    "compat_timers.set_timer": {"POST": PUBLISH},
    "compat_timers.get_timer": _EVERY_GET,
    "compat_htq.queue": _EVERY_GET,
    "compat_htq.send": {"POST": PUBLISH},
    "compat_htq.request_item": _EVERY_GET,
    "compat_htq.cancel": {"DELETE": ADMIN},
    "compat_htq.response": _EVERY_GET,
    "compat_htq.purge": {"DELETE": ADMIN},
    "compat_htq.status": _EVERY_GET,
    "compat_wq.push": {"POST": PUBLISH},
    "compat_wq.receive": {"GET": CONSUME},
    "compat_wq.confirm": {"PATCH": CONSUME},
    "compat_pushpull.push": {"POST": PUBLISH},
    "compat_pushpull.pull": {"GET": CONSUME},
    "compat_forwarder.healthz": _EVERY_GET,
    "compat_forwarder.post_log": {"POST": PUBLISH},
    # /ui: the dashboard checks its own session (app/ui/views.py), then this table
    "ui.login": {"GET": OPEN, "POST": OPEN},
    "ui.logout": {"POST": OPEN},
    "ui.static": {"GET": OPEN},
    "ui.overview": _EVERY_GET,
    "ui.unknown_page": {"GET": READ, "POST": READ},
    "ui.requests_page": _EVERY_GET,
    "ui.request_page": _EVERY_GET,
    "ui.find_request": _EVERY_GET,
    "ui.cancel_request": {"POST": ADMIN},
    "ui.retry_request": {"POST": ADMIN},
    "ui.run_request": {"POST": ADMIN},
    "ui.queues_page": _EVERY_GET,
    "ui.queue_page": _EVERY_GET,
    "ui.redrive_queue": {"POST": ADMIN},
    "ui.batches_page": _EVERY_GET,
    "ui.batch_page": _EVERY_GET,
    "ui.redrive_batch": {"POST": ADMIN},
    "ui.schedules_page": _EVERY_GET,
    "ui.pause_schedule": {"POST": ADMIN},
    "ui.resume_schedule": {"POST": ADMIN},
    "ui.run_schedule": {"POST": PUBLISH},
    "ui.workers_page": _EVERY_GET,
    # AWS signatures (HTQ_SQS_CREDENTIALS), checked by the route itself, with each credential's
    # scopes (Settings.sqs_scopes; all of them when its entry names none) against sqs_action_scope().
    "sqs.sqs": {"POST": SQS_ROUTE},
}

# The SQS-compatible API's actions (for the /sqs blueprint, whose routes map to SQS_ROUTE).
SQS_ACTION_SCOPES: dict[str, str] = {
    "SendMessage": PUBLISH, "SendMessageBatch": PUBLISH,
    "ReceiveMessage": CONSUME, "DeleteMessage": CONSUME, "DeleteMessageBatch": CONSUME,
    "ChangeMessageVisibility": CONSUME, "ChangeMessageVisibilityBatch": CONSUME,
    "GetQueueUrl": READ, "GetQueueAttributes": READ, "ListQueues": READ, "ListQueueTags": READ,
    "ListDeadLetterSourceQueues": READ,
    "CreateQueue": ADMIN, "DeleteQueue": ADMIN, "SetQueueAttributes": ADMIN, "PurgeQueue": ADMIN,
    "TagQueue": ADMIN, "UntagQueue": ADMIN,
}


class UnmappedRoute(LookupError):
    """A route missing from ROUTE_SCOPES: refused (403) rather than let through."""


def scope_for(endpoint: str | None, method: str) -> str | None:
    """The scope `method` on `endpoint` needs (OPEN: none, SQS_ROUTE: ask sqs_action_scope).
    HEAD and OPTIONS need what GET needs. Raises UnmappedRoute for what the table lacks."""
    methods = ROUTE_SCOPES.get(endpoint or "")
    if methods is None:
        raise UnmappedRoute(endpoint)
    if method in ("HEAD", "OPTIONS"):
        method = "GET" if "GET" in methods else next(iter(methods))
    if method not in methods:
        raise UnmappedRoute(f"{endpoint} {method}")
    return methods[method]


def sqs_action_scope(action: str) -> str:
    """The scope an SQS action needs; an unknown action needs admin (it is refused later anyway)."""
    return SQS_ACTION_SCOPES.get(action, ADMIN)
