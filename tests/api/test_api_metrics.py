"""``GET /metrics``: open, the Prometheus text format, the API process's own runs."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from _apitest import Gate, TestClient, trigger, wait_terminal
from ddeutil.workflow.prometheus import CONTENT_TYPE
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")  # no token: open like /health
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_until(client: TestClient, name: str, want: float, **labels: Any) -> Samples:
    """Scrape until a sample reaches ``want`` (a run's end event follows its store write)."""
    deadline = time.monotonic() + 10.0
    while True:
        samples = scrape(client)
        if value(samples, name, **labels) == want or time.monotonic() > deadline:
            assert value(samples, name, **labels) == want, (name, labels)
            return samples
        time.sleep(0.02)


def test_metrics_need_no_token_and_count_the_api_runs(client: TestClient) -> None:
    before = scrape(client)
    assert value(before, "workflow_runs_finished_total", status="SUCCESS", trigger="api") == 0
    assert math.isnan(value(before, "workflow_daemon_heartbeat_age_seconds"))  # no daemon
    run_id = trigger(client, "quick").json()["run_id"]
    assert wait_terminal(client, run_id)["status"] == "SUCCESS"
    samples = scrape_until(
        client, "workflow_runs_finished_total", 1, status="SUCCESS", trigger="api"
    )
    assert value(samples, "workflow_runs_started_total") == 1
    assert value(samples, "workflow_stage_duration_seconds_count") == 2  # two stages
    assert value(samples, "workflow_pipeline_run_duration_seconds_count", pipeline="quick") == 1
    assert value(samples, "workflow_runs_in_flight") == 0
    assert value(samples, "workflow_release_start_lag_seconds_count") == 0  # no release
    # A wrong token changes nothing: the route is open.
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 200


def test_runs_in_flight_are_counted_at_scrape_time(client: TestClient, gate: Gate) -> None:
    run_id = trigger(client, "gated").json()["run_id"]
    assert gate.entered.wait(10)
    assert value(scrape(client), "workflow_runs_in_flight") == 1
    gate.release.set()
    assert wait_terminal(client, run_id)["status"] == "SUCCESS"
    scrape_until(client, "workflow_runs_in_flight", 0)


def test_the_heartbeat_age_is_the_newest_daemon_heartbeat(
    client: TestClient, api_settings: Settings
) -> None:
    store = open_store(api_settings.api_db_url)
    try:
        beat = datetime(2024, 1, 1, 0, 2, 0, tzinfo=timezone.utc)  # the clock reads 00:02:30
        assert store.join("vm1:42:aa", now=beat, host="vm1", pid=42)
    finally:
        store.close()
    assert value(scrape(client), "workflow_daemon_heartbeat_age_seconds") == 30.0
