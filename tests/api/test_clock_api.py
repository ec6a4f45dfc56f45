"""GET /v1/clock and POST /v1/clock/advance: on the real clock, and the input rules."""
from __future__ import annotations

from dataclasses import replace

import pytest

from app import create_app
from app.core import clock
from app.core.publish import Publisher
from app.storage import clock as store_clock


@pytest.fixture(autouse=True)
def real_clock_after():
    yield
    clock.use_real()


def virtual_client(settings, sender):
    return create_app(replace(settings, clock="virtual"), publisher=Publisher(sender)).test_client()


def test_the_real_clock_reads_and_refuses_to_move(settings, sender):
    client = create_app(settings, publisher=Publisher(sender)).test_client()
    state = client.get("/v1/clock").get_json()
    assert state["virtual"] is False and abs(clock.from_rfc3339(state["now"]) - clock.real_ms()) < 5000
    refused = client.post("/v1/clock/advance", json={"seconds": 60})
    assert refused.status_code == 409 and "virtual" in refused.get_json()["message"]


@pytest.mark.parametrize("body", [{}, {"seconds": 0}, {"seconds": -5}, {"seconds": "60"}, {"seconds": 1e12},
                                  {"seconds": 60, "extra": 1}])
def test_an_advance_that_is_not_a_positive_number_of_seconds_is_422(settings, sender, store, body):
    client = virtual_client(settings, sender)
    answer = client.post("/v1/clock/advance", json=body)
    assert answer.status_code == 422 and answer.get_json()["errors"]
    assert store_clock.offset(store) == 0


def test_an_advance_moves_every_process_clock_forward_and_never_back(settings, sender, store):
    client = virtual_client(settings, sender)
    start = clock.from_rfc3339(client.get("/v1/clock").get_json()["now"])
    moved = clock.from_rfc3339(client.post("/v1/clock/advance", json={"seconds": 86400}).get_json()["now"])
    assert moved - start >= 86400 * 1000 and store_clock.offset(store) == 86400 * 1000
    assert clock.to_real_ms(moved) <= clock.real_ms()  # an eta at that time is due now
    store.redis.set("htq:clock:offset", 0)  # whatever the store says, this process does not go back
    clock.use_virtual(lambda: store_clock.offset(store))
    clock.saw_offset(86400 * 1000)
    assert clock.now_ms() >= moved
