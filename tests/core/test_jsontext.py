"""JSON text as htq reads and writes it: the depth limit, what is refused as not JSON, and the
reading and writing of values stored before depth was limited."""
from __future__ import annotations

import json
import sys

import orjson
import pytest

from app.core import jsontext
from app.core.jsontext import MAX_DEPTH


def nested(depth: int, inner: str = "1") -> str:
    """JSON text `depth` levels deep, alternating arrays and objects."""
    text = inner
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"k": {text}}}'
    return text


@pytest.mark.parametrize("make", [
    lambda d: "[" * d + "]" * d,
    lambda d: '{"a":' * d + "1" + "}" * d,
    nested,
    lambda d: "[" + ",".join(["[]"] * 500) + "," + "[" * (d - 1) + "]" * (d - 1) + "]",  # wide, then deep
    lambda d: '["[[[[[[", "\\"[", ' + "[" * (d - 1) + '"]]]"' + "]" * (d - 1) + "]",  # brackets in strings
])
def test_depth_limit_is_exact(make):
    assert not jsontext.depth_exceeds(make(MAX_DEPTH))
    assert jsontext.depth_exceeds(make(MAX_DEPTH + 1))
    assert jsontext.loads(make(MAX_DEPTH)) is not None
    with pytest.raises(jsontext.TooDeep):
        jsontext.loads(make(MAX_DEPTH + 1))


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"a": "[" * 500, "b": ["]" * 500, "{" * 500], "c": '\\"' + "[" * 300})
    assert not jsontext.depth_exceeds(text)
    assert jsontext.loads(text)["a"] == "[" * 500


def test_unclosed_brackets_are_refused_without_recursing():
    with pytest.raises(json.JSONDecodeError):
        jsontext.loads("[" * 100_000)


@pytest.mark.parametrize("text, reason", [
    ("NaN", "NaN is not JSON"),
    ('{"a": [-Infinity]}', "-Infinity is not JSON"),
    ("1e400", "the number 1e400 is out of range"),
    ("[-" + "9" * 400 + ".5]", "out of range"),
    ("9" * 5000, "an integer has more than 4300 digits"),
    ('{"a": 1', "Expecting"),
])
def test_what_is_not_json_as_htq_reads_it(text, reason):
    with pytest.raises(json.JSONDecodeError) as caught:
        jsontext.loads(text)
    assert reason in jsontext.reason(caught.value)


@pytest.mark.parametrize("raw", [b'"\xff"', b'"\xed\xa0\x80"', b'"\xc0\xaf"'])
def test_bytes_that_are_not_utf8_are_refused(raw):
    """Encoded surrogates (ED A0 80) are not UTF-8 either."""
    with pytest.raises(UnicodeDecodeError) as caught:
        jsontext.loads(raw)
    assert jsontext.reason(caught.value).startswith("not UTF-8")


def test_big_integers_and_escaped_surrogates_are_read():
    assert jsontext.loads('[123456789012345678901234567890, "\\ud800", 1e308]') == [
        123456789012345678901234567890, "\ud800", 1e308]


def deeper_than_python_reads(depth: int = sys.getrecursionlimit() + 100) -> str:
    return "[" * depth + "]" * depth


def test_stored_text_too_deep_for_the_json_module_is_read_with_its_deep_members_as_text():
    deep = deeper_than_python_reads()
    text = f'{{"id": "r1", "json": {deep}, "items": [1, {deep}], "retry": {{"max_attempts": 3}}}}'
    value = jsontext.loads_stored(text)
    assert value["id"] == "r1" and value["retry"] == {"max_attempts": 3}
    assert isinstance(value["json"], orjson.Fragment) and orjson.dumps(value["json"]).decode() == deep
    assert orjson.dumps(value["items"]).decode() == f"[1, {deep}]"
    assert jsontext.loads_stored('{"a": [1]}') == {"a": [1]}


def test_the_iterative_writer_writes_any_depth_as_the_json_module_does():
    value: list = []
    inner = value
    for _ in range(sys.getrecursionlimit() * 2):
        inner.append([])
        inner = inner[-1]
    inner += [{"k": [1, 2.5, None, True, "caf\u00e9 \ud800"], "e": {}}, 2**70]
    text = jsontext.dumps_iteratively({"v": value, "f": jsontext.embedded('{"x": 1}')}, default=str)
    assert text.endswith('[{"k":[1,2.5,null,true,"caf\\u00e9 \\ud800"],"e":{}},1180591620717411303424]'
                         + "]" * (sys.getrecursionlimit() * 2) + ',"f":{"x": 1}}')
    small = {"a": [1, {"b": None}], "c": "d"}
    assert jsontext.dumps_iteratively(small, default=str) == json.dumps(small, separators=(",", ":"))
