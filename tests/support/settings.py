"""Settings for code under test: the test Redis, private targets allowed (targets run on 127.0.0.1)."""
from __future__ import annotations

from config.settings import Settings


def make_settings(redis_url: str, **overrides) -> Settings:
    values = {"redis_url": redis_url, "allow_private_targets": True, "concurrency": 4}
    values.update(overrides)
    return Settings(**values)
