"""/sqs on the wire, without boto3: malformed JSON, unknown actions, wrong types and oversize
bodies get AWS's error shape (`__type`, `message`, `x-amzn-query-error`), never a 500."""
from __future__ import annotations

import json

import pytest
import requests

CONTENT_TYPE = "application/x-amz-json-1.0"
ACTIONS = ["CreateQueue", "GetQueueUrl", "ListQueues", "DeleteQueue", "GetQueueAttributes", "SetQueueAttributes",
           "PurgeQueue", "SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch",
           "ChangeMessageVisibility", "ChangeMessageVisibilityBatch", "ListDeadLetterSourceQueues"]
MEMBERS = ["QueueName", "QueueUrl", "Attributes", "AttributeNames", "MessageBody", "DelaySeconds",
           "MessageAttributes", "Entries", "MaxNumberOfMessages", "VisibilityTimeout", "WaitTimeSeconds",
           "ReceiptHandle", "MaxResults", "NextToken", "QueueNamePrefix", "MessageAttributeNames"]
ODD_VALUES = [None, True, -1, 1.5, 10**30, "", "x" * 3000, "\ud800", [], [1, "a", None], {}, {"a": {"b": []}},
              [{"Id": 5}], [{"Id": "a", "ReceiptHandle": 7, "MessageBody": [], "VisibilityTimeout": "x"}]]


def post(web_url, action, body, content_type=CONTENT_TYPE, target_prefix="AmazonSQS."):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type}
    if action is not None:
        headers["X-Amz-Target"] = target_prefix + action
    return requests.post(f"{web_url}/sqs", data=data, headers=headers, timeout=30)


def aws_error(response, status, type_):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["__type"] == "com.amazonaws.sqs#" + type_ and body["message"], body
    assert response.headers["x-amzn-query-error"].endswith((";Sender", ";Receiver"))
    assert response.headers["Content-Type"] == CONTENT_TYPE
    return body


@pytest.fixture
def queue_url(web_url, redis_url):
    response = post(web_url, "CreateQueue", {"QueueName": "q"})
    assert response.status_code == 200
    return response.json()["QueueUrl"]


def test_a_call_answers_json_1_0(web_url, queue_url):
    response = post(web_url, "GetQueueUrl", {"QueueName": "q"})
    assert response.status_code == 200 and response.headers["Content-Type"] == CONTENT_TYPE
    assert response.json() == {"QueueUrl": queue_url} and response.headers["x-amzn-RequestId"]


def test_malformed_json_and_bodies_that_are_not_objects(web_url, queue_url):
    aws_error(post(web_url, "ListQueues", b'{"QueueNamePrefix": '), 400, "SerializationException")
    aws_error(post(web_url, "ListQueues", b"\xff\xfe"), 400, "SerializationException")
    aws_error(post(web_url, "ListQueues", [1, 2]), 400, "SerializationException")
    aws_error(post(web_url, "ListQueues", {}, content_type="text/plain"), 400, "SerializationException")
    assert post(web_url, "ListQueues", b"").status_code == 200  # no body: no members


def test_unknown_actions_and_other_protocols(web_url, queue_url):
    aws_error(post(web_url, "FlyToTheMoon", {}), 400, "InvalidAction")
    aws_error(post(web_url, "TagQueue", {"QueueUrl": queue_url, "Tags": {}}), 400, "InvalidAction")
    aws_error(post(web_url, None, {}), 400, "InvalidAction")
    aws_error(post(web_url, "ListQueues", {}, target_prefix="DynamoDB_20120810."), 400, "InvalidAction")
    query = requests.post(f"{web_url}/sqs", data={"Action": "ListQueues"}, timeout=30)  # the former Query API
    aws_error(query, 400, "InvalidAction")


def test_missing_and_mistyped_members(web_url, queue_url):
    aws_error(post(web_url, "SendMessage", {"QueueUrl": queue_url}), 400, "MissingParameter")
    aws_error(post(web_url, "SendMessage", {"QueueUrl": queue_url, "MessageBody": 5}), 400, "InvalidParameterValue")
    aws_error(post(web_url, "ReceiveMessage", {"QueueUrl": queue_url, "MaxNumberOfMessages": "10"}), 400,
              "InvalidParameterValue")
    aws_error(post(web_url, "ReceiveMessage", {"QueueUrl": queue_url, "MaxNumberOfMessages": 11}), 400,
              "InvalidParameterValue")
    aws_error(post(web_url, "ReceiveMessage", {"QueueUrl": queue_url, "WaitTimeSeconds": 21}), 400,
              "InvalidParameterValue")
    aws_error(post(web_url, "SetQueueAttributes", {"QueueUrl": queue_url, "Attributes": ["a"]}), 400,
              "InvalidParameterValue")
    aws_error(post(web_url, "SendMessageBatch", {"QueueUrl": queue_url, "Entries": "x"}), 400,
              "InvalidParameterValue")
    aws_error(post(web_url, "GetQueueUrl", {"QueueName": ["q"]}), 400, "InvalidParameterValue")


@pytest.mark.parametrize("action", ACTIONS)
def test_odd_values_in_every_member_never_answer_500(web_url, queue_url, action):
    for member in MEMBERS:
        for value in ODD_VALUES:
            body = {"QueueUrl": queue_url, "QueueName": "q", member: value}
            response = post(web_url, action, body) if value != "\ud800" else post(
                web_url, action, json.dumps(body).encode())
            assert response.status_code < 500, (action, member, value, response.text)
            if response.status_code != 200:
                assert response.json()["__type"].startswith("com.amazonaws.sqs#"), response.text
                assert "x-amzn-query-error" in response.headers


def test_an_oversize_body_is_413_in_aws_shape(web_url, queue_url):
    response = post(web_url, "SendMessage", {"QueueUrl": queue_url, "MessageBody": "x" * (17 * 1024 * 1024)})
    aws_error(response, 413, "RequestEntityTooLarge")
