"""AWS's SQS errors: the shape name boto3 raises (`__type`) and the former Query API's code that
the `x-amzn-query-error` header carries (botocore puts it in `Error.Code`).

Each error is a 400 sent by the caller's fault unless said otherwise; the names and codes are
those of AWS's API reference and the botocore service model (`awsQueryCompatible`)."""
from __future__ import annotations

# shape name -> (query error code, HTTP status)
ERRORS: dict[str, tuple[str, int]] = {
    "QueueDoesNotExist": ("AWS.SimpleQueueService.NonExistentQueue", 400),
    "QueueNameExists": ("QueueAlreadyExists", 400),
    "ReceiptHandleIsInvalid": ("ReceiptHandleIsInvalid", 400),
    "MessageNotInflight": ("AWS.SimpleQueueService.MessageNotInflight", 400),
    "InvalidParameterValue": ("InvalidParameterValue", 400),
    "MissingParameter": ("MissingParameter", 400),
    "InvalidAttributeName": ("InvalidAttributeName", 400),
    "InvalidAttributeValue": ("InvalidAttributeValue", 400),
    "InvalidMessageContents": ("InvalidMessageContents", 400),
    "TooManyEntriesInBatchRequest": ("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400),
    "BatchEntryIdsNotDistinct": ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400),
    "EmptyBatchRequest": ("AWS.SimpleQueueService.EmptyBatchRequest", 400),
    "InvalidBatchEntryId": ("AWS.SimpleQueueService.InvalidBatchEntryId", 400),
    "BatchRequestTooLong": ("AWS.SimpleQueueService.BatchRequestTooLong", 400),
    "UnsupportedOperation": ("AWS.SimpleQueueService.UnsupportedOperation", 400),
    "InvalidAction": ("InvalidAction", 400),
    "SerializationException": ("SerializationException", 400),
    "MissingAuthenticationToken": ("MissingAuthenticationToken", 403),
    "IncompleteSignature": ("IncompleteSignature", 403),
    "InvalidClientTokenId": ("InvalidClientTokenId", 403),
    "SignatureDoesNotMatch": ("SignatureDoesNotMatch", 403),
    "AccessDenied": ("AccessDenied", 403),
    "RequestEntityTooLarge": ("RequestEntityTooLarge", 413),
    "ServiceUnavailable": ("ServiceUnavailable", 503),
    "InternalFailure": ("InternalFailure", 500),
}


class SqsError(Exception):
    """An error as AWS SQS answers it; `type` is a key of ERRORS."""

    def __init__(self, type_: str, message: str):
        super().__init__(message)
        self.type = type_
        self.message = message

    @property
    def query_code(self) -> str:
        return ERRORS[self.type][0]

    @property
    def status(self) -> int:
        return ERRORS[self.type][1]

    @property
    def sender_fault(self) -> bool:
        return self.status < 500


def invalid(message: str) -> SqsError:
    return SqsError("InvalidParameterValue", message)


def no_queue() -> SqsError:
    return SqsError("QueueDoesNotExist", "The specified queue does not exist.")
