"""The Signature Version 4 verifier as a function, against requests signed by botocore's own
signer: fast checks of the canonical forms (paths, query strings, header values) and the window."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from app.api.sqs import sigv4
from app.core.sqs.errors import SqsError

CREDENTIALS = {"AKID": "secret"}


def signed(url="http://localhost:8080/sqs", body=b'{"QueueName": "q"}', headers=None, region="eu-central-1",
           service="sqs", secret="secret"):
    request = AWSRequest(method="POST", url=url, data=body, headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.GetQueueUrl", **(headers or {})})
    SigV4Auth(Credentials("AKID", secret), service, region).add_auth(request)
    prepared = request.prepare()
    split = prepared.url.split("?", 1)
    path = split[0].split("localhost:8080", 1)[1]
    headers = {"host": "localhost:8080", **{k.lower(): v for k, v in prepared.headers.items()}}  # as sent
    return path, split[1] if len(split) > 1 else "", headers, body


def verify(path, query, headers, body, now=None):
    return sigv4.verify("POST", path, query, headers, body, CREDENTIALS, now or datetime.now(UTC))


def test_a_botocore_signature_verifies_and_names_its_region():
    assert verify(*signed()) == sigv4.Signed("AKID", "eu-central-1")


def test_paths_query_strings_and_spaced_header_values_canonicalize_as_botocore_signs_them():
    assert verify(*signed(url="http://localhost:8080/sqs/000000000000/my-queue?b=2&a=x%20y&a=1&c=")).region
    assert verify(*signed(headers={"X-Custom": "  two   spaces  "})).region
    assert verify(*signed(url="http://localhost:8080/sqs/%7Etilde/a%20b")).region


@pytest.mark.parametrize("change", ["body", "path", "query", "header", "secret", "service"])
def test_any_change_breaks_the_signature(change):
    path, query, headers, body = signed(url="http://localhost:8080/sqs?x=1")
    if change == "body":
        body = b'{"QueueName": "r"}'
    elif change == "path":
        path = "/sqs/"
    elif change == "query":
        query = "x=2"
    elif change == "header":
        headers["x-amz-target"] = "AmazonSQS.DeleteQueue"
    elif change == "secret":
        path, query, headers, body = signed(secret="other")
    else:
        path, query, headers, body = signed(service="sns")
    with pytest.raises(SqsError) as excinfo:
        verify(path, query, headers, body)
    assert excinfo.value.type == "SignatureDoesNotMatch" and excinfo.value.status == 403


def test_the_clock_window_is_five_minutes_each_way():
    request = signed()
    signed_at = datetime.strptime(request[2]["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    for offset_s, ok in [(-300, True), (300, True), (-301, False), (301, False)]:
        if ok:
            verify(*request, now=signed_at + timedelta(seconds=offset_s))
        else:
            with pytest.raises(SqsError, match="expired"):
                verify(*request, now=signed_at + timedelta(seconds=offset_s))


@pytest.mark.parametrize("authorization,type_", [
    ("", "MissingAuthenticationToken"),
    ("Bearer token", "IncompleteSignature"),
    ("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sqs/aws4_request", "IncompleteSignature"),
    ("AWS4-HMAC-SHA256 Credential=NOPE/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, "
     "Signature=" + "0" * 64, "InvalidClientTokenId"),
])
def test_malformed_or_unknown_authorization(authorization, type_):
    path, query, headers, body = signed()
    headers["authorization"] = authorization
    with pytest.raises(SqsError) as excinfo:
        verify(path, query, headers, body)
    assert excinfo.value.type == type_


def test_unsigned_host_or_date_is_refused():
    path, query, headers, body = signed()
    headers["authorization"] = headers["authorization"].replace("SignedHeaders=content-type;host;",
                                                                "SignedHeaders=content-type;")
    with pytest.raises(SqsError):
        verify(path, query, headers, body)
