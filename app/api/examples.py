"""Examples for the OpenAPI document: a request body and an answer for every operation, shown by
/docs. Taken from real answers of htq, shortened; tests/api/test_docs.py checks that every
operation has them and that each one fits its schema."""
from __future__ import annotations

REQUEST_ID = "01JEAKQ7M3F4W2Z8V6T5R9N1PB"
REQUEST_PATH = f"/v1/requests/{REQUEST_ID}"
AT = "2026-12-03T15:00:00.000Z"
DUE = "2026-12-03T15:01:00.000Z"

ERROR = {"code": 422, "status": "Unprocessable Entity", "message": "Validation failed",
         "errors": {"url": ["Must be an absolute http or https URL."]}}

# -- /v1/requests -------------------------------------------------------------------------------

REQUEST_CREATE = {"url": "https://example.com/hooks/order", "method": "POST", "json": {"order": 42}, "delay": 60,
                  "retry": {"max_attempts": 5}, "callback_url": "https://example.com/hooks/done"}
REQUEST = {
    "id": REQUEST_ID, "url": "https://example.com/hooks/order", "method": "POST", "headers": {},
    "json": {"order": 42}, "status": "scheduled", "created_at": AT, "due_at": DUE, "timeout": 30.0,
    "retry": {"max_attempts": 5, "backoff_base": 1.0, "backoff_max": 3600.0},
    "callback_url": "https://example.com/hooks/done", "cancel_notify": False, "attempts": 0,
    "next_attempt_at": DUE, "ended_at": None, "last_error": None, "token_id": "01JEAK9X2D5E7G8H0J1K2M3N4P",
    "links": {"self": REQUEST_PATH, "status": f"{REQUEST_PATH}/status", "response": f"{REQUEST_PATH}/response"}}
REQUEST_LIST = {"items": [REQUEST], "next_cursor": None}
REQUEST_BATCH = {"requests": [{"url": "https://example.com/hooks/a", "body": "one"},
                              {"url": "https://example.com/hooks/b", "json": {"n": 2}, "delay": 30}]}
REQUEST_ITEMS = {"items": [REQUEST]}
STATUS = {"id": REQUEST_ID, "status": "scheduled", "attempts": 0, "next_attempt_at": DUE}
ATTEMPTS = {"items": [{"attempt": 1, "started_at": DUE, "elapsed_ms": 35, "status_code": 503,
                       "error": "HTTP 503"},
                      {"attempt": 2, "started_at": "2026-12-03T15:01:01.400Z", "elapsed_ms": 28, "status_code": 200,
                       "error": None}]}
RESPONSE = {"status_code": 200, "reason": "OK", "headers": {"Content-Type": "application/json"},
            "body": "{\"ok\": true}", "body_encoding": "utf-8", "truncated": False, "elapsed_ms": 28,
            "received_at": "2026-12-03T15:01:01.428Z", "attempt": 2, "error": None}
RETRIED = {**REQUEST, "status": "queued", "attempts": 5, "due_at": AT, "next_attempt_at": AT}
RUN_NOW = {**REQUEST, "status": "queued", "next_attempt_at": AT}
BULK_CANCEL = {"status": ["scheduled", "retrying"], "url_prefix": "https://example.com/hooks/"}
BULK_CANCELED = {"canceled": 42}

# -- /v1/queues ---------------------------------------------------------------------------------

QUEUE_CONFIG = {"visibility_timeout": 30, "max_receives": 5, "retention": 345600, "delay": 0}
QUEUE = {"name": "orders", **QUEUE_CONFIG, "dead_letter_queue": None, "created_at": AT, "updated_at": AT,
         "visible": 12, "in_flight": 3, "delayed": 0, "dead": 1}
QUEUE_LIST = {"items": [QUEUE]}
MESSAGE_ID = "00000000002aJjSj8IlP"
MESSAGE = {"order": 42}
MESSAGE_CREATED = {"id": MESSAGE_ID}
MESSAGE_BATCH = {"messages": [{"body": {"order": 42}}, {"body": "plain text", "delay": 60}]}
MESSAGE_IDS = {"ids": [MESSAGE_ID, "00000000002bJjSj8IlP"]}
RECEIVE = {"max": 10, "visibility_timeout": 30, "wait": 20}
RECEIVED = {"messages": [{"id": MESSAGE_ID, "receipt": "kZw0EJpikGYV.1", "body": {"order": 42},
                          "receive_count": 1, "enqueued_at": AT}]}
ACK_BATCH = {"messages": [{"id": MESSAGE_ID, "receipt": "kZw0EJpikGYV.1"},
                          {"id": "00000000002bJjSj8IlP", "receipt": "Qm3vR8sLx0aT.1"}]}
ACK_RESULT = {"acked": 1, "failed": [{"id": "00000000002bJjSj8IlP", "reason": "stale"}]}
VISIBILITY = {"receipt": "kZw0EJpikGYV.1", "visibility_timeout": 120}
VISIBILITY_RESULT = {"id": MESSAGE_ID, "receipt": "kZw0EJpikGYV.1", "visible_at": "2026-12-03T15:02:00.000Z",
                     "dead": False}
DEAD_MESSAGES = {"items": [{"id": MESSAGE_ID, "body": {"order": 42}, "receive_count": 6, "enqueued_at": AT,
                            "dead_at": "2026-12-03T15:03:00.000Z"}]}
MOVED = {"moved": 1}

# -- /v1/batches --------------------------------------------------------------------------------

BATCH_CONFIG = {"endpoint": "https://example.com/ingest", "max_records": 500, "max_bytes": 1048576, "interval": 10,
                "headers": {"Authorization": "Bearer s3cr3t"}, "retry": {"max_attempts": 3, "backoff_base": 2},
                "timeout": 30}
BATCH = {"name": "events", **BATCH_CONFIG, "interval": 10.0, "timeout": 30.0,
         "retry": {"max_attempts": 3, "backoff_base": 2.0}, "created_at": AT, "pending": 120, "in_flight": 0,
         "sent_batches": 41, "sent_records": 20500, "dead_batches": 0, "last_sent_at": "2026-12-03T15:00:10.035Z",
         "last_status_code": 200, "last_error": None, "token_id": "env"}
BATCH_LIST = {"items": [BATCH]}
RECORD = {"user_id": 1, "event": "login"}
RECORD_ID = {"id": "01JEAKQ7M3F4W2Z8V6T5R9N1PB.17"}
RECORD_BATCH = {"records": [{"user_id": 2, "event": "login"}, {"user_id": 3, "event": "logout"}]}
RECORD_IDS = {"ids": ["01JEAKQ7M3F4W2Z8V6T5R9N1PB.18", "01JEAKQ7M3F4W2Z8V6T5R9N1PB.19"]}
RECORD_RECEIPT = {"id": "01JEAKQ7M3F4W2Z8V6T5R9N1PB.17", "state": "sent", "batch_id": "01JEAKQ7M3F4W2Z8V6T5R9N1PB-2",
                  "sent_at": "2026-12-03T15:00:10.035Z", "status_code": 200}
DEAD_BATCHES = {"items": [{"id": "01JEAKQ7M3F4W2Z8V6T5R9N1PB-3", "records": [{"user_id": 2, "event": "login"}],
                           "attempts": 3, "last_status_code": 503, "error": "HTTP 503"}]}

# -- /v1/clock ----------------------------------------------------------------------------------

CLOCK = {"now": AT, "virtual": True}
ADVANCE = {"seconds": 259200}
ADVANCED = {"now": "2026-12-06T15:00:00.000Z"}

# -- /v1/workers --------------------------------------------------------------------------------

FLOW = {"key": "acme-api", "rate": 100, "period": 1.0, "parallelism": 10, "waiting": 240, "in_flight": 10}
DESTINATIONS = {"items": [{"destination": "hooks.example.com", "state": "open", "consecutive_failures": 10,
                           "open_until": "2026-12-03T15:20:31.000Z"},
                          {"destination": "api.example.org:8443", "state": "closed", "consecutive_failures": 3,
                           "open_until": None}]}
WORKERS = {"items": [{"name": "celery@worker-1", "host": "worker-1", "pid": 4242, "started_at": AT,
                      "last_seen_at": "2026-12-03T15:20:01.513Z"}]}
