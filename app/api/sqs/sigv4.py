"""Verifying AWS Signature Version 4 on incoming requests (the `Authorization` header form that
boto3 and aws-cli send), for HTQ_SQS_CREDENTIALS.

The canonical request, string to sign and signing key are AWS's ("Create a signed AWS API
request" in the IAM guide): any region, service `sqs`, a clock skew of at most 5 minutes."""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import parse_qsl, quote

from app.core.sqs.errors import SqsError

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sqs"
MAX_SKEW_S = 300
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=([^/\s,]+)/(\d{8})/([^/\s,]+)/([^/\s,]+)/aws4_request\s*,\s*"
    r"SignedHeaders=([a-z0-9;\-]+)\s*,\s*Signature=([0-9a-f]{64})\s*")
_SPACES = re.compile(r"\s+")


class Signed(NamedTuple):
    """What a valid signature says about its request."""

    access_key_id: str
    region: str


def region_of(authorization: str) -> str | None:
    """The region of a signature's credential scope, without checking it (for ARNs when unchecked)."""
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    return match.group(3) if match else None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    return _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), "aws4_request")


def canonical_request(method: str, raw_path: str, query: str, headers: Mapping[str, str], signed: list[str],
                      payload_hash: str) -> str:
    """`raw_path` and `query` as they came on the request line (percent-encoded); `headers` by
    lower-case name. The path is encoded once more, as AWS does for every service but S3."""
    path = quote(raw_path or "/", safe="/~")
    pairs = sorted((quote(key, safe="-_.~"), quote(value, safe="-_.~"))
                   for key, value in parse_qsl(query, keep_blank_values=True))
    header_lines = "".join(f"{name}:{_SPACES.sub(' ', headers.get(name, '')).strip()}\n" for name in signed)
    return "\n".join([method, path, "&".join(f"{k}={v}" for k, v in pairs), header_lines, ";".join(signed),
                      payload_hash])


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])


def _denied(type_: str, message: str) -> SqsError:
    return SqsError(type_, message)


def verify(method: str, raw_path: str, query: str, headers: Mapping[str, str], body: bytes,
           credentials: Mapping[str, str], now: datetime) -> Signed:
    """The signer, when the request carries a valid signature by one of `credentials` (access key
    id -> secret); else SqsError (403) as AWS words it. `headers` maps lower-case names to values."""
    authorization = headers.get("authorization", "")
    if not authorization:
        raise _denied("MissingAuthenticationToken", "Request is missing Authentication Token")
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if match is None:
        raise _denied("IncompleteSignature", "Authorization header requires 'Credential', 'SignedHeaders' and "
                                             f"'Signature' parameters of the {ALGORITHM} algorithm.")
    key_id, date, region, service, signed_text, signature = match.groups()
    secret = credentials.get(key_id)
    if secret is None:
        raise _denied("InvalidClientTokenId", "The security token included in the request is invalid.")
    if service != SERVICE:
        raise _denied("SignatureDoesNotMatch", f"Credential should be scoped to correct service: '{SERVICE}'.")
    signed = signed_text.split(";")
    amz_date = headers.get("x-amz-date", "")
    if "host" not in signed or signed != sorted(signed):
        raise _denied("SignatureDoesNotMatch", "The request must sign the host header; SignedHeaders are sorted.")
    try:
        moment = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _denied("IncompleteSignature", "The request must carry a valid X-Amz-Date header.") from None
    if "x-amz-date" not in signed or amz_date[:8] != date:
        raise _denied("SignatureDoesNotMatch", "The credential scope's date must be the X-Amz-Date's, and signed.")
    if abs((now - moment).total_seconds()) > MAX_SKEW_S:
        raise _denied("SignatureDoesNotMatch", f"Signature expired: {amz_date} is out of the allowed clock skew "
                                               f"of 5 minutes around {now.strftime('%Y%m%dT%H%M%SZ')}.")
    payload_hash = hashlib.sha256(body).hexdigest()  # never UNSIGNED-PAYLOAD: the body is always signed
    if headers.get("x-amz-content-sha256", payload_hash) != payload_hash:
        raise _denied("SignatureDoesNotMatch", "The body does not match X-Amz-Content-SHA256.")
    canonical = canonical_request(method, raw_path, query, headers, signed, payload_hash)
    scope = f"{date}/{region}/{service}/aws4_request"
    expected = hmac.new(signing_key(secret, date, region, service), string_to_sign(amz_date, scope, canonical).encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise _denied("SignatureDoesNotMatch", "The request signature we calculated does not match the signature "
                                               "you provided. Check your AWS Secret Access Key and signing method.")
    return Signed(key_id, region)
