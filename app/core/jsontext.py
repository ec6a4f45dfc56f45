"""JSON text: written by orjson (several times faster than the json module), read by the json module.

Reading stays with the json module because orjson turns integers over 64 bits into floats, and a
message must come back as it was sent. Writing falls back to the json module for what orjson
refuses: integers over 64 bits and strings holding a lone surrogate (the json module reads one
from "\\ud800"). NaN and Infinity are refused when read (JSON has no such values; orjson would
write them as null).
"""
from __future__ import annotations

import json
from typing import Any

import orjson


def _refuse_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def loads(text: str | bytes) -> Any:
    """The value of a JSON text; JSONDecodeError (a ValueError) if it is not JSON, NaN included."""
    if not isinstance(text, str):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return _DECODER.decode(text)


def embedded(text: str) -> orjson.Fragment:
    """JSON text (already checked) that `dumps` and the app's JSON provider write as it is."""
    return orjson.Fragment(text)


def dumps(value: Any) -> str:
    """Compact JSON text of a value read by `loads`."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"))
