"""REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD, HTQ_REDIS_MIN_REPLICAS and
HTQ_REDIS_WAIT_TIMEOUT: parsed once at start, a bad value refused with the variable named, and
the Celery broker put behind the same Sentinels unless CELERY_BROKER_URL says otherwise."""
from __future__ import annotations

import pytest

from config.settings import ConfigError, load_settings

SENTINELS = {"REDIS_SENTINELS": "10.0.0.1:26379, sentinel-b:26380", "REDIS_SENTINEL_MASTER": "mymaster"}


def test_without_sentinels_the_broker_is_redis_url_and_nothing_waits_for_replicas():
    settings = load_settings({"REDIS_URL": "redis://r:6379/2"})
    config = settings.celery_config()
    assert settings.redis_sentinels == () and settings.redis_min_replicas == 0
    assert settings.redis_wait_timeout_ms == 1000
    assert config["broker_url"] == "redis://r:6379/2" and "master_name" not in config["broker_transport_options"]


def test_sentinels_are_parsed_and_the_broker_uses_kombus_sentinel_transport():
    settings = load_settings({**SENTINELS, "REDIS_URL": "redis://:secret@ignored:1/3",
                              "REDIS_SENTINEL_PASSWORD": "s3nt"})
    assert settings.redis_sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380))
    assert settings.redis_sentinel_master == "mymaster" and settings.redis_sentinel_password == "s3nt"
    config = settings.celery_config()
    assert config["broker_url"] == "sentinel://:secret@10.0.0.1:26379/3;sentinel://:secret@sentinel-b:26380/3"
    options = config["broker_transport_options"]
    assert options["master_name"] == "mymaster" and options["sentinel_kwargs"]["password"] == "s3nt"
    assert options["visibility_timeout"] == 900


def test_an_explicit_broker_url_is_kept_behind_sentinels():
    settings = load_settings({**SENTINELS, "CELERY_BROKER_URL": "redis://broker:6379/0"})
    config = settings.celery_config()
    assert config["broker_url"] == "redis://broker:6379/0" and "master_name" not in config["broker_transport_options"]


def test_min_replicas_and_wait_timeout():
    settings = load_settings({"HTQ_REDIS_MIN_REPLICAS": "2", "HTQ_REDIS_WAIT_TIMEOUT": "250ms"})
    assert settings.redis_min_replicas == 2 and settings.redis_wait_timeout_ms == 250
    assert load_settings({"HTQ_REDIS_WAIT_TIMEOUT": "1.5"}).redis_wait_timeout_ms == 1500


@pytest.mark.parametrize(("env", "named"), [
    ({"REDIS_SENTINELS": "host-without-port"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "h:notaport", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "h:70000", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "h:26379"}, "REDIS_SENTINEL_MASTER"),
    ({"REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
    ({**SENTINELS, "REDIS_URL": "unix:///tmp/redis.sock"}, "REDIS_URL"),
    ({"HTQ_REDIS_MIN_REPLICAS": "-1"}, "HTQ_REDIS_MIN_REPLICAS"),
    ({"HTQ_REDIS_MIN_REPLICAS": "one"}, "HTQ_REDIS_MIN_REPLICAS"),
    ({"HTQ_REDIS_WAIT_TIMEOUT": "0"}, "HTQ_REDIS_WAIT_TIMEOUT"),
    ({"HTQ_REDIS_WAIT_TIMEOUT": "10s"}, "HTQ_REDIS_WAIT_TIMEOUT"),
    ({"HTQ_REDIS_WAIT_TIMEOUT": "soon"}, "HTQ_REDIS_WAIT_TIMEOUT"),
])
def test_bad_values_are_refused_at_start_naming_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        load_settings(env)
