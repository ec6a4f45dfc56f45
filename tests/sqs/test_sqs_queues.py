"""The queue actions of /sqs through boto3 on a real server: CreateQueue, GetQueueUrl, ListQueues,
DeleteQueue, Get/SetQueueAttributes, PurgeQueue, RedrivePolicy and ListDeadLetterSourceQueues,
with AWS's URL and ARN forms and AWS's exceptions."""
from __future__ import annotations

import json
import time

import pytest
import requests
from botocore.exceptions import ClientError

from tests.support.sqs import REGION

ACCOUNT = "000000000000"


def url_of(web_url, name):
    return f"{web_url}/sqs/{ACCOUNT}/{name}"


def error_of(excinfo) -> tuple[str, str]:
    """(botocore's Error.Code, the exception class name)."""
    return excinfo.value.response["Error"]["Code"], type(excinfo.value).__name__


def test_create_queue_answers_aws_url_and_is_idempotent_with_the_same_attributes(sqs, web_url):
    url = sqs.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    assert url == url_of(web_url, "orders")
    assert sqs.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "45"})["QueueUrl"] == url
    assert sqs.create_queue(QueueName="orders")["QueueUrl"] == url  # no attributes: nothing differs
    with pytest.raises(sqs.exceptions.QueueNameExists) as excinfo:
        sqs.create_queue(QueueName="orders", Attributes={"VisibilityTimeout": "46"})
    assert error_of(excinfo) == ("QueueAlreadyExists", "QueueNameExists")
    native = requests.get(f"{web_url}/v1/queues/orders", timeout=10).json()
    assert native["visibility_timeout"] == 45


@pytest.mark.parametrize("name", ["bad.name", "a" * 81, "with space", ""])
def test_create_queue_refuses_a_bad_name(sqs, name):
    with pytest.raises(ClientError) as excinfo:
        sqs.create_queue(QueueName=name)
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_fifo_queues_are_not_supported(sqs):
    for call in (lambda: sqs.create_queue(QueueName="jobs.fifo", Attributes={"FifoQueue": "true"}),
                 lambda: sqs.create_queue(QueueName="jobs", Attributes={"FifoQueue": "true"})):
        with pytest.raises(sqs.exceptions.UnsupportedOperation):
            call()
    assert sqs.create_queue(QueueName="jobs", Attributes={"FifoQueue": "false"})["QueueUrl"].endswith("/jobs")


def test_get_queue_url_and_queue_does_not_exist(sqs, web_url):
    sqs.create_queue(QueueName="orders")
    assert sqs.get_queue_url(QueueName="orders")["QueueUrl"] == url_of(web_url, "orders")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as excinfo:
        sqs.get_queue_url(QueueName="nope")
    assert error_of(excinfo) == ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
    nope = url_of(web_url, "nope")
    for send in (lambda: sqs.send_message(QueueUrl=nope, MessageBody="x"),  # SQS never creates on send
                 lambda: sqs.send_message(QueueUrl=nope, MessageBody="x" * 5000),
                 lambda: sqs.send_message_batch(QueueUrl=nope, Entries=[{"Id": "a", "MessageBody": "x"}]),
                 lambda: sqs.send_message_batch(QueueUrl=nope, Entries=[{"Id": "a", "MessageBody": "x",
                                                                         "DelaySeconds": 999}]),
                 lambda: sqs.receive_message(QueueUrl=nope),
                 lambda: sqs.get_queue_attributes(QueueUrl=nope, AttributeNames=["All"])):
        with pytest.raises(sqs.exceptions.QueueDoesNotExist):
            send()
    assert requests.get(f"{web_url}/v1/queues/nope", timeout=10).status_code == 404


def test_list_queues_by_prefix_and_in_pages(sqs, web_url):
    names = ["a1", "a2", "a3", "b1", "a4"]
    for name in names:
        sqs.create_queue(QueueName=name)
    assert sqs.list_queues()["QueueUrls"] == [url_of(web_url, n) for n in sorted(names)]
    assert sqs.list_queues(QueueNamePrefix="b")["QueueUrls"] == [url_of(web_url, "b1")]
    assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix="zz")
    first = sqs.list_queues(QueueNamePrefix="a", MaxResults=3)
    assert first["QueueUrls"] == [url_of(web_url, n) for n in ("a1", "a2", "a3")] and first["NextToken"]
    second = sqs.list_queues(QueueNamePrefix="a", MaxResults=3, NextToken=first["NextToken"])
    assert second["QueueUrls"] == [url_of(web_url, "a4")] and "NextToken" not in second
    paged = [url for page in sqs.get_paginator("list_queues").paginate(PaginationConfig={"PageSize": 2})
             for url in page["QueueUrls"]]
    assert paged == [url_of(web_url, n) for n in sorted(names)]
    with pytest.raises(ClientError) as excinfo:
        sqs.list_queues(MaxResults=1001)
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_delete_queue(sqs, web_url):
    url = sqs.create_queue(QueueName="gone")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.delete_queue(QueueUrl=url)
    assert requests.get(f"{web_url}/v1/queues/gone", timeout=10).status_code == 404
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.delete_queue(QueueUrl=url)


def test_queue_attributes_round_trip_over_the_native_config(sqs, web_url):
    before_s = int(time.time())
    url = sqs.create_queue(QueueName="orders", Attributes={
        "DelaySeconds": "5", "VisibilityTimeout": "60", "MessageRetentionPeriod": "3600",
        "ReceiveMessageWaitTimeSeconds": "2", "MaximumMessageSize": "2048"})["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    created = int(attributes.pop("CreatedTimestamp"))
    assert before_s - 1 <= created <= time.time() + 1
    assert int(attributes.pop("LastModifiedTimestamp")) >= created
    assert attributes == {
        "DelaySeconds": "5", "VisibilityTimeout": "60", "MessageRetentionPeriod": "3600",
        "ReceiveMessageWaitTimeSeconds": "2", "MaximumMessageSize": "2048",
        "QueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders", "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0", "ApproximateNumberOfMessagesDelayed": "0"}
    native = requests.get(f"{web_url}/v1/queues/orders", timeout=10).json()
    assert (native["delay"], native["visibility_timeout"], native["retention"]) == (5, 60, 3600)

    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "7", "DelaySeconds": "0"})
    some = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout", "DelaySeconds",
                                                                  "MaximumMessageSize"])["Attributes"]
    assert some == {"VisibilityTimeout": "7", "DelaySeconds": "0", "MaximumMessageSize": "2048"}  # others kept
    assert "Attributes" not in sqs.get_queue_attributes(QueueUrl=url)  # none asked, none given (as AWS)


def test_counts_are_the_native_visible_in_flight_and_delayed(sqs):
    url = sqs.create_queue(QueueName="counts")["QueueUrl"]
    for _ in range(3):
        sqs.send_message(QueueUrl=url, MessageBody="now")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "2", "ApproximateNumberOfMessagesNotVisible": "1",
                      "ApproximateNumberOfMessagesDelayed": "1"}


@pytest.mark.parametrize("attributes,code", [
    ({"VisibilityTimeout": "43201"}, "InvalidAttributeValue"),
    ({"VisibilityTimeout": "soon"}, "InvalidAttributeValue"),
    ({"DelaySeconds": "901"}, "InvalidAttributeValue"),
    ({"MessageRetentionPeriod": "59"}, "InvalidAttributeValue"),
    ({"MaximumMessageSize": "1023"}, "InvalidAttributeValue"),
    ({"ReceiveMessageWaitTimeSeconds": "21"}, "InvalidAttributeValue"),
    ({"RedrivePolicy": "{not json"}, "InvalidAttributeValue"),
    ({"Colour": "blue"}, "InvalidAttributeName"),
    ({"QueueArn": "arn:aws:sqs:x:000000000000:q"}, "InvalidAttributeName"),
])
def test_set_queue_attributes_refuses_bad_ones(sqs, attributes, code):
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    with pytest.raises(ClientError) as excinfo:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    assert excinfo.value.response["Error"]["Code"] == code
    with pytest.raises(ClientError):
        sqs.create_queue(QueueName="fresh", Attributes=attributes)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="fresh")


def test_get_queue_attributes_refuses_an_unknown_name(sqs):
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    with pytest.raises(ClientError) as excinfo:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Colour"])
    assert excinfo.value.response["Error"]["Code"] == "InvalidAttributeName"


def test_purge_queue_drops_every_message_and_keeps_the_queue(sqs):
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "99"})["QueueUrl"]
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=100)
    received = sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.purge_queue(QueueUrl=url)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"],
            attributes["ApproximateNumberOfMessagesDelayed"], attributes["VisibilityTimeout"]) == ("0", "0", "0", "99")
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])  # gone: succeeds, as on AWS
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.purge_queue(QueueUrl=url + "x")


def test_redrive_policy_is_the_native_dead_letter_queue(sqs, web_url):
    dlq_url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    url = sqs.create_queue(QueueName="orders", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    native = requests.get(f"{web_url}/v1/queues/orders", timeout=10).json()
    assert (native["dead_letter_queue"], native["max_receives"]) == ("orders-dlq", 2)
    stored = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
                        ["Attributes"]["RedrivePolicy"])
    assert stored == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq_url)["queueUrls"] == [url]
    assert sqs.list_dead_letter_source_queues(QueueUrl=url)["queueUrls"] == []

    # A message received more than maxReceiveCount times moves to the dead-letter queue.
    sent = sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        [message] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
        assert message["MessageId"] == sent["MessageId"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    [moved] = sqs.receive_message(QueueUrl=dlq_url, AttributeNames=["All"])["Messages"]
    assert (moved["MessageId"], moved["Body"], moved["Attributes"]["ApproximateReceiveCount"]) == (
        sent["MessageId"], "poison", "1")

    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": ""})  # removes it, as on AWS
    assert "RedrivePolicy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert requests.get(f"{web_url}/v1/queues/orders", timeout=10).json()["dead_letter_queue"] is None


@pytest.mark.parametrize("policy", [
    {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:missing", "maxReceiveCount": 3},
    {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders", "maxReceiveCount": 3},
    {"deadLetterTargetArn": "not-an-arn", "maxReceiveCount": 3},
    {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq", "maxReceiveCount": 0},
    {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"},
])
def test_a_bad_redrive_policy_is_refused(sqs, policy):
    sqs.create_queue(QueueName="dlq")
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    with pytest.raises(ClientError) as excinfo:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(policy)})
    assert excinfo.value.response["Error"]["Code"] in ("InvalidParameterValue", "InvalidAttributeValue")
    assert "RedrivePolicy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_list_dead_letter_source_queues_pages_and_needs_the_queue(sqs, web_url):
    dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    policy = json.dumps({"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq", "maxReceiveCount": 1})
    for name in ("s1", "s2", "s3"):
        sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})
    first = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url, MaxResults=2)
    second = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url, MaxResults=2, NextToken=first["NextToken"])
    assert first["queueUrls"] + second["queueUrls"] == [url_of(web_url, n) for n in ("s1", "s2", "s3")]
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.list_dead_letter_source_queues(QueueUrl=url_of(web_url, "nope"))
