"""SQS queue attributes over htq's queue config.

DelaySeconds, VisibilityTimeout and MessageRetentionPeriod are the native `delay`,
`visibility_timeout` and `retention`; RedrivePolicy is `dead_letter_queue` (the target's ARN) with
`max_receives` (maxReceiveCount). ReceiveMessageWaitTimeSeconds and MaximumMessageSize exist only
for SQS clients (`receive_wait_ms`, `max_message_bytes` in the config; a native PUT keeps them).
The counts are the native `visible`, `in_flight` and `delayed`."""
from __future__ import annotations

import re
from typing import Any

from app.core import jsontext
from app.core.model import is_name
from app.core.sqs.errors import SqsError

ACCOUNT = "000000000000"
DEFAULT_MAX_MESSAGE_BYTES = 262_144
MIN_MESSAGE_BYTES = 1024  # the smallest MaximumMessageSize a queue may have
MAX_MESSAGE_BYTES = 1_048_576

# attribute -> (config field, low, high, factor from the attribute's unit to the field's)
NUMBERS: dict[str, tuple[str, int, int, int]] = {
    "DelaySeconds": ("delay_ms", 0, 900, 1000),
    "VisibilityTimeout": ("visibility_timeout_ms", 0, 43200, 1000),
    "MessageRetentionPeriod": ("retention_ms", 60, 1_209_600, 1000),
    "ReceiveMessageWaitTimeSeconds": ("receive_wait_ms", 0, 20, 1000),
    "MaximumMessageSize": ("max_message_bytes", MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES, 1),
}
DEFAULTS = {"delay_ms": 0, "visibility_timeout_ms": 30_000, "retention_ms": 345_600_000, "receive_wait_ms": 0,
            "max_message_bytes": DEFAULT_MAX_MESSAGE_BYTES}
WRITABLE = (*NUMBERS, "RedrivePolicy")
READ_ONLY = ("QueueArn", "CreatedTimestamp", "LastModifiedTimestamp", "ApproximateNumberOfMessages",
             "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed")
READABLE = (*WRITABLE, *READ_ONLY)
_ARN = re.compile(r"arn:aws:sqs:([a-z0-9-]*):(\d{12}):(.+)")
_INTEGER = re.compile(r"[+-]?\d{1,12}")


def queue_arn(region: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{ACCOUNT}:{name}"


def queue_url(base_url: str, name: str) -> str:
    """`base_url` is the endpoint's: http://host:port/sqs."""
    return f"{base_url}/{ACCOUNT}/{name}"


def _invalid_value(name: str, value: Any, reason: str = "") -> SqsError:
    shown = value if isinstance(value, str) else jsontext.dumps(value)
    return SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}."
                    + (f" Reason: {reason}" if reason else f" ({shown[:100]})"))


def _integer(name: str, value: Any, low: int, high: int) -> int:
    text_number = isinstance(value, str) and _INTEGER.fullmatch(value)
    if isinstance(value, bool) or not (isinstance(value, int) or text_number):
        raise _invalid_value(name, value, "Must be an integer.")
    number = int(value)
    if not low <= number <= high:
        raise _invalid_value(name, value, f"Must be between {low} and {high}.")
    return number


def config_updates(attributes: Any) -> tuple[dict[str, int], tuple[str, int] | None | bool]:
    """The config fields that SQS attributes set, and the redrive policy: (target name,
    max_receives), None to remove it (an empty RedrivePolicy), or False when not given."""
    if not isinstance(attributes, dict):
        raise SqsError("InvalidParameterValue", "Attributes must be a map of attribute names to strings.")
    updates: dict[str, int] = {}
    redrive: tuple[str, int] | None | bool = False
    for name, value in attributes.items():
        if name in NUMBERS:
            field, low, high, factor = NUMBERS[name]
            updates[field] = _integer(name, value, low, high) * factor
        elif name == "RedrivePolicy":
            redrive = _redrive_policy(value)
        elif name in READ_ONLY:
            raise SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")  # as AWS answers: read only
        elif name == "FifoQueue" and value == "false":
            continue
        elif name in ("FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"):
            raise SqsError("UnsupportedOperation", "FIFO queues are not supported by htq.")
        else:
            raise SqsError("InvalidAttributeName", f"Unknown Attribute {str(name)[:100]}.")
    return updates, redrive


def _redrive_policy(value: Any) -> tuple[str, int] | None:
    if value == "":
        return None
    if isinstance(value, str):
        try:
            policy = jsontext.loads(value)
        except ValueError:
            raise _invalid_value("RedrivePolicy", value, "Invalid JSON.") from None
    else:
        raise _invalid_value("RedrivePolicy", value, "Must be a JSON string.")
    if not isinstance(policy, dict) or set(policy) - {"deadLetterTargetArn", "maxReceiveCount"}:
        raise _invalid_value("RedrivePolicy", value, "Only deadLetterTargetArn and maxReceiveCount are taken.")
    arn, count = policy.get("deadLetterTargetArn"), policy.get("maxReceiveCount")
    if arn is None or count is None:
        raise _invalid_value("RedrivePolicy", value, "Redrive policy requires deadLetterTargetArn and maxReceiveCount.")
    match = _ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None or not is_name(match.group(3)):
        raise _invalid_value("RedrivePolicy", value, "Invalid deadLetterTargetArn.")
    return match.group(3), _integer("RedrivePolicy.maxReceiveCount", count, 1, 1000)


def read_attributes(config: dict[str, str], counts: tuple[int, int, int], wanted: Any, *, name: str,
                    region: str) -> dict[str, str]:
    """The attributes `wanted` names ("All" for every one), as strings the way SQS answers them."""
    if wanted is None:
        return {}
    if not isinstance(wanted, list) or not all(isinstance(item, str) for item in wanted):
        raise SqsError("InvalidParameterValue", "AttributeNames must be a list of strings.")
    for item in wanted:
        if item != "All" and item not in READABLE:
            raise SqsError("InvalidAttributeName", f"Unknown Attribute {item[:100]}.")
    names = READABLE if "All" in wanted else [item for item in READABLE if item in wanted]
    visible, in_flight, delayed = counts
    values = {
        "QueueArn": queue_arn(region, name),
        "CreatedTimestamp": str(int(config["created_ms"]) // 1000),
        "LastModifiedTimestamp": str(int(config.get("updated_ms") or config["created_ms"]) // 1000),
        "ApproximateNumberOfMessages": str(visible),
        "ApproximateNumberOfMessagesNotVisible": str(in_flight),
        "ApproximateNumberOfMessagesDelayed": str(delayed),
    }
    for attribute, (field, _, _, factor) in NUMBERS.items():
        values[attribute] = str(int(config.get(field) or DEFAULTS[field]) // factor)
    target, max_receives = config.get("dead_letter_queue") or "", int(config.get("max_receives") or 0)
    if target:
        values["RedrivePolicy"] = jsontext.dumps({"deadLetterTargetArn": queue_arn(region, target),
                                                  "maxReceiveCount": max_receives})
    return {attribute: values[attribute] for attribute in names if attribute in values}
