"""The SQS actions over htq's queues: each takes the request's JSON object (AWS JSON 1.0) and
returns the response's, raising SqsError as AWS would.

Names follow AWS's API reference and the botocore service model. The queues are the native ones
(QueueService does the work), so what one API sends the other receives."""
from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from app.core import errors as core_errors
from app.core import jsontext
from app.core.model import is_name
from app.core.queues import STORED_DEFAULTS, QueueService, text_body
from app.core.sqs import attributes as queue_attributes
from app.core.sqs.digests import md5_of_attributes, md5_of_body
from app.core.sqs.errors import SqsError, invalid, no_queue
from app.core.sqs.messages import (
    attributes_size,
    check_attributes,
    check_text,
    parse_receipt_handle,
    receipt_handle,
    selected_attributes,
    sqs_body,
    stored_attributes,
)
from app.storage import queues as store_queues

MAX_BATCH = 10
BATCH_MAX_BYTES = 262_144  # a batch's messages together, or the queue's MaximumMessageSize when larger
MAX_LIST = 1000
SYSTEM_ATTRIBUTES = ("SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp")
_NAME_RULE = "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length."


class Endpoint(NamedTuple):
    """Where the call came in: the endpoint's URL (for queue URLs) and the signer's region (for ARNs)."""

    base_url: str
    region: str


# -- reading the request's members --------------------------------------------------------------


def _missing(name: str) -> SqsError:
    return SqsError("MissingParameter", f"The request must contain the parameter {name}.")


def _string(params: dict, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise _missing(name)
        return None
    if not isinstance(value, str):
        raise invalid(f"Value for parameter {name} must be a string.")
    return value


def _integer(params: dict, name: str, low: int, high: int, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None:
        if required:
            raise _missing(name)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"Value for parameter {name} must be an integer.")
    if not low <= value <= high:
        raise invalid(f"Value {value} for parameter {name} is invalid. Reason: Must be between {low} and {high}.")
    return value


def _strings(params: dict, name: str) -> list[str]:
    value = params.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"Value for parameter {name} must be a list of strings.")
    return value


def _entries(params: dict) -> list[dict]:
    """Batch entries: 1 to 10 objects with distinct, well-formed Ids."""
    entries = params.get("Entries")
    if entries is None:
        raise _missing("Entries")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise invalid("Value for parameter Entries must be a list of objects.")
    if not entries:
        raise SqsError("EmptyBatchRequest", "There should be at least one SendMessageBatchRequestEntry in the request.")
    if len(entries) > MAX_BATCH:
        raise SqsError("TooManyEntriesInBatchRequest",
                       f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}.")
    seen = set()
    for entry in entries:
        entry_id = entry.get("Id")
        if not isinstance(entry_id, str) or not is_name(entry_id):
            raise SqsError("InvalidBatchEntryId", "A batch entry id can only contain alphanumeric characters, "
                                                  "hyphens and underscores. It can be at most 80 letters long.")
        if entry_id in seen:
            raise SqsError("BatchEntryIdsNotDistinct", f"Id {entry_id} repeated.")
        seen.add(entry_id)
    return entries


def _size_hint(params: dict) -> int:
    """At least the size SQS counts for a message (body and attributes), before they are checked:
    bytes of its JSON, which only overstates it (quotes, escapes, base64)."""
    return len(jsontext.dumps({k: params.get(k) for k in ("MessageBody", "MessageAttributes")}).encode())


def _failure(entry_id: str, error: SqsError) -> dict:
    return {"Id": entry_id, "SenderFault": error.sender_fault, "Code": error.type, "Message": error.message}


def queue_name(params: dict) -> str:
    """The queue a QueueUrl names: its path's last segment (any host, any account id)."""
    url = _string(params, "QueueUrl", required=True)
    name = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2]) if "/" in url else url
    if not is_name(name):
        raise no_queue()
    return name


def _page(names: list[str], params: dict) -> dict:
    """A page of names for ListQueues and ListDeadLetterSourceQueues: MaxResults (1-1000) and
    NextToken (the last name given, opaque to clients)."""
    limit = _integer(params, "MaxResults", 1, MAX_LIST)
    token = _string(params, "NextToken")
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except (binascii.Error, ValueError):
            raise invalid("Invalid NextToken value.") from None
        names = [name for name in names if name > after]
    page = names[:limit or MAX_LIST]
    more = limit is not None and len(names) > limit
    return {"names": page, "next": base64.urlsafe_b64encode(page[-1].encode()).decode() if more else None}


class SqsService:
    """One per process, like QueueService, which it calls."""

    def __init__(self, queues: QueueService):
        self.queues = queues
        self.store = queues.store
        self.actions: dict[str, Callable[[dict, Endpoint], dict]] = {
            "CreateQueue": self.create_queue, "GetQueueUrl": self.get_queue_url, "ListQueues": self.list_queues,
            "DeleteQueue": self.delete_queue, "GetQueueAttributes": self.get_queue_attributes,
            "SetQueueAttributes": self.set_queue_attributes, "PurgeQueue": self.purge_queue,
            "SendMessage": self.send_message, "SendMessageBatch": self.send_message_batch,
            "ReceiveMessage": self.receive_message, "DeleteMessage": self.delete_message,
            "DeleteMessageBatch": self.delete_message_batch, "ChangeMessageVisibility": self.change_message_visibility,
            "ChangeMessageVisibilityBatch": self.change_message_visibility_batch,
            "ListDeadLetterSourceQueues": self.list_dead_letter_source_queues,
        }

    def call(self, action: str, params: Any, endpoint: Endpoint) -> dict:
        handler = self.actions.get(action)
        if handler is None:
            raise SqsError("InvalidAction", f"The action {action[:100]} is not valid for this endpoint.")
        if not isinstance(params, dict):
            raise SqsError("SerializationException", "The request body must be a JSON object.")
        try:
            return handler(params, endpoint)
        except core_errors.NotFound:
            raise no_queue() from None
        except (core_errors.Invalid, core_errors.TooLarge) as exc:
            raise invalid(exc.message) from None

    # -- queues -------------------------------------------------------------------------------

    def _config(self, name: str, *fields: str) -> list[str | None]:
        values = store_queues.config_fields(self.store, name, *fields)
        if values is None:
            raise no_queue()
        return values

    def _redrive_fields(self, name: str, redrive: tuple[str, int] | None) -> dict:
        if redrive is None:
            return {"dead_letter_queue": "", "max_receives": 0}
        target, max_receives = redrive
        try:
            self.queues.check_dead_letter_queue(name, target, max_receives)
        except core_errors.Invalid as exc:
            reason = exc.errors.get("dead_letter_queue", [exc.message])[0]
            raise SqsError("InvalidParameterValue",
                           f"Value for parameter RedrivePolicy is invalid. Reason: {reason}") from None
        return {"dead_letter_queue": target, "max_receives": max_receives}

    def create_queue(self, params: dict, endpoint: Endpoint) -> dict:
        """Creates the queue, or answers its URL when it exists with the attributes given
        (QueueNameExists when one differs), as SQS does."""
        name = _string(params, "QueueName", required=True)
        if name.endswith(".fifo"):
            raise SqsError("UnsupportedOperation", "FIFO queues are not supported by htq.")
        if not is_name(name):
            raise invalid(f"Value {name[:100]} for parameter QueueName is invalid. Reason: {_NAME_RULE}")
        updates, redrive = queue_attributes.config_updates(params.get("Attributes") or {})
        if not isinstance(params.get("tags") or {}, dict):
            raise invalid("Value for parameter tags must be a map.")
        existing = store_queues.config_fields(self.store, name, *updates, "dead_letter_queue", "max_receives")
        if existing is not None:
            current = dict(zip([*updates, "dead_letter_queue", "max_receives"], existing, strict=True))
            for field, value in updates.items():
                if int(current[field] or queue_attributes.DEFAULTS[field]) != value:
                    raise SqsError("QueueNameExists", "A queue already exists with the same name and a different "
                                                      "value for an attribute.")
            current_redrive = ((current["dead_letter_queue"], int(current["max_receives"] or 0))
                               if current["dead_letter_queue"] else None)
            if redrive is not False and redrive != current_redrive:
                raise SqsError("QueueNameExists", "A queue already exists with the same name and a different "
                                                  "value for attribute RedrivePolicy.")
            return {"QueueUrl": queue_attributes.queue_url(endpoint.base_url, name)}
        fields = {**updates, **(self._redrive_fields(name, redrive) if redrive is not False else {})}
        store_queues.put(self.store, name, now_ms=self.queues.now_ms(), updates=fields,
                         defaults={**STORED_DEFAULTS, "receive_wait_ms": 0,
                                   "max_message_bytes": queue_attributes.DEFAULT_MAX_MESSAGE_BYTES})
        return {"QueueUrl": queue_attributes.queue_url(endpoint.base_url, name)}

    def get_queue_url(self, params: dict, endpoint: Endpoint) -> dict:
        name = _string(params, "QueueName", required=True)
        _string(params, "QueueOwnerAWSAccountId")
        if not is_name(name) or not store_queues.exists(self.store, name):
            raise no_queue()
        return {"QueueUrl": queue_attributes.queue_url(endpoint.base_url, name)}

    def list_queues(self, params: dict, endpoint: Endpoint) -> dict:
        prefix = _string(params, "QueueNamePrefix") or ""
        names = [name for name in store_queues.names(self.store) if name.startswith(prefix)]
        page = _page(names, params)
        answer: dict = {}
        if page["names"]:  # AWS leaves the member out when no queue matches
            answer["QueueUrls"] = [queue_attributes.queue_url(endpoint.base_url, name) for name in page["names"]]
        if page["next"]:
            answer["NextToken"] = page["next"]
        return answer

    def delete_queue(self, params: dict, endpoint: Endpoint) -> dict:
        self.queues.delete(queue_name(params))
        return {}

    def get_queue_attributes(self, params: dict, endpoint: Endpoint) -> dict:
        name = queue_name(params)
        stats = store_queues.stats(self.store, name, now_ms=self.queues.now_ms())
        if stats is None:
            raise no_queue()
        values = queue_attributes.read_attributes(stats.config, (stats.visible, stats.in_flight, stats.delayed),
                                                  params.get("AttributeNames"), name=name, region=endpoint.region)
        return {"Attributes": values} if values else {}

    def set_queue_attributes(self, params: dict, endpoint: Endpoint) -> dict:
        name = queue_name(params)
        if params.get("Attributes") is None:
            raise _missing("Attributes")
        updates, redrive = queue_attributes.config_updates(params["Attributes"])
        self._config(name)
        fields = {**updates, **(self._redrive_fields(name, redrive) if redrive is not False else {})}
        store_queues.put(self.store, name, now_ms=self.queues.now_ms(), defaults={}, updates=fields)
        return {}

    def purge_queue(self, params: dict, endpoint: Endpoint) -> dict:
        if not store_queues.purge(self.store, queue_name(params)):
            raise no_queue()
        return {}

    def list_dead_letter_source_queues(self, params: dict, endpoint: Endpoint) -> dict:
        name = queue_name(params)
        self._config(name)
        page = _page(store_queues.dead_letter_sources(self.store, name), params)
        urls = [queue_attributes.queue_url(endpoint.base_url, source) for source in page["names"]]
        answer: dict = {"queueUrls": urls}
        if page["next"]:
            answer["NextToken"] = page["next"]
        return answer

    # -- messages -----------------------------------------------------------------------------

    def _message(self, params: dict, max_bytes: int) -> tuple[str, int | None, dict, int]:
        """(body, delay_s, attributes, size) of a SendMessage request or batch entry, checked."""
        body = _string(params, "MessageBody", required=True)
        if body == "":
            raise invalid("The request must contain a non-empty MessageBody.")
        check_text(body, "the message body")
        delay_s = _integer(params, "DelaySeconds", 0, 900)
        attributes = check_attributes(params.get("MessageAttributes"))
        if not isinstance(params.get("MessageSystemAttributes") or {}, dict):
            raise invalid("Value for parameter MessageSystemAttributes must be a map.")
        _string(params, "MessageGroupId")
        _string(params, "MessageDeduplicationId")
        size = len(body.encode()) + attributes_size(attributes)
        if size > max_bytes:
            raise invalid("One or more parameters are invalid. "
                          f"Reason: Message must be shorter than {max_bytes} bytes.")
        return body, delay_s, attributes, size

    def _max_bytes(self, name: str, sizes: list[int]) -> int:
        """The queue's MaximumMessageSize, read only when a message is larger than the smallest
        one a queue may have (so small messages cost no extra round trip; the push itself then
        finds out whether the queue exists)."""
        if max(sizes, default=0) <= queue_attributes.MIN_MESSAGE_BYTES:
            return queue_attributes.MIN_MESSAGE_BYTES
        [max_bytes] = self._config(name, "max_message_bytes")
        return int(max_bytes or queue_attributes.DEFAULT_MAX_MESSAGE_BYTES)

    def send_message(self, params: dict, endpoint: Endpoint) -> dict:
        name = queue_name(params)
        body, delay_s, attributes, _ = self._message(params, self._max_bytes(name, [_size_hint(params)]))
        [message_id] = self.queues.push_many(name, [(text_body(body), delay_s)], [stored_attributes(attributes)],
                                             existing=True)
        answer = {"MessageId": message_id, "MD5OfMessageBody": md5_of_body(body)}
        if attributes:
            answer["MD5OfMessageAttributes"] = md5_of_attributes(attributes)
        return answer

    def send_message_batch(self, params: dict, endpoint: Endpoint) -> dict:
        name = queue_name(params)
        entries = _entries(params)
        max_bytes = self._max_bytes(name, [_size_hint(entry) for entry in entries])
        batch_max_bytes = max(BATCH_MAX_BYTES, max_bytes)
        accepted, failed, total = [], [], 0
        for entry in entries:
            try:
                body, delay_s, attributes, size = self._message(entry, max_bytes)
            except SqsError as error:
                failed.append(_failure(entry["Id"], error))
                continue
            total += size
            accepted.append((entry["Id"], body, delay_s, attributes))
        if total > batch_max_bytes:
            raise SqsError("BatchRequestTooLong", f"Batch requests cannot be longer than {batch_max_bytes} bytes. "
                                                  f"You have sent {total} bytes.")
        successful = []
        if not accepted:
            self._config(name)  # QueueDoesNotExist comes first, as on AWS
        else:
            ids = self.queues.push_many(name, [(text_body(body), delay_s) for _, body, delay_s, _ in accepted],
                                        [stored_attributes(attributes) for *_, attributes in accepted],
                                        existing=True)
            for (entry_id, body, _, attributes), message_id in zip(accepted, ids, strict=True):
                result = {"Id": entry_id, "MessageId": message_id, "MD5OfMessageBody": md5_of_body(body)}
                if attributes:
                    result["MD5OfMessageAttributes"] = md5_of_attributes(attributes)
                successful.append(result)
        return {"Successful": successful, "Failed": failed}

    def receive_message(self, params: dict, endpoint: Endpoint) -> dict:
        name = queue_name(params)
        max_messages = _integer(params, "MaxNumberOfMessages", 1, MAX_BATCH) or 1
        visibility_s = _integer(params, "VisibilityTimeout", 0, 43200)
        wait_s = _integer(params, "WaitTimeSeconds", 0, 20)
        system = set(_strings(params, "AttributeNames")) | set(_strings(params, "MessageSystemAttributeNames"))
        wanted_system = SYSTEM_ATTRIBUTES if "All" in system else [a for a in SYSTEM_ATTRIBUTES if a in system]
        wanted_attributes = _strings(params, "MessageAttributeNames")
        _string(params, "ReceiveRequestAttemptId")

        def convert(message: store_queues.Received) -> dict:
            body = sqs_body(message.body)
            answer: dict[str, Any] = {"MessageId": message.id,
                                      "ReceiptHandle": receipt_handle(name, message.id, message.receipt),
                                      "MD5OfBody": md5_of_body(body), "Body": body}
            if wanted_system:
                values = {"SenderId": queue_attributes.ACCOUNT, "SentTimestamp": str(message.enqueued_ms),
                          "ApproximateReceiveCount": str(message.receive_count),
                          "ApproximateFirstReceiveTimestamp": str(message.first_received_ms)}
                answer["Attributes"] = {attribute: values[attribute] for attribute in wanted_system}
            attributes = selected_attributes(message.attributes, wanted_attributes)
            if attributes:
                answer["MessageAttributes"] = attributes
                answer["MD5OfMessageAttributes"] = md5_of_attributes(attributes)
            return answer

        visibility = None if visibility_s is None else float(visibility_s)
        if wait_s is None:
            # The queue's ReceiveMessageWaitTimeSeconds, read only when nothing is there at once.
            messages = self.queues.receive(name, max_messages, visibility, 0.0, convert=convert)
            if messages:
                return {"Messages": messages}
            [wait_ms] = self._config(name, "receive_wait_ms")
            wait_s = int(wait_ms or 0) // 1000
            if not wait_s:
                return {}
        messages = self.queues.receive(name, max_messages, visibility, float(wait_s), convert=convert)
        return {"Messages": messages} if messages else {}

    def delete_message(self, params: dict, endpoint: Endpoint) -> dict:
        """As SQS: a handle from an earlier receive, or of a message already deleted, succeeds
        without deleting anything."""
        name = queue_name(params)
        message_id, receipt = parse_receipt_handle(name, _string(params, "ReceiptHandle", required=True))
        if store_queues.ack(self.store, name, [(message_id, receipt)]) is None:
            raise no_queue()
        return {}

    def delete_message_batch(self, params: dict, endpoint: Endpoint) -> dict:
        name = queue_name(params)
        items, failed = [], []
        for entry in _entries(params):
            try:
                items.append((entry["Id"], parse_receipt_handle(name, entry.get("ReceiptHandle"))))
            except SqsError as error:
                failed.append(_failure(entry["Id"], error))
        if items and store_queues.ack(self.store, name, [handle for _, handle in items]) is None:
            raise no_queue()
        if not items:
            self._config(name)
        successful = [{"Id": entry_id} for entry_id, _ in items]
        return {"Successful": successful, "Failed": failed}

    def _change_visibility(self, name: str, handle: Any, visibility_s: int) -> None:
        message_id, receipt = parse_receipt_handle(name, handle)
        changed = store_queues.change_visibility(self.store, name, message_id, receipt, now_ms=self.queues.now_ms(),
                                                 visibility_timeout_ms=visibility_s * 1000)
        if changed.result == "missing":
            raise no_queue()
        if changed.result != "ok":
            raise invalid(f"Value {handle} for parameter ReceiptHandle is invalid. Reason: Message does not exist "
                          "or is not available for visibility timeout change.")

    def change_message_visibility(self, params: dict, endpoint: Endpoint) -> dict:
        name = queue_name(params)
        handle = _string(params, "ReceiptHandle", required=True)
        self._change_visibility(name, handle, _integer(params, "VisibilityTimeout", 0, 43200, required=True))
        return {}

    def change_message_visibility_batch(self, params: dict, endpoint: Endpoint) -> dict:
        name = queue_name(params)
        successful, failed = [], []
        for entry in _entries(params):
            try:
                visibility_s = _integer(entry, "VisibilityTimeout", 0, 43200, required=True)
                self._change_visibility(name, entry.get("ReceiptHandle"), visibility_s)
            except SqsError as error:
                if error.type == "QueueDoesNotExist":
                    raise
                failed.append(_failure(entry["Id"], error))
            else:
                successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}
