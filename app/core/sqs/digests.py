"""The MD5 digests SQS answers with, computed as AWS does, so that clients that check them agree.

MD5OfMessageAttributes covers the attributes sorted by name, each encoded as: the name, the data
type (each as a 4-byte big-endian length and UTF-8 bytes), one transport byte (1 for String and
Number, 2 for Binary), then the value (4-byte length and bytes: a string's UTF-8, a binary's raw
bytes). AWS's SDKs verify received messages the same way."""
from __future__ import annotations

import base64
import hashlib
import struct

STRING_TRANSPORT = 1
BINARY_TRANSPORT = 2


def md5_of_body(body: str) -> str:
    return hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()


def _sized(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def md5_of_attributes(attributes: dict[str, dict[str, str]]) -> str:
    """`attributes` as the JSON protocol carries them: {name: {"DataType", "StringValue" or
    "BinaryValue" (base64)}}."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        value = attributes[name]
        digest.update(_sized(name.encode("utf-8")))
        digest.update(_sized(value["DataType"].encode("utf-8")))
        if "BinaryValue" in value:
            digest.update(bytes([BINARY_TRANSPORT]) + _sized(base64.b64decode(value["BinaryValue"])))
        else:
            digest.update(bytes([STRING_TRANSPORT]) + _sized(value["StringValue"].encode("utf-8")))
    return digest.hexdigest()
