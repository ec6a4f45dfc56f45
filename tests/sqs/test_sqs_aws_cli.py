"""`aws sqs` (aws-cli, installed from the package index with the test extra) against a real server."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.sqs import KEY_ID, REGION, SECRET

AWS = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")


def aws(web_url, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
        "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_MAX_ATTEMPTS": "1"}
    return subprocess.run([AWS, "sqs", *args, "--endpoint-url", f"{web_url}/sqs", "--output", "json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(AWS is None, reason="aws-cli is not installed")
def test_aws_sqs_commands(web_url, redis_url, tmp_path):
    created = aws(web_url, tmp_path, "create-queue", "--queue-name", "cli", "--attributes", "VisibilityTimeout=40")
    assert created.returncode == 0, created.stderr
    url = json.loads(created.stdout)["QueueUrl"]
    assert url == f"{web_url}/sqs/000000000000/cli"
    sent = aws(web_url, tmp_path, "send-message", "--queue-url", url, "--message-body", "from the cli",
               "--message-attributes", '{"k": {"DataType": "String", "StringValue": "v"}}')
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["MD5OfMessageBody"] == hashlib.md5(b"from the cli").hexdigest()
    received = aws(web_url, tmp_path, "receive-message", "--queue-url", url, "--message-attribute-names", "All",
                   "--attribute-names", "ApproximateReceiveCount")
    assert received.returncode == 0, received.stderr
    [message] = json.loads(received.stdout)["Messages"]
    assert (message["Body"], message["MessageAttributes"]["k"]["StringValue"],
            message["Attributes"]["ApproximateReceiveCount"]) == ("from the cli", "v", "1")
    deleted = aws(web_url, tmp_path, "delete-message", "--queue-url", url, "--receipt-handle", message["ReceiptHandle"])
    assert deleted.returncode == 0, deleted.stderr
    attributes = aws(web_url, tmp_path, "get-queue-attributes", "--queue-url", url, "--attribute-names", "All")
    values = json.loads(attributes.stdout)["Attributes"]
    assert (values["VisibilityTimeout"], values["ApproximateNumberOfMessages"]) == ("40", "0")
    listed = aws(web_url, tmp_path, "list-queues")
    assert json.loads(listed.stdout)["QueueUrls"] == [url]
    missing = aws(web_url, tmp_path, "get-queue-url", "--queue-name", "nope")
    assert missing.returncode != 0 and "NonExistentQueue" in missing.stderr, missing.stderr
