"""Pages of the dashboard. Each view reads through the core services the API uses (never Redis),
renders one template, and each form posts to a view that calls one core operation and redirects
back (post/redirect/get), so reloading a page never repeats an action."""
from __future__ import annotations

import time
from http import HTTPStatus

import redis
from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from app import scopes
from app.core import clock, overview
from app.core.errors import HTQError
from app.core.model import FINAL_STATUSES, REQUEST_STATUSES
from app.core.tokens import ENV_TOKEN, Token
from app.core.tokens import digest as token_digest
from app.errors import OUT_OF_MEMORY_MESSAGE, REDIS_RETRY_AFTER_S, STATUS_BY_ERROR
from app.extensions import services
from app.storage.client import OUT_OF_MEMORY, UNAVAILABLE
from app.ui import display, session
from app.ui.chart import bar_chart

blp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates", static_folder="static")

PAGE_SIZE = 50
REFRESH_S = (5, 15, 60)  # the overview's auto-refresh choices (a <meta> refresh: no script)
DEAD_SHOWN = 50  # dead letters or dead batches listed on a page
CHART_MINUTES = 60
OVERVIEW_SCHEDULES = 10  # listed on the overview; the schedules page has them all
OPEN_ENDPOINTS = ("ui.login", "ui.static")
# What a page says after a form did its work (?done=...): fixed texts, never echoed input.
DONE = {
    "canceled": "Canceled.",
    "retried": "Queued again, to be sent now.",
    "ran": "Handed to the workers, to be sent now.",
    "redriven": "Sent again: {moved} moved.",
    "paused": "Paused: no run until it is resumed.",
    "resumed": "Resumed: it runs at its next tick.",
    "scheduled_run": "Run now, outside its timetable.",
    "logged_out": "Logged out.",
}
SECURITY_HEADERS = {
    # No script at all; styles and images from htq itself (the chart is inline SVG markup).
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",  # no page of buttons inside another site's frame
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


# -- every request -------------------------------------------------------------------------------

@blp.before_request
def _check_session_and_form():
    """Pages need a session when tokens are on; every POST needs the form's CSRF value."""
    g.csrf = request.cookies.get(session.CSRF_COOKIE) or session.new_csrf()
    g.now_ms = services().requests.now_ms()
    tokens = services().settings.api_tokens
    g.tokens_on = bool(tokens)
    if request.endpoint == "ui.static":
        return None
    if request.method == "POST" and not session.csrf_ok(request):
        abort(403, description="This form came without its security value, or from another site. "
                               "Reload the page and try again.")
    if not tokens or request.endpoint in OPEN_ENDPOINTS:
        return None
    token = _logged_in(tokens)
    if token is None:
        back_to = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("ui.login", next=back_to), 303)
    needed = scopes.scope_for(request.endpoint, request.method) if request.endpoint else None
    if needed and not token.allows(needed):
        abort(403, description=f"The token you logged in with lacks the '{needed}' scope this needs.")
    g.token = token
    return None


def _logged_in(tokens: tuple[str, ...]) -> Token | None:
    """The token of this browser's session: one of HTQ_API_TOKENS, or a scoped token (looked up)."""
    value = request.cookies.get(session.SESSION_COOKIE)
    if session.valid_session(value, tokens, time.time()):
        return ENV_TOKEN
    return session.scoped_session_token(value, services().tokens.with_digest, time.time())


@blp.after_request
def _headers(response):
    if request.endpoint != "ui.static":
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-store"
    if request.cookies.get(session.CSRF_COOKIE) != g.get("csrf"):
        session.set_cookie(response, request, session.CSRF_COOKIE, g.csrf)
    return response


def _done_message() -> str | None:
    text = DONE.get(request.args.get("done", ""))
    if text is None:
        return None
    moved = request.args.get("moved", "")
    return text.format(moved=int(moved) if moved.isdigit() else 0)


@blp.context_processor
def _context():
    return {"done": _done_message(), "csrf_field": session.CSRF_FIELD, "csrf": g.get("csrf", ""),
            "now_ms": g.get("now_ms", 0), "tokens_on": g.get("tokens_on", False),
            "when": display.when, "duration": display.duration, "seconds": display.seconds,
            "preview": display.preview, "preview_value": display.preview_value, "badge": display.status_badge,
            "SHORT_PREVIEW_CHARS": display.SHORT_PREVIEW_CHARS}


def _error_page(code: int, message: str, headers: dict | None = None):
    page = render_template("ui/error.html", code=code, phrase=HTTPStatus(code).phrase, message=message)
    return page, code, headers or {}


@blp.errorhandler(HTQError)
def _domain_error(exc: HTQError):
    code = next(code for cls, code in STATUS_BY_ERROR.items() if isinstance(exc, cls))
    return _error_page(code, exc.message)


@blp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return _error_page(exc.code or 500, exc.description or "")


def _redis_down(exc: redis.RedisError):
    return _error_page(503, "The store (Redis) does not answer; this page will work again once it does.",
                       {"Retry-After": str(REDIS_RETRY_AFTER_S)})


for _error in UNAVAILABLE:
    blp.register_error_handler(_error, _redis_down)
blp.register_error_handler(OUT_OF_MEMORY, lambda exc: _error_page(503, OUT_OF_MEMORY_MESSAGE))


def _back(endpoint: str, **values):
    """303 to a page (GET), with what was done in its query."""
    return redirect(url_for(endpoint, **values), 303)


# -- login ---------------------------------------------------------------------------------------

@blp.route("/login", methods=["GET", "POST"])
def login():
    tokens = services().settings.api_tokens
    next_path = _local_path(request.values.get("next", ""))
    if not tokens:
        return redirect(next_path, 303)
    if request.method == "GET":
        return render_template("ui/login.html", next_path=next_path, failed=False)
    given = request.form.get("token", "").strip()
    env_token = session.known_token(given, tokens)
    expires_s = int(time.time()) + session.SESSION_S
    if env_token is not None:
        value = session.session_value(env_token, expires_s)
    else:
        scoped = services().tokens.authenticate(given) if given else None
        if scoped is None or scoped.id is None:
            return render_template("ui/login.html", next_path=next_path, failed=True), 401
        value = session.scoped_session_value(token_digest(given), scoped.id, expires_s)
    response = redirect(next_path, 303)
    session.set_cookie(response, request, session.SESSION_COOKIE, value, max_age_s=session.SESSION_S)
    return response


@blp.post("/logout")
def logout():
    response = redirect(url_for("ui.login", done="logged_out"), 303)
    session.clear_cookie(response, request, session.SESSION_COOKIE)
    return response


def _local_path(path: str) -> str:
    """Where to go after login: a path of the dashboard only (no other site, no other route)."""
    if path.startswith("/ui") and not path.startswith("//") and "\\" not in path:
        return path
    return url_for("ui.overview")


# -- overview ------------------------------------------------------------------------------------

def overview_page():
    svc = services()
    counts = overview.requests_by_status(svc.store)
    per_minute = overview.deliveries_per_minute(svc.store, g.now_ms, CHART_MINUTES)
    minute_ms = overview.MINUTE_MS
    first_minute_ms = g.now_ms - g.now_ms % minute_ms - (CHART_MINUTES - 1) * minute_ms
    labels = [clock.to_rfc3339(first_minute_ms + index * minute_ms)[11:16] + " UTC" for index in range(CHART_MINUTES)]
    chart = bar_chart(per_minute, labels, title="Requests finished per minute, last 60 minutes")
    refresh = request.args.get("refresh", "")
    return render_template("ui/overview.html", refresh_s=int(refresh) if refresh in map(str, REFRESH_S) else None,
                           refresh_choices=REFRESH_S, counts=counts, total=sum(counts.values()),
                           per_minute=per_minute, chart=chart, lateness=overview.lateness(svc.store, g.now_ms),
                           queues=svc.queues.list(), batches=svc.batches.list(), workers=svc.workers.live(),
                           schedules=svc.schedules.list()[:OVERVIEW_SCHEDULES], target_text=target_text)


blp.add_url_rule("", "overview", overview_page)
blp.add_url_rule("/", "overview", overview_page)


# -- requests ------------------------------------------------------------------------------------

@blp.get("/requests")
def requests_page():
    status = request.args.get("status") or None
    if status is not None and status not in REQUEST_STATUSES:
        abort(400, description=f"Unknown status; one of {', '.join(REQUEST_STATUSES)}.")
    cursor = request.args.get("cursor") or None
    schedule = request.args.get("schedule") or None
    token = request.args.get("token") or None
    items, next_cursor = services().requests.list(status, PAGE_SIZE, cursor, schedule=schedule, token=token)
    counts = overview.requests_by_status(services().store)
    next_url = None
    if next_cursor:
        next_url = url_for("ui.requests_page", **{k: v for k, v in (("status", status), ("schedule", schedule),
                                                                    ("token", token), ("cursor", next_cursor)) if v})
    return render_template("ui/requests.html", items=items, status=status, counts=counts,
                           statuses=REQUEST_STATUSES, next_url=next_url, paged=cursor is not None, schedule=schedule,
                           token=token)


@blp.get("/requests/find")
def find_request():
    """The search box of the requests page: to the page of the id typed in."""
    request_id = request.args.get("id", "").strip()
    services().requests.get(request_id)  # 404 or 410 page when there is no such request
    return redirect(url_for("ui.request_page", request_id=request_id), 303)


@blp.get("/requests/<request_id>")
def request_page(request_id: str):
    requests = services().requests
    resource = requests.get(request_id)
    attempts = requests.attempts(request_id)
    response = requests.latest_response(request_id)
    return render_template("ui/request.html", r=resource, attempts=attempts, response=response,
                           final=resource["status"] in FINAL_STATUSES,
                           can_run=_waiting(resource),
                           can_retry=resource["status"] in ("failed", "canceled"), json_content=display.json_content)


def _waiting(resource: dict) -> bool:
    """Whether its next attempt waits for a time still ahead (what "run now" changes)."""
    if resource["status"] in ("scheduled", "retrying"):
        return True
    next_at = resource["next_attempt_at"]
    return resource["status"] == "queued" and next_at is not None and clock.from_rfc3339(next_at) > g.now_ms


@blp.post("/requests/<request_id>/cancel")
def cancel_request(request_id: str):
    services().requests.cancel(request_id)
    return _back("ui.request_page", request_id=request_id, done="canceled")


@blp.post("/requests/<request_id>/retry")
def retry_request(request_id: str):
    services().requests.retry(request_id)
    return _back("ui.request_page", request_id=request_id, done="retried")


@blp.post("/requests/<request_id>/run")
def run_request(request_id: str):
    services().requests.run_now(request_id)
    return _back("ui.request_page", request_id=request_id, done="ran")


# -- queues and batches --------------------------------------------------------------------------

@blp.get("/queues")
def queues_page():
    return render_template("ui/queues.html", queues=services().queues.list())


@blp.get("/queues/<name>")
def queue_page(name: str):
    queues = services().queues
    return render_template("ui/queue.html", q=queues.get(name), dead=queues.dead(name, DEAD_SHOWN))


@blp.post("/queues/<name>/redrive")
def redrive_queue(name: str):
    moved = services().queues.redrive(name)
    return _back("ui.queue_page", name=name, done="redriven", moved=moved)


@blp.get("/batches")
def batches_page():
    return render_template("ui/batches.html", batches=services().batches.list())


@blp.get("/batches/<name>")
def batch_page(name: str):
    batches = services().batches
    return render_template("ui/batch.html", b=batches.get(name), dead=batches.dead(name, DEAD_SHOWN))


@blp.post("/batches/<name>/redrive")
def redrive_batch(name: str):
    moved = services().batches.redrive(name)
    return _back("ui.batch_page", name=name, done="redriven", moved=moved)


# -- schedules -----------------------------------------------------------------------------------

def target_text(target: dict) -> str:
    """What a schedule's run does, in a few words."""
    if "request" in target:
        return f"{target['request'].get('method', 'POST')} {target['request']['url']}"
    if "queue" in target:
        return f"a message to queue {target['queue']}"
    return f"a record to batch {target['batch']}"


@blp.get("/schedules")
def schedules_page():
    return render_template("ui/schedules.html", schedules=services().schedules.list(), target_text=target_text)


@blp.post("/schedules/<name>/pause")
def pause_schedule(name: str):
    services().schedules.pause(name)
    return _back("ui.schedules_page", done="paused")


@blp.post("/schedules/<name>/resume")
def resume_schedule(name: str):
    services().schedules.resume(name)
    return _back("ui.schedules_page", done="resumed")


@blp.post("/schedules/<name>/run")
def run_schedule(name: str):
    services().schedules.run_now(name)
    return _back("ui.schedules_page", done="scheduled_run")


# -- workers -------------------------------------------------------------------------------------

@blp.get("/workers")
def workers_page():
    return render_template("ui/workers.html", workers=services().workers.live(),
                           destinations=services().gates.destinations())


@blp.route("/<path:unknown>", methods=["GET", "POST"])
def unknown_page(unknown: str):
    """An address under /ui that is no page: answered as a page too (the app's 404 is JSON)."""
    abort(404, description="There is no such page in the dashboard.")

