"""Every Redis key htq uses, built from one prefix. No other module formats a key.

Key schema (``P`` is the prefix, ``htq`` by default):

Deferred requests
  P:req:{id}               hash    the request: ``spec`` (JSON of what the client sent, with its
                                   ``id``), ``status``, ``created_ms``, ``due_ms``,
                                   ``next_attempt_ms``, ``attempts`` (started so far),
                                   ``attempt_limit``, ``timeout_ms``, ``started_ms`` (of the latest
                                   attempt), ``ended_ms``, ``last_error``, ``alias`` (compat),
                                   ``response_deleted``, ``schedule`` (of a request a schedule
                                   made), ``token`` (the id of the token that made it, ``env``
                                   for HTQ_API_TOKENS; absent with auth off), ``holder`` (the
                                   worker holding its next or running attempt); the lease of a
                                   running attempt is its score in P:requests:inflight. Deleted by
                                   the expiry sweep ``retention`` after it ended
  P:req:{id}:attempts      list    one JSON object per started attempt, oldest first
  P:req:{id}:response      string  JSON of the last response (or final error) of the request
  P:requests:due           zset    id -> due time (ms) of requests waiting beyond the horizon
                                   (``scheduled`` and ``retrying``); the relay claims from it
  P:requests:inflight      zset    id -> deadline (ms): for ``queued`` the time after which the
                                   relay publishes again, for ``running`` the lease expiry
  P:requests:all           zset    every live id, all scores 0, ids sort by creation time: the
                                   listing index (ZREVRANGEBYLEX gives newest first)
  P:requests:status:{s}    zset    the same, for one status ``s``
  P:requests:ended         zset    id -> time it ended (ms); the expiry sweep reads it, and the
                                   dashboard counts it by minute (ZCOUNT, core/overview.py)
  P:requests:archive       string  Bloom filter bitmap of expired ids (GET answers 410, not 404)
  P:requests:outbox        zset    ``{kind}:{id}`` -> time (ms) the relay next publishes it: a
                                   notice owed about request ``id`` (kind ``callback`` or
                                   ``cancel``, storage/outbox.py), recorded by the script that
                                   ends the request, put a publish grace later by each publish,
                                   removed by its task once delivered or given up, or by the
                                   expiry sweep with the request
  P:idem:{key}             string  ``{id} {sha1 of body}`` of an Idempotency-Key; TTL 24 h
  P:compat:{N}:{A}         string  the id of the request a compat profile ``N`` (``timers``, ``htq``)
                                   created under its own id ``A`` (a uuid4); written by the same
                                   script as the request, deleted by the expiry sweep, which puts
                                   this key's name into the archive (``A`` then answers as expired)
  P:compat:{N}:requests    zset    the ids of profile ``N``'s live requests, scores 0 (sorted by
                                   creation time, like P:requests:all); the hash field ``alias``
                                   (``N:A``) links a request back to its alias

Message queues (``Q`` is a queue name, ``[A-Za-z0-9_-]{1,80}``, so it never contains ``:``)
  P:queues                 set     the names of every queue (the registry)
  P:queue:{Q}              hash    config: ``visibility_timeout_ms``, ``max_receives``,
                                   ``retention_ms``, ``delay_ms``, ``created_ms``, ``updated_ms``,
                                   ``seq`` (the push counter that prefixes message ids)
  P:queue:{Q}:ready        zset    id -> time (ms) it becomes available: visible when <= now,
                                   delayed when > now; equal times sort by id = push order
  P:queue:{Q}:inflight     zset    id -> lock expiry (ms) of a received message
  P:queue:{Q}:dead         zset    id -> time (ms) it was dead-lettered
  P:queue:{Q}:bodies       hash    id -> ``j<JSON text>`` or ``t<text>``
  P:queue:{Q}:meta         hash    id -> ``<available_ms> <enqueued_ms> <receive_count> <receipt>``
                                   then `` <first_received_ms>`` once received (available_ms is
                                   the score it returns to ``ready`` with)
  P:queue:{Q}:ages         zset    id -> time (ms) it first became available; the sweep drops
                                   messages older than the queue's retention from it
  P:queue:{Q}:attrs        hash    id -> message attributes (SQS ``MessageAttributes``) as JSON
                                   text, only for messages sent with some
  Every message is in exactly one of ready, inflight, dead; bodies, meta and ages hold all three.

Batch forwarding (``B`` is a batch name, ``[A-Za-z0-9_-]{1,80}``)
  P:batches                set     the names of every configured batch
  P:batches:due            zset    B -> the next time (ms) beat has work for it: its oldest pending
                                   record reaches ``interval``, or a taken batch's deadline passes
  P:batch:{B}              hash    config (``endpoint``, ``max_records``, ``max_bytes``,
                                   ``interval_ms``, ``headers``, ``max_attempts``,
                                   ``backoff_base_ms``, ``timeout_ms``, ``epoch``, ``created_ms``,
                                   ``token_id`` and ``allowed_hosts`` (JSON) of the token that
                                   configured it: the claim hands the hosts to the worker),
                                   pending state (``pending_bytes``: sum of the pending records'
                                   sizes, ``oldest_ms``: arrival of the oldest pending record),
                                   counters (``batch_seq``, ``record_seq``, ``taken_seq``: records
                                   taken into batches so far, ``sent_batches``,
                                   ``sent_records``, ``posts_{outcome}``) and ``last_sent_ms``,
                                   ``last_status_code``, ``last_error`` of the latest POST
  P:batch:{B}:pending      list    pending records (compact JSON text), oldest first
  P:batch:{B}:bodies       hash    batch id -> the JSON array POSTed (taken and dead batches)
  P:batch:{B}:meta         hash    batch id -> JSON ``{state, attempts, records, first, bytes,
                                   taken_ms, last_status_code, error, next, after}``; state
                                   ``queued`` (attempt ``attempts + 1`` waits to start), ``sending``,
                                   ``dead`` or ``parked`` (the second half of a batch split on a
                                   413 waits for batch ``after``, whose ``next`` it is, to leave)
  P:batch:{B}:taken        zset    batch id -> deadline (ms): for ``queued`` the time after which
                                   the sweep publishes it again, for ``sending`` the lease expiry
  P:batch:{B}:dead         zset    batch id -> time (ms) it exhausted its attempts
  Every taken batch is in exactly one of taken, dead; bodies and meta hold both.
  P:batch:{B}:receipts     zset    batch id -> number of its first record, for every taken, dead
                                   and sent batch: a batch's records are consecutive numbers
                                   (``first`` .. ``first + records - 1``), so the record receipt
                                   ``GET .../records/{epoch}.{n}`` finds its batch with one
                                   ZREVRANGEBYSCORE; numbers above ``taken_seq`` (config) are pending
  P:batch:{B}:sent         hash    batch id -> ``<records> <sent_ms> <status_code>`` of a sent batch,
                                   kept for ``retention``
  P:batch:{B}:sent_expiry  zset    batch id -> time (ms) its receipt expires (sent + retention);
                                   beat's flush deletes it from receipts, sent and here

Recurring schedules (``S`` is a schedule name, ``[A-Za-z0-9_-]{1,80}``)
  P:schedules              zset    every schedule name, scores 0 (the listing, by name)
  P:schedules:due          zset    S -> time (ms) of its next tick, for schedules not paused; beat
                                   reads only what is due, so idle schedules cost nothing
  P:schedule:{S}           hash    ``spec`` (JSON: ``cron`` or ``every``, ``timezone``,
                                   ``target``, ``token_id`` and ``allowed_hosts`` of the token that
                                   put it, which its runs' requests carry), ``version`` (up by one
                                   on each PUT: the claim of a tick compares it), ``anchor_ms``
                                   (``every`` ticks are anchor + k * every), ``next_ms``,
                                   ``paused`` (1/0), ``runs``,
                                   ``last_run_ms``, ``last_run_id``, ``last_error``,
                                   ``created_ms``, ``updated_ms``
  P:schedule:{S}:requests  zset    ids of the requests the schedule made, scores 0 (sorted by
                                   creation time, like P:requests:all); a request's hash names its
                                   ``schedule``, and the expiry sweep removes it from here

Workers (``W`` is a Celery worker's node name, such as ``celery@host``)
  P:workers                zset    W -> time (ms) of its last heartbeat; one older than the dead
                                   window is dead, and the relay hands back what it held
  P:worker:{W}             hash    ``host``, ``pid``, ``started_ms``
  P:worker:{W}:held        set     ids of the requests whose next attempt it received (a task
                                   message in its memory) or whose attempt it runs
  P:worker:{W}:held_batches set    ``{B}\t{batch id}`` of the taken batches it holds likewise (the
                                   batch's meta names it as ``holder``)

Beat
  P:beat                   hash    ``last_tick_ms``: when a worker last ran beat's tick (so beat
                                   and a worker consuming its queue are both up; ``htq run`` waits
                                   for it), ``ticks``: how many ticks ran

Gates of deferred requests (app/core/gates.py, lua/_gates.lua; ``K`` is a flow key, ``D`` a
destination ``host[:port]``; both are free text after their prefix, so the scripts build these
names from ``P:`` and what the request's hash names: ``flow``, ``flow_limits``, ``dest``, and
``parked``, the gate a waiting request is parked at, ``flows:K`` or ``dests:D``)
  P:flows:limits:K         hash    ``rate``, ``period_ms``, ``parallelism`` (0: none), as last sent
                                   with a request of the key; expires 30 days after
  P:flows:starts:K         zset    ``{id}#{attempt}`` -> time (ms) of a start granted: no window
                                   of ``period_ms`` holds more than ``rate``; older ones trimmed
  P:flows:reserved:K       zset    ``{id}#{attempt}`` -> time (ms) a request the rate held back
                                   comes back at (spread out so waiters come one by one)
  P:flows:running:K        zset    id -> lease expiry (ms) of a slot: running, reserved for a
                                   request woken or waiting for its rate, dropped once expired
  P:dests:state:D          hash    the breaker: ``failures`` (retryable, in a row), ``open_until``
                                   (open before it, half-open after), ``opened_ms``, ``probe`` (the
                                   id let through half-open) and ``probe_until``; none = closed
  P:dests                  zset    destinations with breaker state, scores 0 (GET /v1/destinations)
  P:waiting:flows:K        zset    id -> time parked: requests waiting for a slot of K
  P:waiting:dests:D        zset    id -> time parked: requests waiting for D's breaker
  P:gates:waiting          zset    ``flows:K`` / ``dests:D`` -> when the relay's gate sweep next
                                   looks at a gate with waiters

Counters for /metrics (storage/stats.py; written by the scripts that change the state, through
lua/_stats.lua). A histogram hash has one field per bucket, named by its upper bound in ms (or
``inf``), counting the observations that fell in it (not cumulative), and ``sum_ms``
  P:stats:lateness         hash    histogram of attempt lateness: start minus due time (request_start)
  P:stats:attempts         hash    histograms of finished attempts' durations (the HTTP exchange)
                                   by outcome: field ``{outcome} {bound}`` (outcome ``succeeded``,
                                   ``retry`` or ``failed``), ``sum_ms`` (of all), and
                                   ``worker_lost`` -> attempts whose worker died (request_finish)
  P:stats:deliveries       hash    minute since the epoch (ms // 60000) -> attempts whose HTTP
                                   exchange finished in it; minutes older than an hour are trimmed
                                   by the script that adds a new minute
  A batch's POSTs are counted in its own hash (P:batch:{B} ``posts_succeeded``, ``posts_retry``,
  ``posts_failed``), so they go with it.

API tokens made through /v1/tokens (storage/tokens.py; ``T`` a token id, ``D`` the hex
HMAC-SHA256 digest of its secret, core/tokens.py; the secret is never stored)
  P:tokens                 hash    T -> JSON ``{id, name, scopes, allowed_hosts, created_ms, digest}``
  P:tokens:digests         hash    D -> the same JSON: what a request's bearer token is looked up
                                   by (one HGET); written and deleted with P:tokens by one script
  P:token:{T}:requests     zset    the ids of the live requests token ``T`` made (``env`` for
                                   HTQ_API_TOKENS), scores 0, sorted by creation time like
                                   P:requests:all; written by the script that creates the request,
                                   left by the expiry sweep's; kept after the token is revoked

Notification channels (pub/sub, not keys): P:notify:{topic}:{name}; a request's channel
hears its final status when it ends (storage/notify.py wakes long polls with it); a queue's
channel P:notify:queue:{Q} hears when messages may have become visible.
"""
from __future__ import annotations

from app.core.model import REQUEST_STATUSES

PREFIX = "htq"


def request(request_id: str) -> str:
    return f"{PREFIX}:req:{request_id}"


def request_attempts(request_id: str) -> str:
    return f"{PREFIX}:req:{request_id}:attempts"


def request_response(request_id: str) -> str:
    return f"{PREFIX}:req:{request_id}:response"


def requests_due() -> str:
    return f"{PREFIX}:requests:due"


def requests_inflight() -> str:
    return f"{PREFIX}:requests:inflight"


def requests_all() -> str:
    return f"{PREFIX}:requests:all"


def requests_by_status(status: str) -> str:
    return f"{PREFIX}:requests:status:{status}"


def requests_status_indexes() -> dict[str, str]:
    """Every per-status index, named as the request scripts take them (``status_queued`` ...)."""
    return {f"status_{status}": requests_by_status(status) for status in REQUEST_STATUSES}


def requests_ended() -> str:
    return f"{PREFIX}:requests:ended"


def requests_archive() -> str:
    return f"{PREFIX}:requests:archive"


def requests_outbox() -> str:
    return f"{PREFIX}:requests:outbox"


def idempotency(key: str, token_id: str | None = None) -> str:
    """A request's Idempotency-Key; a scoped token's keys are a space of their own, so that one
    token's key never replays, nor blocks, another's request."""
    return f"{PREFIX}:token:{token_id}:idem:{key}" if token_id else f"{PREFIX}:idem:{key}"


def request_alias(namespace: str, alias: str) -> str:
    return f"{PREFIX}:compat:{namespace}:{alias}"


def request_aliases(namespace: str) -> str:
    return f"{PREFIX}:compat:{namespace}:requests"


def tokens() -> str:
    return f"{PREFIX}:tokens"


def token_digests() -> str:
    return f"{PREFIX}:tokens:digests"


def token_requests(token_id: str) -> str:
    return f"{PREFIX}:token:{token_id}:requests"


def notify_channel(topic: str, name: str) -> str:
    return f"{PREFIX}:notify:{topic}:{name}"


def notify_pattern() -> str:
    return f"{PREFIX}:notify:*"


def queues() -> str:
    return f"{PREFIX}:queues"


def queue(name: str) -> str:
    return f"{PREFIX}:queue:{name}"


def queue_ready(name: str) -> str:
    return f"{PREFIX}:queue:{name}:ready"


def queue_inflight(name: str) -> str:
    return f"{PREFIX}:queue:{name}:inflight"


def queue_dead(name: str) -> str:
    return f"{PREFIX}:queue:{name}:dead"


def queue_bodies(name: str) -> str:
    return f"{PREFIX}:queue:{name}:bodies"


def queue_meta(name: str) -> str:
    return f"{PREFIX}:queue:{name}:meta"


def queue_ages(name: str) -> str:
    return f"{PREFIX}:queue:{name}:ages"


def queue_attrs(name: str) -> str:
    return f"{PREFIX}:queue:{name}:attrs"


def queue_keys(name: str) -> dict[str, str]:
    """A queue's keys, named as the queue scripts take them (see lua/_queue_common.lua)."""
    return {"config": queue(name), "ready": queue_ready(name), "inflight": queue_inflight(name),
            "dead": queue_dead(name), "bodies": queue_bodies(name), "meta": queue_meta(name),
            "ages": queue_ages(name), "attrs": queue_attrs(name)}


def clock_offset() -> str:
    """String: the virtual clock's offset in ms (storage/clock.py)."""
    return f"{PREFIX}:clock:offset"


def workers() -> str:
    return f"{PREFIX}:workers"


def beat() -> str:
    return f"{PREFIX}:beat"


def worker(name: str) -> str:
    return f"{PREFIX}:worker:{name}"


def worker_held(name: str) -> str:
    return f"{PREFIX}:worker:{name}:held"


def worker_held_batches(name: str) -> str:
    return f"{PREFIX}:worker:{name}:held_batches"


def batches() -> str:
    return f"{PREFIX}:batches"


def batches_due() -> str:
    return f"{PREFIX}:batches:due"


def batch(name: str) -> str:
    return f"{PREFIX}:batch:{name}"


def batch_pending(name: str) -> str:
    return f"{PREFIX}:batch:{name}:pending"


def batch_bodies(name: str) -> str:
    return f"{PREFIX}:batch:{name}:bodies"


def batch_meta(name: str) -> str:
    return f"{PREFIX}:batch:{name}:meta"


def batch_taken(name: str) -> str:
    return f"{PREFIX}:batch:{name}:taken"


def batch_dead(name: str) -> str:
    return f"{PREFIX}:batch:{name}:dead"


def batch_receipts(name: str) -> str:
    return f"{PREFIX}:batch:{name}:receipts"


def batch_sent(name: str) -> str:
    return f"{PREFIX}:batch:{name}:sent"


def batch_sent_expiry(name: str) -> str:
    return f"{PREFIX}:batch:{name}:sent_expiry"


def batch_keys(name: str) -> dict[str, str]:
    """A batch's keys and the global due zset, named as the batch scripts take them (see
    lua/_batch_common.lua)."""
    return {"config": batch(name), "pending": batch_pending(name), "bodies": batch_bodies(name),
            "meta": batch_meta(name), "taken": batch_taken(name), "dead": batch_dead(name),
            "receipts": batch_receipts(name), "sent": batch_sent(name), "sent_expiry": batch_sent_expiry(name),
            "due": batches_due()}


def schedules() -> str:
    return f"{PREFIX}:schedules"


def schedules_due() -> str:
    return f"{PREFIX}:schedules:due"


def schedule(name: str) -> str:
    return f"{PREFIX}:schedule:{name}"


def schedule_requests(name: str) -> str:
    return f"{PREFIX}:schedule:{name}:requests"


def stats_lateness() -> str:
    return f"{PREFIX}:stats:lateness"


def stats_attempts() -> str:
    return f"{PREFIX}:stats:attempts"


def stats_deliveries() -> str:
    return f"{PREFIX}:stats:deliveries"



def gates_prefix() -> str:
    """What the gate scripts build their keys from (``P:``): see the key schema above."""
    return f"{PREFIX}:"


def flow_limits(flow: str) -> str:
    return f"{PREFIX}:flows:limits:{flow}"


def flow_starts(flow: str) -> str:
    return f"{PREFIX}:flows:starts:{flow}"


def flow_reserved(flow: str) -> str:
    return f"{PREFIX}:flows:reserved:{flow}"


def flow_running(flow: str) -> str:
    return f"{PREFIX}:flows:running:{flow}"


def gate_waiting(gate: str) -> str:
    """``gate`` is ``flows:K`` or ``dests:D``."""
    return f"{PREFIX}:waiting:{gate}"


def destination(dest: str) -> str:
    return f"{PREFIX}:dests:state:{dest}"


def destinations() -> str:
    return f"{PREFIX}:dests"


def gates_waiting() -> str:
    return f"{PREFIX}:gates:waiting"
