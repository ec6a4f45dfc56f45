"""Reading GET /metrics as Prometheus does (its own parser), into samples a test can compare."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families


def scrape(client) -> dict[str, dict]:
    """{family: {(sample name, sorted labels): value}} of one scrape through a Flask test client."""
    response = client.get("/metrics")
    assert response.status_code == 200
    content_type = response.headers["Content-Type"]
    assert content_type == CONTENT_TYPE_LATEST and content_type.count("charset") == 1
    return {family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
            for family in text_string_to_metric_families(response.get_data(as_text=True))}


def attempts(metrics: dict[str, dict]) -> dict[str, float]:
    """htq_attempts_total by outcome."""
    return {dict(labels)["outcome"]: value for (_, labels), value in metrics["htq_attempts"].items()}


def sample(metrics: dict[str, dict], name: str, **labels: str) -> float:
    """One sample's value: `name` is the sample's (htq_request_lateness_seconds_count ...)."""
    family = max((f for f in metrics if name == f or name.startswith(f + "_")), key=len)
    return metrics[family][(name, tuple(sorted(labels.items())))]
