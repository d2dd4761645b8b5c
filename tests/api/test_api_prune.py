"""``POST /api/v1/prune``: the retention loop over HTTP (200 with counts, 422 on bad input)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from _apitest import AUTH, TestClient
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import TriggerKind

NOW = datetime(2024, 1, 1, 0, 2, 30, tzinfo=timezone.utc)  # the API tests' clock


def seed(settings: Settings) -> None:
    store = open_store(settings.api_db_url)
    try:
        for run_id, age in (("older", 40), ("old", 10), ("newest", 0)):
            at = NOW - timedelta(days=age)
            store.create_run(
                run_id=run_id, pipeline="quick", trigger=TriggerKind.API, params={}, now=at
            )
            store.finish(run_id, status=Status.SUCCESS, now=at)
    finally:
        store.close()


def stored(settings: Settings) -> set[str]:
    store = open_store(settings.api_db_url)
    try:
        return {r.run_id for r in store.list_runs(limit=10)}
    finally:
        store.close()


def test_prune_dry_run_then_default_then_older_than(
    client: TestClient, api_settings: Settings
) -> None:
    seed(api_settings)
    dry = client.post("/api/v1/prune", json={"dry_run": True}, headers=AUTH)
    assert dry.status_code == 200
    assert dry.json()["runs"] == 1
    assert dry.json()["log_files"] is None
    assert stored(api_settings) == {"older", "old", "newest"}

    done = client.post("/api/v1/prune", headers=AUTH)  # no body: the setting (30 days)
    assert done.status_code == 200
    body = done.json()
    assert (body["runs"], body["batches"], body["dry_run"]) == (1, 1, False)
    assert datetime.fromisoformat(body["before"]) == NOW - timedelta(days=30)
    assert stored(api_settings) == {"old", "newest"}

    done = client.post("/api/v1/prune", json={"older_than_days": 0.5}, headers=AUTH)
    assert done.json()["runs"] == 1
    assert stored(api_settings) == {"newest"}


@pytest.mark.parametrize(
    "body",
    [
        {"older_than_days": 0},
        {"older_than_days": -1},
        {"older_than_days": "soon"},
        {"older_than_days": 36501},
        {"older_than_days": 1, "keep": "all"},
        {"dry_run": "maybe"},
    ],
)
def test_bad_bodies_are_422_and_delete_nothing(
    client: TestClient, api_settings: Settings, body: dict[str, Any]
) -> None:
    seed(api_settings)
    response = client.post("/api/v1/prune", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert stored(api_settings) == {"older", "old", "newest"}


def test_without_an_age_while_retention_is_off_is_422(
    make_client: Callable[..., TestClient], api_settings: Settings
) -> None:
    client = make_client(api_settings.evolve(run_retention_days=None))
    seed(api_settings)
    response = client.post("/api/v1/prune", json={}, headers=AUTH)
    assert response.status_code == 422
    assert "older_than_days" in response.json()["error"]["message"]
    assert stored(api_settings) == {"older", "old", "newest"}


def test_prune_needs_the_token(client: TestClient) -> None:
    assert client.post("/api/v1/prune", json={}).status_code == 401
