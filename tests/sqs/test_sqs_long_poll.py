"""ReceiveMessage's WaitTimeSeconds on a real server: long polls wake on a push (as the native
API's do, through Redis pub/sub) instead of waiting out their time, the queue's
ReceiveMessageWaitTimeSeconds applies when a call gives none; and several boto3 consumers at once
each get a message only once per visibility window."""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from bench.long_polls import wait_parked
from tests.support.sqs import client

POLLS = 3


def test_long_polls_wake_on_a_send(sqs, web_url, store):
    url = sqs.create_queue(QueueName="waiting", Attributes={"ReceiveMessageWaitTimeSeconds": "20"})["QueueUrl"]
    store.redis.config_resetstat()

    def poll(explicit_wait: bool):
        kwargs = {"WaitTimeSeconds": 20} if explicit_wait else {}  # else the queue's 20 s
        started = time.monotonic()
        answer = client(web_url).receive_message(QueueUrl=url, **kwargs)
        return answer.get("Messages", []), time.monotonic() - started

    with ThreadPoolExecutor(POLLS) as pool:
        polls = [pool.submit(poll, i % 2 == 0) for i in range(POLLS)]
        wait_parked(store.redis, POLLS)  # each poll ran its receive script twice: it is waiting
        assert not any(p.done() for p in polls)
        sent_at = time.monotonic()
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(POLLS)])
        results = [p.result(timeout=30) for p in polls]
    woke_after = time.monotonic() - sent_at
    assert woke_after < 5, f"the polls answered {woke_after:.1f} s after the send"
    bodies = sorted(m["Body"] for messages, _ in results for m in messages)
    assert bodies == [f"m{i}" for i in range(POLLS)]  # one each: MaxNumberOfMessages defaults to 1
    assert all(waited < 15 for _, waited in results)


def test_a_long_poll_with_nothing_sent_answers_empty_after_its_wait(sqs):
    url = sqs.create_queue(QueueName="quiet")["QueueUrl"]
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert 0.9 <= time.monotonic() - started < 5


def test_concurrent_consumers_each_get_a_message_once_per_visibility_window(sqs, web_url):
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    total = 300
    for start in range(0, total, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"m{i}", "MessageBody": str(i)}
                                                      for i in range(start, start + 10)])
    received: Counter[str] = Counter()
    lock = threading.Lock()

    def consume() -> None:
        consumer = client(web_url)
        while True:
            messages = consumer.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", [])
            if not messages:
                return
            with lock:
                received.update(m["Body"] for m in messages)
            consumer.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                                 for i, m in enumerate(messages)])

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(consume) for _ in range(6)]:
            future.result(timeout=120)
    assert sorted(received, key=int) == [str(i) for i in range(total)]
    assert max(received.values()) == 1, [body for body, count in received.items() if count > 1]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
