"""Publishing deliveries: due items grouped per window, each task a little ahead of its first item."""
from __future__ import annotations

from app.core.publish import DELIVERY_CHUNK, DISPATCH_LEAD_MS, Publisher
from tests.support.sender import RecordingSender

NOW = 1_000_000


def published(items):
    sender = RecordingSender()
    Publisher(sender).deliver(items, NOW)
    return [(args[0], None if eta is None else round(eta.timestamp() * 1000)) for _, args, eta in sender.sent]


def test_items_due_now_go_at_once_in_one_task():
    assert published([("a", 1, NOW - 5), ("b", 2, NOW + DISPATCH_LEAD_MS)]) == [
        ([["a", 1, NOW - 5], ["b", 2, NOW + DISPATCH_LEAD_MS]], None)]


def test_items_due_in_one_window_share_a_task_dispatched_before_the_first():
    due = (NOW // 100 + 10) * 100
    tasks = published([("b", 1, due + 70), ("a", 1, due + 10), ("c", 1, due + 100)])
    assert tasks == [([["a", 1, due + 10], ["b", 1, due + 70]], due + 10 - DISPATCH_LEAD_MS),
                     ([["c", 1, due + 100]], due + 100 - DISPATCH_LEAD_MS)]


def test_a_large_group_is_split_into_chunks():
    tasks = published([(str(i), 1, NOW) for i in range(DELIVERY_CHUNK + 1)])
    assert [len(items) for items, _ in tasks] == [DELIVERY_CHUNK, 1]
