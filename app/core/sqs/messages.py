"""SQS messages over htq's stored messages: bodies, message attributes, receipt handles.

A message sent through SQS is stored as text (so `/v1/queues` hands it out as a JSON string); a
message pushed as JSON through `/v1/queues` reaches SQS clients as its JSON text (a JSON string
as the string itself, see sqs_body). Message
attributes are kept as compact JSON beside the message, already in the JSON protocol's form
(a Binary value as base64)."""
from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core import jsontext
from app.core.sqs.errors import SqsError, invalid

MAX_ATTRIBUTES = 10
# XML 1.0's characters, as SQS allows them in bodies and string attribute values.
_NOT_ALLOWED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_DATA_TYPE = re.compile(r"(String|Number|Binary)(\.[^\s]{1,246})?")
_RESERVED_PREFIXES = ("aws.", "amazon.")
_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_RECEIPT = re.compile(r"[A-Za-z0-9_-]{1,100}\.\d{1,4}")  # "<token>.<index>", see queue_receive.lua


def check_text(text: str, what: str) -> None:
    if _NOT_ALLOWED.search(text):
        raise SqsError("InvalidMessageContents", f"Invalid characters found in {what}.")


def sqs_body(stored: str) -> str:
    """What an SQS client receives for a stored body: text as it is, JSON as its JSON text, but
    a JSON string as the string. `/v1/queues` hands out a text message and a JSON string alike
    (as a JSON string), so both are that string here too: lines pushed by `htq client write`
    reach SQS clients as the lines."""
    text = stored[1:]
    if stored[:1] == "j" and text.lstrip()[:1] == '"':
        value = jsontext.loads(text)
        if isinstance(value, str):
            return value
    return text


def check_attributes(raw: Any, what: str = "MessageAttributes") -> dict[str, dict[str, str]]:
    """Message attributes as the JSON protocol sends them, checked: {name: {"DataType",
    "StringValue" or "BinaryValue" (base64)}}, at most 10, as SQS names and types them."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise invalid(f"{what} must be a map.")
    if len(raw) > MAX_ATTRIBUTES:
        raise invalid(f"Number of message attributes [{len(raw)}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].")
    checked = {}
    for name, value in raw.items():
        if (not _ATTRIBUTE_NAME.fullmatch(name) or name.lower().startswith(_RESERVED_PREFIXES)
                or ".." in name or name.startswith(".") or name.endswith(".")):
            raise invalid(f"Message attribute name '{name}' is invalid.")
        if not isinstance(value, dict) or not isinstance(value.get("DataType"), str):
            raise invalid(f"The message attribute '{name}' must contain a DataType.")
        data_type = value["DataType"]
        match = _DATA_TYPE.fullmatch(data_type)
        if not match:
            raise invalid(f"The type of message attribute '{name}' is invalid: {data_type[:256]}.")
        unsupported = set(value) - {"DataType", "StringValue", "BinaryValue", "StringListValues", "BinaryListValues"}
        if unsupported or value.get("StringListValues") or value.get("BinaryListValues"):
            raise invalid(f"The message attribute '{name}' has values SQS does not take (list values are reserved).")
        if match.group(1) == "Binary":
            checked[name] = {"DataType": data_type, "BinaryValue": _binary(name, value.get("BinaryValue"))}
            continue
        text = value.get("StringValue")
        if not isinstance(text, str) or text == "":
            raise invalid(f"The message attribute '{name}' with type '{match.group(1)}' must use field 'StringValue'.")
        check_text(text, f"message attribute '{name}'")
        if match.group(1) == "Number":
            _check_number(name, text)
        checked[name] = {"DataType": data_type, "StringValue": text}
    return checked


def _binary(name: str, value: Any) -> str:
    if not isinstance(value, str) or value == "":
        raise invalid(f"The message attribute '{name}' with type 'Binary' must use field 'BinaryValue'.")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"The message attribute '{name}' has a BinaryValue that is not base64.") from None
    return value


def _check_number(name: str, text: str) -> None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or abs(number.adjusted()) > 126 or len(text) > 40:
        raise invalid(f"Can't cast the value of message attribute '{name}' to a number.")


def attributes_size(attributes: dict[str, dict[str, str]]) -> int:
    """Bytes the attributes add to a message's size, as SQS counts them (name, type and value)."""
    size = 0
    for name, value in attributes.items():
        size += len(name.encode()) + len(value["DataType"].encode())
        size += len(base64.b64decode(value["BinaryValue"])) if "BinaryValue" in value else len(
            value["StringValue"].encode())
    return size


def stored_attributes(attributes: dict[str, dict[str, str]]) -> str:
    """Attributes as stored: compact JSON ("" for none), which never holds a tab (see queue_receive.lua)."""
    return jsontext.dumps(attributes) if attributes else ""


def selected_attributes(stored: str, names: list[str]) -> dict[str, dict[str, str]]:
    """The stored attributes that MessageAttributeNames asks for: "All" or ".*", a name, or a
    prefix ending in ".*"."""
    if not stored or not names:
        return {}
    attributes = jsontext.loads(stored)
    if "All" in names or ".*" in names:
        return attributes
    wanted = set(names)
    prefixes = tuple(name[:-1] for name in names if name.endswith(".*"))
    return {name: value for name, value in attributes.items() if name in wanted or name.startswith(prefixes)}


# -- receipt handles ---------------------------------------------------------------------------


def receipt_handle(queue: str, message_id: str, receipt: str) -> str:
    """An opaque handle naming the queue, the message and this receive's receipt: DeleteMessage
    takes only the handle, and a handle from another receive (or queue) must not act."""
    return base64.urlsafe_b64encode(f"{queue} {message_id} {receipt}".encode()).decode().rstrip("=")


def parse_receipt_handle(queue: str, handle: Any) -> tuple[str, str]:
    """(message id, receipt) of a handle made for `queue`, else ReceiptHandleIsInvalid."""
    if isinstance(handle, str) and 0 < len(handle) <= 1024:
        try:
            parts = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)).decode().split(" ")
        except (binascii.Error, ValueError):
            parts = []
        if len(parts) == 3 and parts[0] == queue and _ID.fullmatch(parts[1]) and _RECEIPT.fullmatch(parts[2]):
            return parts[1], parts[2]
    shown = handle if isinstance(handle, str) else jsontext.dumps(handle)
    raise SqsError("ReceiptHandleIsInvalid", f'The input receipt handle "{shown[:200]}" is not a valid receipt handle.')
