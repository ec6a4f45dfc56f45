"""Benchmark of the SQS-compatible endpoint: boto3's batch cycle against the native batch cycle.

Run from the repository root, with the project's virtualenv (boto3 comes with the test extra):

    python -m bench.sqs                       # about a minute on 2 cores
    python -m bench.sqs --duration 5 --rounds 1

It starts its own Redis (a real redis-server on a free port) and the web server as production
runs it (gunicorn, config/gunicorn.py), then drives it from `--clients` processes of `--threads`
threads each, every thread looping over one cycle of 10 messages on a shared queue:

- sqs:    boto3 `send_message_batch` (10) + `receive_message` (MaxNumberOfMessages 10) +
          `delete_message_batch` (what was received), signed with SigV4 as boto3 always signs;
- native: `POST /v1/queues/{name}/messages/batch` (10) + `POST .../receive` (max 10) +
          `POST .../messages/ack`, with a `requests` session per thread (keep-alive).

The two alternate, `--rounds` times each, in the same run on the same server. It prints messages
acknowledged per second, the server's CPU (gunicorn + Redis) per message, and the cores the
clients used: on a small machine the clients compete with the server for the same cores (boto3
builds and signs every call in Python), so the server CPU per message is the figure that says
what the endpoint costs, and messages/s what a client of this machine sees.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    sys.path[0] = str(REPO)

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from app.embedded import free_port  # noqa: E402
from app.processes import ServiceProcesses, TemporaryRedis, service_env  # noqa: E402
from bench import cpu_seconds  # noqa: E402

BATCH = 10
BODY = "x" * 100
TARGET_SHARE = 0.5


@dataclass(frozen=True)
class Phase:
    rate: float  # messages acknowledged per second
    server_cpu: float  # web + Redis CPU seconds per message
    client_cores: float


def sqs_cycle(base: str, name: str):
    import boto3
    from botocore.config import Config

    sqs = boto3.client("sqs", endpoint_url=base + "/sqs", region_name="us-east-1", aws_access_key_id="bench",
                       aws_secret_access_key="bench", config=Config(retries={"max_attempts": 1}))
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    entries = [{"Id": str(i), "MessageBody": BODY} for i in range(BATCH)]

    def cycle() -> int:
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=BATCH).get("Messages", [])
        if not messages:
            return 0
        deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return len(deleted["Successful"])

    return cycle


def native_cycle(base: str, name: str):
    import requests

    session = requests.Session()
    queue = f"{base}/v1/queues/{name}"
    session.put(queue, json={}, timeout=30)
    batch = {"messages": [{"body": BODY} for _ in range(BATCH)]}

    def cycle() -> int:
        session.post(queue + "/messages/batch", json=batch, timeout=30).raise_for_status()
        messages = session.post(queue + "/messages/receive", json={"max": BATCH}, timeout=30).json()["messages"]
        if not messages:
            return 0
        acked = session.post(queue + "/messages/ack", timeout=30, json={
            "messages": [{"id": m["id"], "receipt": m["receipt"]} for m in messages]}).json()
        return acked["acked"]

    return cycle


CYCLES = {"sqs": sqs_cycle, "native": native_cycle}


def _client(base: str, phase: str, threads: int, duration_s: float, start_at: float, results) -> None:
    counts = [0] * threads
    cycles = [CYCLES[phase](base, f"bench-{phase}") for _ in range(threads)]

    def run(index: int) -> None:
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + duration_s
        while time.time() < end:
            counts[index] += cycles[index]()

    cpu_before = time.process_time()
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((sum(counts), time.process_time() - cpu_before))


def run_phase(base: str, phase: str, clients: int, threads: int, duration_s: float, web_pid: int,
              redis_pid: int) -> Phase:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 2.0  # every client built its clients before the clock starts
    procs = [context.Process(target=_client, args=(base, phase, threads, duration_s, start_at, results))
             for _ in range(clients)]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start_at - time.time()))
    web_before, redis_before = cpu_seconds([web_pid]), cpu_seconds([redis_pid])
    counts, client_cpu = zip(*(results.get(timeout=duration_s + 60) for _ in procs))
    total = max(sum(counts), 1)
    server_cpu = cpu_seconds([web_pid]) - web_before + cpu_seconds([redis_pid]) - redis_before
    for proc in procs:
        proc.join(10)
    return Phase(total / duration_s, server_cpu / total, sum(client_cpu) / duration_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each phase")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="threads (each with its own client) per process")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the two phases, alternating")
    args = parser.parse_args()

    print(f"htq SQS benchmark: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
          f"{args.clients} client processes x {args.threads} threads, {args.duration:g} s phases, "
          f"cycles of {BATCH} messages")
    redis = TemporaryRedis()
    redis.start()
    services = ServiceProcesses(service_env(redis.url, LOG_LEVEL="WARNING"), Path(tempfile.mkdtemp(prefix="htq-")))
    try:
        base = services.start_web(free_port())
        web_pid = services.procs["web"].pid
        runs: dict[str, list[Phase]] = {phase: [] for phase in CYCLES}
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}")
            for phase in CYCLES:
                result = run_phase(base, phase, args.clients, args.threads, args.duration, web_pid,
                                   redis.process.pid)
                runs[phase].append(result)
                print(f"  {phase:7s}{result.rate:9,.0f} messages/s  server CPU {result.server_cpu * 1e6:5.0f} us "
                      f"per message, clients {result.client_cores:.2f} cores")

        def median(phase: str, field: str) -> float:
            return statistics.median(getattr(run, field) for run in runs[phase])

        share = median("sqs", "rate") / median("native", "rate")
        print(f"median of {args.rounds} rounds:")
        print(f"  boto3  send_message_batch + receive_message(10) + delete_message_batch "
              f"{median('sqs', 'rate'):9,.0f} messages/s  server CPU "
              f"{median('sqs', 'server_cpu') * 1e6:.0f} us/message")
        print(f"  native messages/batch + receive(max 10) + ack                          "
              f"{median('native', 'rate'):9,.0f} messages/s  server CPU "
              f"{median('native', 'server_cpu') * 1e6:.0f} us/message")
        print(f"  sqs = {share:.0%} of native (target >= {TARGET_SHARE:.0%}); server CPU per message "
              f"{median('sqs', 'server_cpu') / median('native', 'server_cpu'):.2f}x native's")
    finally:
        services.stop_all()
        redis.cleanup()


if __name__ == "__main__":
    main()
