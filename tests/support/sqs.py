"""The SQS endpoint under test: a real gunicorn server on the test Redis and boto3 clients of it."""
from __future__ import annotations

import boto3
from botocore.config import Config

from app.embedded import free_port
from app.processes import ServiceProcesses, service_env

REGION = "eu-west-1"
KEY_ID, SECRET = "AKIDHTQTEST", "test-secret/with+chars"


def start_web(redis_server, tmp_path_factory, **env: str) -> tuple[ServiceProcesses, str]:
    """gunicorn as the Procfile runs it, with `env`; (its processes, its base URL)."""
    procs = ServiceProcesses(service_env(redis_server.url, LOG_LEVEL="WARNING", **env), tmp_path_factory.mktemp("web"))
    return procs, procs.start_web(free_port())


def client(base: str, key_id: str = KEY_ID, secret: str = SECRET, region: str = REGION, **config):
    """A boto3 SQS client of the server at `base`, without retries (a test sees every answer)."""
    return boto3.client("sqs", endpoint_url=base + "/sqs", region_name=region, aws_access_key_id=key_id,
                        aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config))
