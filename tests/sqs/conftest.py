"""Fixtures of the SQS tests: one gunicorn server per module (each test starts on an emptied
Redis) and a boto3 client of it; helpers live in tests/support/sqs.py."""
from __future__ import annotations

import pytest

from tests.support.sqs import client, start_web


@pytest.fixture(scope="module")
def web_url(redis_server, tmp_path_factory):
    """gunicorn without HTQ_SQS_CREDENTIALS (signatures unchecked)."""
    procs, base = start_web(redis_server, tmp_path_factory)
    yield base
    procs.stop_all()


@pytest.fixture
def sqs(web_url, redis_url):
    """A boto3 SQS client of the module's server, on an emptied Redis (redis_url flushes it)."""
    return client(web_url)
