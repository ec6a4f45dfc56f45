"""One set of queues: what boto3 sends, /v1/queues and `htq client read` receive, and what
/v1/queues and `htq client write` push, boto3 receives (SQS bodies are strings: a JSON body
arrives as its JSON text, a JSON string as the string)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import boto3
import requests

from app.processes import ROOT


def native_receive(web_url, name, **body):
    response = requests.post(f"{web_url}/v1/queues/{name}/messages/receive", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def test_boto3_to_native_and_back(sqs, web_url):
    url = sqs.create_queue(QueueName="mixed")["QueueUrl"]
    sent = sqs.send_message(QueueUrl=url, MessageBody='{"looks": "like json"}')
    [message] = native_receive(web_url, "mixed")
    assert (message["id"], message["body"], message["receive_count"]) == (
        sent["MessageId"], '{"looks": "like json"}', 1)  # a text message: a JSON string
    acked = requests.delete(f"{web_url}/v1/queues/mixed/messages/{message['id']}",
                            params={"receipt": message["receipt"]}, timeout=10)
    assert acked.status_code == 204

    raw = b'{"order": 42,  "items": [1, 2]}'
    pushed = requests.post(f"{web_url}/v1/queues/mixed/messages", data=raw,
                           headers={"Content-Type": "application/json"}, timeout=10).json()["id"]
    requests.post(f"{web_url}/v1/queues/mixed/messages", data=b"plain text",
                  headers={"Content-Type": "text/plain"}, timeout=10)
    requests.post(f"{web_url}/v1/queues/mixed/messages/batch",
                  json={"messages": [{"body": "a json string"}, {"body": [1, "two"]}]}, timeout=10)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received] == ['{"order": 42,  "items": [1, 2]}', "plain text", "a json string",
                                             '[1,"two"]']
    assert received[0]["MessageId"] == pushed
    assert all(m["MD5OfBody"] == hashlib.md5(m["Body"].encode()).hexdigest() for m in received)
    for message in received:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert requests.get(f"{web_url}/v1/queues/mixed", timeout=10).json()["visible"] == 0


def test_a_queue_made_natively_is_an_sqs_queue(sqs, web_url):
    requests.put(f"{web_url}/v1/queues/native", json={"visibility_timeout": 12, "max_receives": 0}, timeout=10)
    url = sqs.get_queue_url(QueueName="native")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["VisibilityTimeout"], attributes["MaximumMessageSize"]) == ("12", "262144")
    assert url in sqs.list_queues()["QueueUrls"]


def htq_client(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HTQ_")} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app.cli", "client", *args], cwd=ROOT, env=env, timeout=120,
                          capture_output=True, check=False)


def test_htq_client_lines_reach_boto3_and_boto3_messages_reach_htq_client(sqs, web_url, tmp_path):
    lines = [f"line {i} with ünïcode and \"quotes\"" for i in range(25)]
    source = tmp_path / "in.txt"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    written = htq_client("write", web_url, "files", str(source))
    assert written.returncode == 0, written.stderr
    url = sqs.get_queue_url(QueueName="files")["QueueUrl"]
    got = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        got += [m["Body"] for m in messages]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(messages)])
    assert got == lines

    for start in range(0, len(lines), 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": line}
                                                      for i, line in enumerate(lines[start:start + 10])])
    target = tmp_path / "out.txt"
    read = htq_client("read", web_url, "files", str(target), "--idle", "1")
    assert read.returncode == 0, read.stderr
    assert target.read_text(encoding="utf-8").splitlines() == lines


def test_calls_sent_to_the_queue_url_as_some_sdks_do_are_served(sqs, web_url):
    url = sqs.create_queue(QueueName="direct")["QueueUrl"]
    at_queue = boto3.client("sqs", endpoint_url=url, region_name="eu-west-1", aws_access_key_id="a",
                            aws_secret_access_key="b")  # boto3 posts to its endpoint: here the queue's URL
    at_queue.send_message(QueueUrl=url, MessageBody="via the queue url")
    [message] = at_queue.receive_message(QueueUrl=url)["Messages"]
    assert message["Body"] == "via the queue url"
    at_queue.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
