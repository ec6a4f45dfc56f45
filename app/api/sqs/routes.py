"""POST /sqs: the AWS JSON 1.0 protocol of Amazon SQS (`X-Amz-Target: AmazonSQS.<Action>`), over
htq's queues, so boto3 and aws-cli work with `endpoint_url=http://HOST:PORT/sqs`.

Every answer, errors included, is in AWS's shape: a 400 carries `{"__type", "message"}` and the
`x-amzn-query-error` header from which botocore raises its modelled exceptions. With
HTQ_SQS_CREDENTIALS every call must carry a valid Signature Version 4 (403 otherwise), by a
credential with the scope its action needs (app/scopes.py, sqs_action_scope; AccessDenied
otherwise); without it, signatures are not checked, unless HTQ_API_TOKENS is set, when every call
is refused (bearer tokens are not how AWS clients authenticate, and /sqs must not be an open door
beside them)."""
from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app import scopes
from app.api.sqs import sigv4
from app.compat import answer_redis_outage
from app.core import jsontext
from app.core.sqs.errors import SqsError
from app.core.sqs.service import Endpoint
from app.extensions import services

log = logging.getLogger(__name__)

PATH = "/sqs"
CONTENT_TYPE = "application/x-amz-json-1.0"
TARGET_PREFIX = "AmazonSQS."
DEFAULT_REGION = "us-east-1"
ERROR_NAMESPACE = "com.amazonaws.sqs#"

blp = Blueprint("sqs", __name__)


def _answer(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    response = Response(jsontext.dumps(body), status=status, content_type=CONTENT_TYPE)
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_answer(error: SqsError, headers: dict | None = None) -> Response:
    """AWS's JSON error, with the Query API's code in x-amzn-query-error ("<code>;Sender")."""
    fault = "Sender" if error.sender_fault else "Receiver"
    return _answer({"__type": ERROR_NAMESPACE + error.type, "message": error.message}, error.status,
                   {"x-amzn-query-error": f"{error.query_code};{fault}", **(headers or {})})


answer_redis_outage(blp, lambda code, text, headers: error_answer(SqsError("ServiceUnavailable", text), headers))


@blp.errorhandler(SqsError)
def _sqs_error(error: SqsError):
    return error_answer(error)


@blp.errorhandler(Exception)
def _unexpected(error: Exception):
    """Anything else is a bug, not the caller's fault: logged, and answered in AWS's shape (a 500,
    which SDKs retry)."""
    if isinstance(error, HTTPException) and (error.code or 500) < 500:  # a body werkzeug could not read
        return error_answer(SqsError("SerializationException", error.description or error.name))
    log.exception("SQS call failed: %s", request.headers.get("X-Amz-Target", "?"))
    return error_answer(SqsError("InternalFailure", "The request processing has failed because of an unknown "
                                                    "error, exception or failure."))


@blp.errorhandler(RequestEntityTooLarge)
def _too_large(_error):
    return error_answer(SqsError("RequestEntityTooLarge", "The request is larger than this endpoint takes."))


def _signed_region(action: str) -> str:
    """The caller's region (for ARNs): checked from the signature when credentials are set, as is
    the signer's scope for `action`."""
    settings = services().settings
    if settings.sqs_credentials:
        raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
        raw_path = raw_uri.partition("?")[0] or quote(request.environ.get("PATH_INFO", PATH))
        signed = sigv4.verify(request.method, raw_path, request.query_string.decode("latin-1"),
                              {name.lower(): value for name, value in request.headers.items()},
                              request.get_data(cache=True), dict(settings.sqs_credentials), datetime.now(UTC))
        needed = scopes.sqs_action_scope(action)
        granted = settings.sqs_scopes.get(signed.access_key_id, frozenset({scopes.ADMIN}))
        if scopes.ADMIN not in granted and needed not in granted:
            raise SqsError("AccessDenied", f"User: {signed.access_key_id} is not authorized to perform: "
                                           f"sqs:{action} (it needs the '{needed}' scope)")
        return signed.region
    if settings.api_tokens:
        raise SqsError("AccessDenied", "This endpoint takes signed calls only when HTQ_SQS_CREDENTIALS is set: "
                                       "HTQ_API_TOKENS is set and bearer tokens are not SQS credentials.")
    return sigv4.region_of(request.headers.get("Authorization", "")) or DEFAULT_REGION


@blp.route(PATH, methods=["POST"])
@blp.route(PATH + "/", methods=["POST"])
@blp.route(PATH + "/<account>/<queue>", methods=["POST"])
def sqs(account: str | None = None, queue: str | None = None):
    """Calls come to the endpoint; some SDKs (AWS's JavaScript v3) send them to the queue's URL
    instead, which names the same queue as the QueueUrl member: both are served alike."""
    target = request.headers.get("X-Amz-Target", "")
    region = _signed_region(target.removeprefix(TARGET_PREFIX))
    if not target.startswith(TARGET_PREFIX):
        raise SqsError("InvalidAction", "Send X-Amz-Target: AmazonSQS.<Action> (htq speaks the AWS JSON 1.0 "
                                        "protocol of SQS, not the former Query protocol).")
    if request.mimetype not in (CONTENT_TYPE, "application/json"):
        raise SqsError("SerializationException", f"Send the body as {CONTENT_TYPE}.")
    data = request.get_data(cache=True)
    try:
        params = jsontext.loads(data) if data.strip() else {}
    except ValueError as exc:
        raise SqsError("SerializationException", f"The body is not JSON: {jsontext.reason(exc)}") from None
    endpoint = Endpoint(request.host_url.rstrip("/") + PATH, region)
    return _answer(services().sqs.call(target[len(TARGET_PREFIX):], params, endpoint))
