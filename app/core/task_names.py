"""The names of htq's Celery tasks, in one place: the tasks register under them, the publisher
sends them and beat schedules them, so neither the web side nor the core imports the workers."""
from __future__ import annotations

DELIVER_REQUESTS = "htq.deliver_requests"
SEND_CALLBACK = "htq.send_callback"
NOTIFY_CANCEL = "htq.notify_cancel"
SEND_BATCHES = "htq.send_batches"

# Beat's, every second or minute (workers/schedule.py).
RELAY_REQUESTS = "htq.relay_requests"
EXPIRE_REQUESTS = "htq.expire_requests"
SWEEP_QUEUES = "htq.sweep_queues"
FLUSH_BATCHES = "htq.flush_batches"
RUN_SCHEDULES = "htq.run_schedules"
