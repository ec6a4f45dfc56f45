"""The SQS vocabulary as plain functions: AWS's MD5 of message attributes (the developer guide's
example), receipt handles, message attribute rules, queue attributes over the config, and how a
stored body reads to an SQS client."""
from __future__ import annotations

import base64

import pytest

from app.core.queues import json_body, json_text_body, text_body
from app.core.sqs import attributes
from app.core.sqs.digests import md5_of_attributes, md5_of_body
from app.core.sqs.errors import SqsError
from app.core.sqs.messages import (
    attributes_size,
    check_attributes,
    parse_receipt_handle,
    receipt_handle,
    selected_attributes,
    sqs_body,
    stored_attributes,
)


def test_md5s_match_aws_published_values():
    assert md5_of_attributes({"SellerName": {"DataType": "String", "StringValue": "Example Store"}}) == \
        "cd28f3b68aeee4b2eac9c66f2f694b58"
    assert md5_of_body("") == "d41d8cd98f00b204e9800998ecf8427e"


def test_attribute_order_does_not_matter_and_binary_is_hashed_as_bytes():
    one = {"b": {"DataType": "Binary", "BinaryValue": base64.b64encode(b"\x00\xff").decode()},
           "a": {"DataType": "Number", "StringValue": "1"}}
    assert md5_of_attributes(one) == md5_of_attributes(dict(reversed(list(one.items()))))
    as_string = {"b": {"DataType": "Binary", "StringValue": "AP8="}, "a": one["a"]}
    assert md5_of_attributes(one) != md5_of_attributes(as_string)


def test_receipt_handles_round_trip_and_belong_to_their_queue():
    handle = receipt_handle("orders", "000000000001abc", "tok.3")
    assert parse_receipt_handle("orders", handle) == ("000000000001abc", "tok.3")
    for queue, bad in [("other", handle), ("orders", "x"), ("orders", ""), ("orders", None), ("orders", 5),
                       ("orders", receipt_handle("orders", "id", "no-index")), ("orders", "a" * 2000),
                       ("orders", receipt_handle("orders", "a:b", "tok.3"))]:
        with pytest.raises(SqsError) as excinfo:
            parse_receipt_handle(queue, bad)
        assert excinfo.value.type == "ReceiptHandleIsInvalid"


def test_message_attribute_rules():
    checked = check_attributes({"n": {"DataType": "Number.int", "StringValue": "-1.5e3"},
                                "s": {"DataType": "String", "StringValue": "x", "StringListValues": []}})
    assert checked == {"n": {"DataType": "Number.int", "StringValue": "-1.5e3"},
                       "s": {"DataType": "String", "StringValue": "x"}}
    assert attributes_size(checked) == len("n") + len("Number.int") + len("-1.5e3") + len("s") + len("String") + 1
    for bad in [{"amazon.x": {"DataType": "String", "StringValue": "x"}}, {".x": {"DataType": "String",
                                                                               "StringValue": "x"}},
                {"x": {"DataType": "String"}}, {"x": {"DataType": "Number", "StringValue": "NaN"}},
                {"x": {"DataType": "Binary", "BinaryValue": "***"}}, {"x": "String"}, ["x"]]:
        with pytest.raises(SqsError):
            check_attributes(bad)


def test_attribute_selection_by_name_prefix_and_all():
    stored = stored_attributes({"a.b": {"DataType": "String", "StringValue": "1"},
                                "c": {"DataType": "String", "StringValue": "2"}})
    assert "\t" not in stored
    assert set(selected_attributes(stored, ["All"])) == {"a.b", "c"}
    assert set(selected_attributes(stored, [".*"])) == {"a.b", "c"}
    assert set(selected_attributes(stored, ["a.*"])) == {"a.b"}
    assert set(selected_attributes(stored, ["c", "zzz"])) == {"c"}
    assert selected_attributes(stored, []) == {} and selected_attributes("", ["All"]) == {}


def test_how_stored_bodies_read_to_sqs_clients():
    assert sqs_body(text_body("plain")) == "plain"
    assert sqs_body(json_text_body('{"a":  1}')) == '{"a":  1}'  # as pushed, byte for byte
    assert sqs_body(json_body("a string")) == "a string"
    assert sqs_body(json_text_body(' "spaced \\u00e9"')) == "spaced é"
    assert sqs_body(json_body([1, "x"])) == '[1,"x"]'


def test_queue_attributes_to_config_and_back():
    updates, redrive = attributes.config_updates({"VisibilityTimeout": "45", "MaximumMessageSize": 2048,
                                                  "RedrivePolicy": '{"deadLetterTargetArn": '
                                                  '"arn:aws:sqs:eu-west-1:123456789012:dlq", "maxReceiveCount": "4"}'})
    assert updates == {"visibility_timeout_ms": 45000, "max_message_bytes": 2048}
    assert redrive == ("dlq", 4)
    assert attributes.config_updates({"RedrivePolicy": ""}) == ({}, None)
    assert attributes.config_updates({}) == ({}, False)
    config = {"visibility_timeout_ms": "45000", "retention_ms": "60000", "delay_ms": "0", "created_ms": "1700000000999",
              "updated_ms": "1700000005000", "dead_letter_queue": "dlq", "max_receives": "4"}
    read = attributes.read_attributes(config, (1, 2, 3), ["All"], name="q", region="eu-west-1")
    assert read["RedrivePolicy"] == ('{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:000000000000:dlq",'
                                     '"maxReceiveCount":4}')
    assert (read["CreatedTimestamp"], read["LastModifiedTimestamp"], read["MaximumMessageSize"],
            read["ReceiveMessageWaitTimeSeconds"]) == ("1700000000", "1700000005", "262144", "0")
    assert attributes.read_attributes(config, (1, 2, 3), ["ApproximateNumberOfMessagesDelayed"], name="q",
                                      region="r") == {"ApproximateNumberOfMessagesDelayed": "3"}
    for bad in [{"VisibilityTimeout": True}, {"VisibilityTimeout": "1.5"}, {"DelaySeconds": "-1"},
                {"RedrivePolicy": {"deadLetterTargetArn": "x"}}, {"Policy": "{}"}]:
        with pytest.raises(SqsError):
            attributes.config_updates(bad)
