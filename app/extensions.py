"""Extensions and the per-process services the views call (store, publisher, domain services)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app
from flask_smorest import Api

from app import broker
from app.api.openapi import register_converters
from app.core import clock
from app.core.batches import BatchService
from app.core.gate_status import GateStatus
from app.core.publish import Publisher
from app.core.queues import QueueService
from app.core.requests import RequestService
from app.core.schedules import ScheduleService
from app.core.sqs.service import SqsService
from app.core.tokens import TokenService
from app.core.virtual_clock import VirtualClock, use_clock
from app.core.workers import Workers
from app.storage.client import Store, connect_to
from app.storage.notify import Notifier
from config import Settings

api = Api()
register_converters(api)


@dataclass
class Services:
    settings: Settings
    store: Store
    publisher: Publisher
    notifier: Notifier
    requests: RequestService
    queues: QueueService
    batches: BatchService
    workers: Workers
    gates: GateStatus
    clock: VirtualClock
    schedules: ScheduleService
    sqs: SqsService
    tokens: TokenService


def init_services(app: Flask, settings: Settings, publisher: Publisher | None = None,
                  clock_ms: Callable[[], int] | None = None) -> None:
    """Connections are opened lazily, so building the app never needs Redis to be up. `publisher`
    and `clock_ms` replace the broker and the clock (tests pass a recorder and a fake clock);
    otherwise the process's clock follows HTQ_CLOCK."""
    store = Store.from_settings(settings)
    publisher = publisher or broker.publisher(settings)
    notifier = Notifier(settings.redis_url, connector=lambda **options: connect_to(settings, **options))
    use_clock(settings, store)
    timetable_ms = clock_ms or clock.now_ms
    queues = QueueService(store, settings, notifier, clock_ms=timetable_ms)
    requests = RequestService(store, publisher, settings, notifier, clock_ms=timetable_ms)
    schedules = ScheduleService(store, publisher, settings, requests, clock_ms=timetable_ms)
    app.extensions["htq"] = Services(
        settings=settings, store=store, publisher=publisher, notifier=notifier, requests=requests,
        queues=queues,
        batches=BatchService(store, publisher, settings, clock_ms=timetable_ms),
        workers=Workers(store, clock_ms or clock.real_ms),
        gates=GateStatus(store, timetable_ms),
        schedules=schedules,
        tokens=TokenService(store, settings.api_tokens, clock_ms=timetable_ms),
        clock=VirtualClock(store, publisher, settings, queues, schedules),
        sqs=SqsService(queues))



def services() -> Services:
    return current_app.extensions["htq"]
