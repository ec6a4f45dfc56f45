"""JSON text: written by orjson (several times faster than the json module), read by the json module.

Reading stays with the json module because orjson turns integers over 64 bits into floats, and a
message must come back as it was sent. Writing falls back to the json module for what orjson
refuses: integers over 64 bits and strings holding a lone surrogate (the json module reads one
from "\\ud800").

What is read is what can be written back: `loads` refuses (as malformed JSON) text that is not
UTF-8, nesting deeper than MAX_DEPTH levels (orjson writes at most 255, the json module stops at
Python's recursion limit), NaN and Infinity (JSON has no such values; orjson would write them as
null), numbers too large for a double (1e400 would read as Infinity) and integers longer than
Python converts (4300 digits).
"""
from __future__ import annotations

import json
import math
import re
import secrets
import sys
from array import array
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import Any

import orjson

# Levels of arrays and objects in one JSON text, the outermost included: deep enough for any
# real document, shallow enough that every answer wrapping one (a listing, a callback) is
# written by orjson with room to spare.
MAX_DEPTH = 100


class Refused(json.JSONDecodeError):
    """JSON text that `loads` does not read although the json module would (no position)."""

    def __init__(self, message: str, text: str):
        super().__init__(message, text or message, 0)  # an empty doc would read as "no body" to webargs


class TooDeep(Refused):
    """JSON text nested deeper than MAX_DEPTH."""


def _refuse_constant(name: str):
    raise Refused(f"{name} is not JSON", name)


def finite_float(text: str) -> float:
    """A JSON number as a float (json's `parse_float`); Refused if too large for a double."""
    value = float(text)
    if not math.isfinite(value):
        raise Refused(f"the number {text[:20]} is out of range", text)
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=finite_float)

# For the depth check: the text's skeleton, its brackets (all made square) and quotes.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_SKELETON = bytes(set(range(256)) - set(b'[]{}"'))
_STEPS = bytes.maketrans(b"[]", b"\x01\xff")  # as signed bytes: +1 opening, -1 closing
_QUICK_PASSES = 8


def depth_exceeds(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects more than `limit` levels deep, at C speed.

    Text with few brackets is answered by counting them. Otherwise its skeleton is kept:
    brackets and quotes (every quote delimits a string unless one is escaped; then strings are
    matched one by one). Strings without brackets vanish with their `""`, those with some are cut
    out; a few passes drop the innermost pairs, a level each, which is all shallow text needs;
    deeper text is measured by the running sum of its brackets (unclosed ones count)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    if '\\"' in text:
        text = _STRING.sub("", text)
    skeleton = text.encode("utf-8", "ignore").translate(_SQUARE, _NOT_SKELETON).replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[::2])
    for _ in range(_QUICK_PASSES):
        shorter = skeleton.replace(b"[]", b"")
        if not shorter:
            return False
        if len(shorter) == len(skeleton):
            break  # brackets that do not pair up
        skeleton, limit = shorter, limit - 1
    return max(accumulate(array("b", skeleton.translate(_STEPS))), default=0) > limit


def check_depth(text: str) -> None:
    """Raises TooDeep (a JSONDecodeError) for text nested deeper than MAX_DEPTH."""
    if depth_exceeds(text):
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels", text)


def loads(text: str | bytes) -> Any:
    """The value of a JSON text; a ValueError if it is not JSON as htq reads it (see the module's
    docstring): JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8."""
    if not isinstance(text, str):
        text = text.decode(json.detect_encoding(text))
    check_depth(text)
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError:
        raise
    except ValueError:  # int() of more than 4300 digits
        raise too_many_digits(text) from None


def too_many_digits(text: str) -> Refused:
    """What `loads` raises for the ValueError of int() on an integer of more than 4300 digits."""
    return Refused(f"an integer has more than {sys.get_int_max_str_digits()} digits", text)


def reason(error: ValueError) -> str:
    """Why `loads` refused a text, for an error message."""
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 (byte {error.start})"
    if isinstance(error, Refused):
        return error.msg
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} (char {error.pos})"
    return str(error)


def embedded(text: str) -> orjson.Fragment:
    """JSON text (already checked) that `dumps` and the app's JSON provider write as it is."""
    return orjson.Fragment(text)


def dumps(value: Any) -> str:
    """Compact JSON text of a value read by `loads`."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"))


# -- what htq stored before depth was limited ------------------------------------------------

_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def loads_stored(text: str) -> Any:
    """The value of JSON text that htq wrote itself, read even when it nests too deep for the
    json module (text stored before `loads` limited depth): then the members or items of the
    outermost array or object that nest deeper than MAX_DEPTH come back as Fragments of their
    text, which the writers copy as they are."""
    try:
        return json.loads(text)
    except RecursionError:
        pass
    spans, depth, start, deepest = [], 0, 0, 0
    for token in _TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth == 2:
                start, deepest = token.start(), 2
            deepest = max(deepest, depth)
        elif char in "]}":
            if depth == 2 and deepest - 1 > MAX_DEPTH:
                spans.append((start, token.end()))
            depth -= 1
    if depth != 0 or not spans:
        raise ValueError("not JSON text that htq wrote")
    marker = f"\x00deep-{secrets.token_hex(8)}-"
    fragments, parts, end = {}, [], 0
    for number, (start, stop) in enumerate(spans):
        fragments[marker + str(number)] = orjson.Fragment(text[start:stop])
        parts += [text[end:start], json.dumps(marker + str(number))]
        end = stop
    value = json.loads("".join(parts) + text[end:])
    members = value.items() if isinstance(value, dict) else enumerate(value)
    for key, member in list(members):
        if isinstance(member, str) and member in fragments:
            value[key] = fragments[member]
    return value


def dumps_sent(value: Any) -> str:
    """The text htq sends for a value (a request's `json`, a callback's resource): the json
    module's, as always; for a value stored before depth was limited (read by `loads_stored`, its
    deep parts Fragments the json module cannot write), orjson's, which copies them as they are."""
    try:
        return json.dumps(value)
    except (TypeError, RecursionError):
        return dumps(value)


def dumps_iteratively(value: Any, default: Callable[[Any], Any]) -> str:
    """JSON text of a value at any depth, without recursion: for what the recursive writers give
    up on (a value stored before depth was limited). Slow; only ever a fallback."""
    parts: list[str] = []
    pending: list[Iterator] = [iter((value,))]
    closers: list[str] = [""]
    first: list[bool] = [True]
    while pending:
        try:
            item = next(pending[-1])
        except StopIteration:
            pending.pop()
            parts.append(closers.pop())
            first.pop()
            continue
        if not first[-1]:
            parts.append(",")
        first[-1] = False
        if isinstance(pending[-1], _Members):
            key, item = item
            parts.append(json.dumps(key if isinstance(key, str) else str(key)) + ":")
        while not isinstance(item, (dict, list, tuple, str, int, float, bool, orjson.Fragment)) and item is not None:
            item = default(item)
        if isinstance(item, dict):
            parts.append("{")
            pending.append(_Members(item))
            closers.append("}")
            first.append(True)
        elif isinstance(item, (list, tuple)):
            parts.append("[")
            pending.append(iter(item))
            closers.append("]")
            first.append(True)
        elif isinstance(item, orjson.Fragment):
            parts.append(orjson.dumps(item).decode())  # the fragment's text, as it is
        else:
            parts.append(json.dumps(item))
    return "".join(parts)


class _Members:
    """The (key, value) pairs of an object being written by `dumps_iteratively`."""

    def __init__(self, mapping: dict):
        self._items = iter(mapping.items())

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._items)
