"""HTQ_SQS_CREDENTIALS on a real server: boto3's Signature Version 4 is verified (any region,
service sqs, 5 minutes of clock skew), anything else is a 403 in AWS's shape; with only
HTQ_API_TOKENS set, /sqs refuses every call."""
from __future__ import annotations

import datetime
import json

import pytest
import requests
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.support.sqs import KEY_ID, SECRET, client, start_web

OTHER_ID, OTHER_SECRET = "AKIDOTHER", "other:secret"


@pytest.fixture(scope="module")
def signed_url(redis_server, tmp_path_factory):
    procs, base = start_web(redis_server, tmp_path_factory,
                            HTQ_SQS_CREDENTIALS=f"{KEY_ID}:{SECRET},{OTHER_ID}:{OTHER_SECRET}")
    yield base
    procs.stop_all()


@pytest.fixture(scope="module")
def tokens_url(redis_server, tmp_path_factory):
    procs, base = start_web(redis_server, tmp_path_factory, HTQ_API_TOKENS="admin-token")
    yield base
    procs.stop_all()


def refused(call, code: str) -> ClientError:
    with pytest.raises(ClientError) as excinfo:
        call()
    error = excinfo.value
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error.response["Error"]["Code"] == code, error.response
    return error


def test_each_credential_in_any_region_is_accepted(signed_url, redis_url):
    url = client(signed_url, region="ap-southeast-2").create_queue(QueueName="q")["QueueUrl"]
    other = client(signed_url, OTHER_ID, OTHER_SECRET, region="us-west-2")
    arn = other.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert arn == "arn:aws:sqs:us-west-2:000000000000:q"  # the ARN is in the signer's region
    other.send_message(QueueUrl=url, MessageBody="signed")
    assert client(signed_url).receive_message(QueueUrl=url)["Messages"][0]["Body"] == "signed"


def test_bad_signatures_are_403(signed_url, redis_url):
    refused(lambda: client(signed_url, secret="wrong").list_queues(), "SignatureDoesNotMatch")
    refused(lambda: client(signed_url, KEY_ID, OTHER_SECRET).list_queues(), "SignatureDoesNotMatch")
    refused(lambda: client(signed_url, key_id="AKIDUNKNOWN").list_queues(), "InvalidClientTokenId")
    refused(lambda: client(signed_url, signature_version=UNSIGNED).list_queues(), "MissingAuthenticationToken")


@pytest.mark.parametrize("skew_s,accepted", [(-290, True), (290, True), (-310, False), (310, False)])
def test_clock_skew_of_five_minutes(signed_url, redis_url, monkeypatch, skew_s, accepted):
    import botocore.auth

    real = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda *args, **kwargs: real(*args, **kwargs) + datetime.timedelta(seconds=skew_s))
    sqs = client(signed_url)
    if accepted:
        sqs.list_queues()
    else:
        error = refused(sqs.list_queues, "SignatureDoesNotMatch")
        assert "expired" in error.response["Error"]["Message"]


def test_a_body_changed_after_signing_is_refused(signed_url, redis_url):
    sqs = client(signed_url)
    sqs.create_queue(QueueName="q")
    captured = {}

    def keep(request, **_):
        captured["headers"] = dict(request.headers)
        captured["body"] = request.body

    sqs.meta.events.register("before-send.sqs.GetQueueUrl", keep)
    sqs.get_queue_url(QueueName="q")
    headers = {name: value.decode() if isinstance(value, bytes) else value
               for name, value in captured["headers"].items()}
    again = requests.post(f"{signed_url}/sqs", data=captured["body"], headers=headers, timeout=10)
    assert again.status_code == 200  # the same signed request, sent again within the window
    tampered = requests.post(f"{signed_url}/sqs", data=json.dumps({"QueueName": "r"}), headers=headers, timeout=10)
    assert tampered.status_code == 403
    assert tampered.json()["__type"] == "com.amazonaws.sqs#SignatureDoesNotMatch"
    assert tampered.headers["x-amzn-query-error"] == "SignatureDoesNotMatch;Sender"


def test_with_only_api_tokens_sqs_refuses_every_call(tokens_url, redis_url):
    refused(lambda: client(tokens_url).list_queues(), "AccessDenied")
    refused(lambda: client(tokens_url).create_queue(QueueName="q"), "AccessDenied")
    assert requests.get(f"{tokens_url}/v1/queues/q", headers={"Authorization": "Bearer admin-token"},
                        timeout=10).status_code == 404  # nothing was created
    bearer = requests.post(f"{tokens_url}/sqs", headers={"Authorization": "Bearer admin-token",
                                                         "X-Amz-Target": "AmazonSQS.ListQueues",
                                                         "Content-Type": "application/x-amz-json-1.0"},
                           data="{}", timeout=10)
    assert bearer.status_code == 403 and bearer.json()["__type"] == "com.amazonaws.sqs#AccessDenied"
