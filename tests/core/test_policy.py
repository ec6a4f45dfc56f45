"""A request's own delivery rules (app/core/policy.py): success predicates and retry.on."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.outcome import FAILED, NETWORK, RETRY, SUCCEEDED, TIMEOUT, Outcome
from app.core.policy import json_equal, judge, value_at


def answer(code: int, body: object = b"", verdict: str | None = None) -> Outcome:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    default = SUCCEEDED if 200 <= code < 300 else RETRY if code >= 500 or code in (408, 425, 429) else FAILED
    return Outcome(verdict or default, status_code=code, body=raw, retry_after_s=3.0 if default != SUCCEEDED else None)


def spec(**rules) -> dict:
    return {"retry": rules.pop("retry", {}), **rules}


@pytest.mark.parametrize("code, verdict", [(200, SUCCEEDED), (204, SUCCEEDED), (301, FAILED), (404, FAILED),
                                           (429, RETRY), (503, RETRY)])
def test_without_rules_the_delivery_verdict_stands(code, verdict):
    assert judge(spec(), answer(code)).verdict == verdict


def test_success_codes_and_classes_replace_2xx():
    rules = spec(success={"status": [200, "3xx"]})
    assert [judge(rules, answer(code)).verdict for code in (200, 201, 302, 404, 500)] == [
        SUCCEEDED, FAILED, SUCCEEDED, FAILED, RETRY]
    assert judge(rules, answer(302)).retry_after_s is None


def test_a_json_predicate_turns_a_200_that_says_no_into_a_retry():
    rules = spec(success={"json": {"path": "result.items.0.ok", "equals": True}})
    assert judge(rules, answer(200, {"result": {"items": [{"ok": True}]}})).verdict == SUCCEEDED
    for body in ({"result": {"items": [{"ok": False}]}}, {"result": {"items": [{"ok": 1}]}}, {"result": {}},
                 b"not json", [1, 2]):
        judged = judge(rules, answer(200, body))
        assert judged.verdict == RETRY and "result.items.0.ok" in judged.error
    assert judge(rules, answer(500, {"result": {"items": [{"ok": True}]}})).verdict == RETRY  # not a success code


def test_retry_on_names_what_is_retried_and_the_rest_fails():
    rules = spec(retry={"on": [404, "network"]})
    assert judge(rules, answer(404)).verdict == RETRY and judge(rules, answer(404)).retry_after_s == 3.0
    assert judge(rules, answer(503)).verdict == FAILED
    assert judge(rules, Outcome(RETRY, error="connection error", failure=NETWORK)).verdict == RETRY
    assert judge(rules, Outcome(RETRY, error="timeout after 5s", failure=TIMEOUT)).verdict == FAILED


def test_failures_of_htq_itself_and_refused_destinations_keep_their_verdict():
    rules = spec(retry={"on": [500]})
    assert judge(rules, Outcome(RETRY, error="worker lost during the attempt")).verdict == RETRY
    assert judge(rules, Outcome(FAILED, error="destination refused: private address")).verdict == FAILED


def test_paths_and_json_equality():
    document = {"a": {"b": [10, {"c": None}]}, "0": "zero"}
    assert value_at(document, "a.b.1.c") == (True, None)
    assert value_at(document, "0") == (True, "zero") and value_at(document, "a.b.2") == (False, None)
    assert json_equal(1, 1.0) and not json_equal(True, 1) and not json_equal(0, False)
    assert json_equal({"x": [1, "y"]}, {"x": [1.0, "y"]}) and not json_equal({"x": 1}, {"x": 1, "y": 2})


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                       max_size=3), max_leaves=8)


@given(json_values)
def test_a_value_equals_itself_after_a_round_trip_through_json(value):
    assert json_equal(json.loads(json.dumps(value)), value)
