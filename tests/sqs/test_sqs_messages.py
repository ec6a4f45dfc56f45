"""The message actions of /sqs through boto3 on a real server: SendMessage(+Batch) with AWS's
MD5s, ReceiveMessage with system and message attributes, DeleteMessage(+Batch),
ChangeMessageVisibility(+Batch), batch entry ids and partial failures, and the limits."""
from __future__ import annotations

import hashlib
import time

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def url(sqs):
    return sqs.create_queue(QueueName="orders")["QueueUrl"]


ATTRIBUTES = {
    "Shop": {"DataType": "String", "StringValue": "Example Store ü"},
    "Price": {"DataType": "Number", "StringValue": "12.50"},
    "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xffbytes"},
    "Kind": {"DataType": "String.custom", "StringValue": "k"},
}


def expected_md5_of_attributes(attributes: dict) -> str:
    """AWS's encoding, written out again here from the developer guide, for boto3's values."""
    digest = hashlib.md5()
    for name in sorted(attributes):
        value = attributes[name]
        for text in (name, value["DataType"]):
            digest.update(len(text.encode()).to_bytes(4, "big") + text.encode())
        data = value["BinaryValue"] if "BinaryValue" in value else value["StringValue"].encode()
        digest.update((b"\x02" if "BinaryValue" in value else b"\x01") + len(data).to_bytes(4, "big") + data)
    return digest.hexdigest()


def test_send_and_receive_with_aws_md5s_and_attributes(sqs, url):
    before_ms = int(time.time() * 1000)
    sent = sqs.send_message(QueueUrl=url, MessageBody="héllo wörld", MessageAttributes=ATTRIBUTES)
    assert sent["MD5OfMessageBody"] == hashlib.md5("héllo wörld".encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == expected_md5_of_attributes(ATTRIBUTES)
    [message] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], AttributeNames=["All"])["Messages"]
    assert (message["MessageId"], message["Body"], message["MD5OfBody"]) == (
        sent["MessageId"], "héllo wörld", sent["MD5OfMessageBody"])
    assert message["MessageAttributes"] == ATTRIBUTES  # boto3 decodes the Binary value to bytes again
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    system = message["Attributes"]
    assert system["ApproximateReceiveCount"] == "1"
    assert before_ms <= int(system["SentTimestamp"]) <= int(system["ApproximateFirstReceiveTimestamp"])
    assert int(system["ApproximateFirstReceiveTimestamp"]) <= time.time() * 1000
    assert set(system) == {"SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp"}


def test_the_published_md5_example_and_attribute_selection(sqs, url):
    sent = sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={
        "SellerName": {"DataType": "String", "StringValue": "Example Store"}})
    assert sent["MD5OfMessageAttributes"] == "cd28f3b68aeee4b2eac9c66f2f694b58"  # AWS's documented example
    sqs.send_message(QueueUrl=url, MessageBody="y", MessageAttributes={
        "a.one": {"DataType": "String", "StringValue": "1"}, "a.two": {"DataType": "Number", "StringValue": "2"},
        "b": {"DataType": "String", "StringValue": "3"}})
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["a.*"],
                                   VisibilityTimeout=0)["Messages"]
    assert "MessageAttributes" not in messages[0] and "MD5OfMessageAttributes" not in messages[0]
    assert set(messages[1]["MessageAttributes"]) == {"a.one", "a.two"}
    assert messages[1]["MD5OfMessageAttributes"] == expected_md5_of_attributes(messages[1]["MessageAttributes"])
    [_, plain] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert "MessageAttributes" not in plain and "Attributes" not in plain  # none asked for


def test_receipt_handles_change_on_every_receive_and_counts_grow(sqs, url):
    sqs.send_message(QueueUrl=url, MessageBody="again")
    seen, firsts = [], set()
    for expected in (1, 2, 3):
        [message] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0, AttributeNames=["All"])["Messages"]
        assert message["Attributes"]["ApproximateReceiveCount"] == str(expected)
        firsts.add(message["Attributes"]["ApproximateFirstReceiveTimestamp"])
        seen.append(message["ReceiptHandle"])
    assert len(set(seen)) == 3 and len(firsts) == 1
    # An older handle does not delete (AWS answers success and keeps the message); the latest does.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=seen[0])
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "1"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=seen[-1])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=seen[-1])  # already deleted: success, as on AWS
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_visibility_timeout_per_receive_and_change_message_visibility(sqs, url):
    sqs.send_message(QueueUrl=url, MessageBody="m")
    [message] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    [again] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"]
    assert again["MessageId"] == message["MessageId"]
    with pytest.raises(ClientError) as excinfo:  # the first handle is stale now
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=5)
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as excinfo:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=43201)
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterValue"
    deadline = time.monotonic() + 10
    while "Messages" not in (third := sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)):
        assert time.monotonic() < deadline  # its 1 s lock ends
    assert third["Messages"][0]["MessageId"] == message["MessageId"]


def test_invalid_receipt_handles(sqs, url):
    other = sqs.create_queue(QueueName="other")["QueueUrl"]
    sqs.send_message(QueueUrl=other, MessageBody="m")
    [message] = sqs.receive_message(QueueUrl=other)["Messages"]
    for handle in ("garbage", "", message["ReceiptHandle"]):  # the last one is another queue's
        with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as excinfo:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        assert excinfo.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
        with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=1)


def test_delay_seconds_of_the_queue_and_of_a_message(sqs):
    url = sqs.create_queue(QueueName="slow", Attributes={"DelaySeconds": "600"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="queue's delay")
    sqs.send_message(QueueUrl=url, MessageBody="no delay", DelaySeconds=0)
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert message["Body"] == "no delay"
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])[
        "Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    with pytest.raises(ClientError) as excinfo:
        sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=901)
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_send_message_batch_with_ids_md5s_and_partial_failures(sqs, url):
    answer = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "ok-1", "MessageBody": "one"},
        {"Id": "bad_delay", "MessageBody": "two", "DelaySeconds": 901},
        {"Id": "ok-2", "MessageBody": "three", "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "3"}}},
        {"Id": "bad_number", "MessageBody": "four", "MessageAttributes": {"n": {"DataType": "Number",
                                                                             "StringValue": "three"}}},
        {"Id": "bad_text", "MessageBody": "five \x01"},
    ])
    assert [(e["Id"], e["MD5OfMessageBody"]) for e in answer["Successful"]] == [
        ("ok-1", hashlib.md5(b"one").hexdigest()), ("ok-2", hashlib.md5(b"three").hexdigest())]
    assert answer["Successful"][1]["MD5OfMessageAttributes"] == expected_md5_of_attributes(
        {"n": {"DataType": "Number", "StringValue": "3"}})
    assert {(e["Id"], e["Code"], e["SenderFault"]) for e in answer["Failed"]} == {
        ("bad_delay", "InvalidParameterValue", True), ("bad_number", "InvalidParameterValue", True),
        ("bad_text", "InvalidMessageContents", True)}
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert bodies == ["one", "three"]


def test_batch_request_errors(sqs, url):
    too_many = [{"Id": f"m{i}", "MessageBody": "x"} for i in range(11)]
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest) as excinfo:
        sqs.send_message_batch(QueueUrl=url, Entries=too_many)
    assert excinfo.value.response["Error"]["Code"] == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):
        sqs.send_message_batch(QueueUrl=url, Entries=[])
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}])
    with pytest.raises(sqs.exceptions.InvalidBatchEntryId):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "no spaces", "MessageBody": "x"}])
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": f"m{i}", "ReceiptHandle": "h"} for i in range(11)])
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[])
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # nothing was sent


def test_delete_and_change_visibility_batches(sqs, url):
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"m{i}", "MessageBody": str(i)} for i in range(4)])
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4, VisibilityTimeout=600)["Messages"]
    assert len(messages) == 4
    changed = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "release", "ReceiptHandle": messages[0]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "bad", "ReceiptHandle": "garbage", "VisibilityTimeout": 0},
        {"Id": "too_long", "ReceiptHandle": messages[1]["ReceiptHandle"], "VisibilityTimeout": 43201}])
    assert [e["Id"] for e in changed["Successful"]] == ["release"]
    assert {(e["Id"], e["Code"]) for e in changed["Failed"]} == {("bad", "ReceiptHandleIsInvalid"),
                                                                 ("too_long", "InvalidParameterValue")}
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "d1", "ReceiptHandle": messages[1]["ReceiptHandle"]},
        {"Id": "d2", "ReceiptHandle": messages[2]["ReceiptHandle"]},
        {"Id": "bad", "ReceiptHandle": "garbage"}])
    assert [e["Id"] for e in deleted["Successful"]] == ["d1", "d2"]
    assert [(e["Id"], e["Code"], e["SenderFault"]) for e in deleted["Failed"]] == [("bad", "ReceiptHandleIsInvalid",
                                                                                    True)]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesNotVisible"]) == ("1", "1")


def test_message_size_limits(sqs, url):
    limit = 262_144
    sqs.send_message(QueueUrl=url, MessageBody="x" * limit)
    with pytest.raises(ClientError) as excinfo:
        sqs.send_message(QueueUrl=url, MessageBody="x" * (limit + 1))
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError):  # attributes count toward the size
        sqs.send_message(QueueUrl=url, MessageBody="x" * (limit - 5),
                         MessageAttributes={"abc": {"DataType": "String", "StringValue": "value"}})
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"m{i}", "MessageBody": "x" * 100_000} for i in range(3)])
    small = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    sqs.send_message(QueueUrl=small, MessageBody="é" * 512)
    with pytest.raises(ClientError):
        sqs.send_message(QueueUrl=small, MessageBody="é" * 512 + "x")
    [big] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert big["Body"] == "x" * limit
    large = sqs.create_queue(QueueName="large", Attributes={"MaximumMessageSize": "1048576"})["QueueUrl"]
    answer = sqs.send_message_batch(QueueUrl=large, Entries=[{"Id": f"m{i}", "MessageBody": "y" * 100_000}
                                                             for i in range(3)])  # over 256 KiB together
    assert len(answer["Successful"]) == 3
    sqs.send_message(QueueUrl=large, MessageBody="z" * 1_048_576)
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):
        sqs.send_message_batch(QueueUrl=large, Entries=[{"Id": f"m{i}", "MessageBody": "y" * 400_000}
                                                        for i in range(3)])


@pytest.mark.parametrize("attributes", [
    {"AWS.reserved": {"DataType": "String", "StringValue": "x"}},
    {"bad..name": {"DataType": "String", "StringValue": "x"}},
    {"n": {"DataType": "Integer", "StringValue": "1"}},
    {"n": {"DataType": "Number", "StringValue": "1e400"}},
    {"s": {"DataType": "String", "StringValue": ""}},
    {"b": {"DataType": "Binary", "StringValue": "not binary"}},
    {f"a{i}": {"DataType": "String", "StringValue": "x"} for i in range(11)},
])
def test_bad_message_attributes_are_refused(sqs, url, attributes):
    with pytest.raises(ClientError) as excinfo:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attributes)
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_bodies_outside_xml_characters_are_invalid_message_contents(sqs, url):
    with pytest.raises(sqs.exceptions.InvalidMessageContents):
        sqs.send_message(QueueUrl=url, MessageBody="bell \x07")
    sqs.send_message(QueueUrl=url, MessageBody="tab\tnewline\n emoji 🎉")
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "tab\tnewline\n emoji 🎉"


def test_binary_attribute_bytes_round_trip(sqs, url):
    data = bytes(range(256))
    sqs.send_message(QueueUrl=url, MessageBody="b",
                     MessageAttributes={"raw": {"DataType": "Binary", "BinaryValue": data}})
    [message] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["raw"])["Messages"]
    assert message["MessageAttributes"]["raw"]["BinaryValue"] == data  # sent and answered as base64
