"""Model-based test of a queue (hypothesis stateful) on the real Redis with an injected clock.

A plain-Python model of the queue runs beside the real one. Every receive must return exactly
the messages the model expects, in its order (FIFO by availability time, then push order); no
message is ever handed to a consumer while another one holds its lock; none is ever lost (the
stored ids are always the pushed ones not yet acknowledged or dropped); counts are exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from app.core.errors import Conflict, NotFound
from app.core.queues import QueueService, json_body
from app.storage import keys
from app.storage.client import Store
from tests.support.clock import FakeClock
from tests.support.settings import make_settings

T0 = 1_700_000_000_000
NAME = "model"
VISIBILITY_MS = 1000
CONSUMERS = 3


@dataclass
class Message:
    seq: int
    body: int
    available_ms: int
    count: int = 0
    state: str = "ready"  # ready | inflight | dead
    lock_ms: int = 0
    receipt: str = ""
    holder: int | None = None


class QueueMachine(RuleBasedStateMachine):
    def __init__(self, redis_url: str):
        super().__init__()
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        client.flushall()
        self.store = Store(client)
        self.clock = FakeClock(T0)
        self.service = QueueService(self.store, make_settings(redis_url), clock_ms=self.clock)
        self.messages: dict[str, Message] = {}
        self.held: dict[int, list[tuple[str, str]]] = {c: [] for c in range(CONSUMERS)}  # (id, receipt)
        self.pushed = 0
        self.max_receives = 0

    def teardown(self):
        self.store.redis.close()

    # -- the model's view of time -------------------------------------------------------------

    def reclaim(self) -> None:
        for message in self.messages.values():
            if message.state == "inflight" and message.lock_ms <= self.clock.ms:
                if self.max_receives and message.count >= self.max_receives:
                    message.state, message.receipt = "dead", ""
                else:
                    message.state = "ready"
                message.holder = None

    def expected_order(self) -> list[str]:
        visible = [(m.available_ms, m.seq, mid) for mid, m in self.messages.items()
                   if m.state == "ready" and m.available_ms <= self.clock.ms]
        return [mid for _, _, mid in sorted(visible)]

    # -- rules --------------------------------------------------------------------------------

    @initialize(max_receives=st.sampled_from([0, 1, 2, 3]))
    def configure(self, max_receives):
        self.max_receives = max_receives
        self.service.put(NAME, {"visibility_timeout": VISIBILITY_MS / 1000, "max_receives": max_receives})

    @rule(count=st.integers(1, 4), delay_ms=st.sampled_from([None, 0, 300, 1000, 2500]))
    def push(self, count, delay_ms):
        delay_s = None if delay_ms is None else delay_ms / 1000
        bodies = list(range(self.pushed, self.pushed + count))
        ids = self.service.push_many(NAME, [(json_body(body), delay_s) for body in bodies])
        for body, message_id in zip(bodies, ids, strict=True):
            self.messages[message_id] = Message(seq=body, body=body, available_ms=self.clock.ms + (delay_ms or 0))
        self.pushed += count

    @rule(consumer=st.integers(0, CONSUMERS - 1), max_messages=st.integers(1, 4),
          visibility_ms=st.sampled_from([None, 0, 500, 2000]))
    def receive(self, consumer, max_messages, visibility_ms):
        self.reclaim()
        expected = self.expected_order()[:max_messages]
        got = self.service.receive(NAME, max_messages,
                                   None if visibility_ms is None else visibility_ms / 1000)
        assert [m["id"] for m in got] == expected
        lock_ms = self.clock.ms + (VISIBILITY_MS if visibility_ms is None else visibility_ms)
        for received in got:
            message = self.messages[received["id"]]
            # Never handed out while another consumer's lock on it is still running.
            assert not (message.state == "inflight" and message.lock_ms > self.clock.ms)
            assert received["body"] == message.body
            message.count += 1
            assert received["receive_count"] == message.count
            message.state, message.lock_ms, message.receipt = "inflight", lock_ms, received["receipt"]
            message.holder = consumer
            self.held[consumer].append((received["id"], received["receipt"]))

    def _pick(self, consumer: int, index: int) -> tuple[str, str] | None:
        held = self.held[consumer]
        return held[index % len(held)] if held else None

    @rule(consumer=st.integers(0, CONSUMERS - 1), index=st.integers(0, 20), with_receipt=st.booleans())
    def ack(self, consumer, index, with_receipt):
        picked = self._pick(consumer, index)
        if picked is None:
            return
        message_id, receipt = picked
        self.held[consumer].remove(picked)
        message = self.messages.get(message_id)
        self.reclaim()
        try:
            self.service.ack(NAME, message_id, receipt if with_receipt else None)
            outcome = "acked"
        except NotFound:
            outcome = "not_found"
        except Conflict:
            outcome = "stale"
        if message is None:
            expected = "not_found"
        elif with_receipt and message.receipt != receipt:
            expected = "stale"
        else:
            expected = "acked"
        assert outcome == expected
        if outcome == "acked":
            del self.messages[message_id]

    @rule(consumer=st.integers(0, CONSUMERS - 1), index=st.integers(0, 20),
          visibility_ms=st.sampled_from([0, 0, 700, 3000]))
    def change_visibility(self, consumer, index, visibility_ms):
        picked = self._pick(consumer, index)
        if picked is None:
            return
        message_id, receipt = picked
        message = self.messages.get(message_id)
        self.reclaim()
        try:
            self.service.change_visibility(NAME, message_id, receipt, visibility_ms / 1000)
            outcome = "ok"
        except NotFound:
            outcome = "not_found"
        except Conflict:
            outcome = "stale"
        if message is None:
            assert outcome == "not_found"
            return
        if message.receipt != receipt or message.state == "dead":
            assert outcome == "stale"
            return
        assert outcome == "ok"
        if visibility_ms > 0:
            message.state, message.lock_ms, message.holder = "inflight", self.clock.ms + visibility_ms, consumer
        elif self.max_receives and message.count >= self.max_receives:
            message.state, message.receipt, message.holder = "dead", "", None
        else:
            message.state, message.holder = "ready", None

    @rule(ms=st.sampled_from([1, 299, 300, 499, 500, 999, 1000, 2500]))
    def advance(self, ms):
        self.clock.advance_ms(ms)

    @rule()
    def sweep(self):
        self.service.sweep()
        self.reclaim()

    @rule()
    def redrive(self):
        self.reclaim()
        dead = sorted((m.seq, mid) for mid, m in self.messages.items() if m.state == "dead")
        assert self.service.redrive(NAME) == len(dead)
        for _, message_id in dead:
            message = self.messages[message_id]
            message.state, message.count, message.available_ms, message.receipt = "ready", 0, self.clock.ms, ""

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def nothing_lost_and_counts_exact(self):
        stored = set(self.store.redis.hkeys(keys.queue_meta(NAME)))
        assert stored == set(self.messages)
        assert set(self.store.redis.hkeys(keys.queue_bodies(NAME))) == stored
        queue = self.service.get(NAME)
        self.reclaim()
        states = [m.state for m in self.messages.values()]
        visible = sum(1 for m in self.messages.values() if m.state == "ready" and m.available_ms <= self.clock.ms)
        assert (queue["visible"], queue["in_flight"], queue["delayed"], queue["dead"]) == (
            visible, states.count("inflight"), states.count("ready") - visible, states.count("dead"))

    @invariant()
    def every_message_in_exactly_one_state(self):
        ready = set(self.store.redis.zrange(keys.queue_ready(NAME), 0, -1))
        inflight = set(self.store.redis.zrange(keys.queue_inflight(NAME), 0, -1))
        dead = set(self.store.redis.zrange(keys.queue_dead(NAME), 0, -1))
        assert not (ready & inflight or ready & dead or inflight & dead)
        assert ready | inflight | dead == set(self.messages)


def test_queue_behaves_like_its_model(redis_url):
    run_state_machine_as_test(
        lambda: QueueMachine(redis_url),
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]))
