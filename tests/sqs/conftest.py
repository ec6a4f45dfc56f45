"""The SQS endpoint under test: a real gunicorn web server (as the Procfile runs it) on the test
Redis, shared by a module's tests (each test starts on an emptied Redis), and boto3 clients."""
from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from app.embedded import free_port
from app.processes import ServiceProcesses, service_env

REGION = "eu-west-1"
KEY_ID, SECRET = "AKIDHTQTEST", "test-secret/with+chars"


def start_web(redis_server, tmp_path_factory, **env: str):
    procs = ServiceProcesses(service_env(redis_server.url, LOG_LEVEL="WARNING", **env), tmp_path_factory.mktemp("web"))
    return procs, procs.start_web(free_port())


@pytest.fixture(scope="module")
def web_url(redis_server, tmp_path_factory):
    """gunicorn without HTQ_SQS_CREDENTIALS (signatures unchecked)."""
    procs, base = start_web(redis_server, tmp_path_factory)
    yield base
    procs.stop_all()


def client(base: str, key_id: str = KEY_ID, secret: str = SECRET, region: str = REGION, **config):
    return boto3.client("sqs", endpoint_url=base + "/sqs", region_name=region, aws_access_key_id=key_id,
                        aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config))


@pytest.fixture
def sqs(web_url, redis_url):
    """A boto3 SQS client of the module's server, on an emptied Redis (redis_url flushes it)."""
    return client(web_url)
