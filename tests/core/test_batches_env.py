"""WEBHOOK_* configuration of the `log` batch: parsing, bad values refused at start-up."""
from __future__ import annotations

import subprocess
import sys

import pytest

from app import create_app
from app.processes import ROOT, service_env
from config.settings import ConfigError, load_settings


@pytest.mark.parametrize("raw, seconds", [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0),
                                          ("1.5s", 1.5), ("15", 15.0), ("2.5", 2.5), (" 3s ", 3.0), ("0", 0.0)])
def test_batch_interval_takes_go_durations_or_seconds(raw, seconds):
    assert load_settings({"WEBHOOK_BATCH_INTERVAL": raw}).webhook_batch_interval_s == seconds


def test_webhook_settings_and_their_defaults():
    settings = load_settings({"WEBHOOK_POST_ENDPOINT": "https://hooks.example.com/in?x=1", "WEBHOOK_BATCH_SIZE": "50"})
    assert (settings.webhook_post_endpoint, settings.webhook_batch_size, settings.webhook_batch_interval_s) == (
        "https://hooks.example.com/in?x=1", 50, 10.0)
    assert load_settings({}).webhook_post_endpoint == ""


@pytest.mark.parametrize("name, raw, message", [
    ("WEBHOOK_BATCH_INTERVAL", "10 seconds", "WEBHOOK_BATCH_INTERVAL: not a duration"),
    ("WEBHOOK_BATCH_INTERVAL", "10x", "WEBHOOK_BATCH_INTERVAL: not a duration"),
    ("WEBHOOK_BATCH_INTERVAL", "s", "WEBHOOK_BATCH_INTERVAL: not a duration"),
    ("WEBHOOK_BATCH_INTERVAL", "-5s", "WEBHOOK_BATCH_INTERVAL: not a duration"),
    ("WEBHOOK_BATCH_INTERVAL", "-5", "WEBHOOK_BATCH_INTERVAL: duration must not be negative"),
    ("WEBHOOK_BATCH_INTERVAL", "25h", "WEBHOOK_BATCH_INTERVAL must be at most 86400 seconds"),
    ("WEBHOOK_BATCH_SIZE", "ten", "WEBHOOK_BATCH_SIZE must be an integer"),
    ("WEBHOOK_BATCH_SIZE", "0", "WEBHOOK_BATCH_SIZE must be between 1 and 10000"),
    ("WEBHOOK_BATCH_SIZE", "10001", "WEBHOOK_BATCH_SIZE must be between 1 and 10000"),
    ("WEBHOOK_POST_ENDPOINT", "localhost:8080/hook", "WEBHOOK_POST_ENDPOINT must be an absolute http or https URL"),
    ("WEBHOOK_POST_ENDPOINT", "ftp://example.com/", "WEBHOOK_POST_ENDPOINT must be an absolute http or https URL"),
    ("WEBHOOK_POST_ENDPOINT", "http://example.com:99999/", "WEBHOOK_POST_ENDPOINT is not a valid URL"),
])
def test_bad_webhook_values_raise_a_config_error_naming_the_variable(name, raw, message):
    with pytest.raises(ConfigError) as error:
        load_settings({name: raw})
    assert str(error.value).startswith(message)


def test_create_app_refuses_a_bad_interval(monkeypatch):
    monkeypatch.setenv("WEBHOOK_BATCH_INTERVAL", "soon")
    with pytest.raises(ConfigError):
        create_app()


@pytest.mark.parametrize("command", [["-c", "import workers"],
                                     ["-m", "celery", "-A", "workers", "worker", "-P", "solo"]])
def test_the_worker_does_not_start_with_a_bad_interval(redis_url, command):
    env = service_env(redis_url, WEBHOOK_POST_ENDPOINT="http://127.0.0.1:9/hook", WEBHOOK_BATCH_INTERVAL="1 minute")
    result = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "WEBHOOK_BATCH_INTERVAL: not a duration: '1 minute'" in result.stderr
