"""``POST /api/v1/pipelines/{name}/backfill``: 200 dry run, 202, 404, 409, 422, stop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _apitest import AUTH, GATE, Gate, TestClient
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import RunFilter, RunStore, TriggerKind

RANGE = {"start": "2023-12-31T23:00:00Z", "end": "2024-01-01T00:00:00Z"}  # 12 releases of `quick`
GATED = f"""
gated_hourly:
  type: Pipeline
  on:
    - cron: "0 * * * *"
      timezone: UTC
  jobs:
    main:
      stages:
        - name: wait for the gate or a cancel
          run: |
            import {GATE}
            {GATE}.entered.set()
            if cancel_token.wait(30):
                raise RuntimeError(cancel_token.reason)
"""


@pytest.fixture
def store(api_settings: Settings) -> Iterator[RunStore]:
    s = open_store(api_settings.api_db_url)
    yield s
    s.close()


def _post(client: TestClient, name: str, **body: Any) -> Any:
    return client.post(f"/api/v1/pipelines/{name}/backfill", json=body, headers=AUTH)


def _wait_runs(store: RunStore, name: str, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    ended = RunFilter(
        pipeline=name,
        trigger=TriggerKind.BACKFILL,
        status=(Status.SUCCESS, Status.FAILED, Status.CANCELLED),
    )
    while store.count_runs(ended) < count:
        assert time.monotonic() < deadline, f"{count} backfill runs of {name} did not end"
        time.sleep(0.02)


def test_dry_run_lists_the_releases_and_claims_nothing(client: TestClient, store: RunStore) -> None:
    response = _post(client, "quick", **RANGE, dry_run=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["would_run"], body["claimed"], body["truncated"]) == (
        12,
        12,
        0,
        False,
    )
    assert body["releases"][0]["release"] == "2023-12-31T23:00:00Z"
    assert store.count_runs(RunFilter(pipeline="quick")) == 0


def test_a_backfill_is_accepted_runs_every_release_and_continues(
    client: TestClient, store: RunStore
) -> None:
    response = _post(client, "quick", **RANGE, parallel=3)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["total"], body["claimed"], body["to_run"], body["parallel"]) == (12, 0, 12, 3)
    assert body["follow"] == "/api/v1/runs?pipeline=quick&trigger=backfill"
    assert response.headers["Location"] == body["follow"]
    _wait_runs(store, "quick", 12)
    listed = client.get(body["follow"], headers=AUTH).json()
    assert listed["total"] == 12
    assert {item["status"] for item in listed["items"]} == {"SUCCESS"}
    deadline = time.monotonic() + 10
    while client.app.state.service.backfills():  # type: ignore[attr-defined]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    again = _post(client, "quick", **RANGE)
    assert again.status_code == 202, again.text
    assert (again.json()["claimed"], again.json()["to_run"]) == (12, 0)


@pytest.mark.parametrize(
    ("name", "body", "status", "text"),
    [
        ("nope", RANGE, 404, "no pipeline named 'nope'"),
        ("gated", RANGE, 422, "has no schedules"),
        ("quick", {"start": RANGE["end"], "end": RANGE["start"]}, 422, "not after start"),
        ("quick", {"start": "2024-01-01", "end": "2024-06-01"}, 422, "in the future"),
        ("quick", {"start": "last week", "end": "2024-01-01"}, 422, "ISO 8601"),
        ("quick", {**RANGE, "parallel": 0}, 422, "between 1 and 256"),
        ("quick", {**RANGE, "parallel": 257}, 422, "between 1 and 256"),
        ("quick", {"start": "2023-12-01", "end": "2024-01-01"}, 422, "8928 releases"),
        ("quick", {"start": "2023-12-31"}, 422, ""),
    ],
)
def test_bad_input_answers_404_or_422(
    client: TestClient, name: str, body: dict[str, Any], status: int, text: str
) -> None:
    response = _post(client, name, **body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert text in error["message"] or any(text in d["message"] for d in error["details"])


def test_a_second_backfill_while_one_runs_answers_409_and_stop_cancels_it(
    write_conf: Callable[[str, str], Path],
    make_settings: Callable[..., Settings],
    make_client: Callable[..., TestClient],
    gate: Gate,
) -> None:
    write_conf("gated.yml", GATED)
    settings = make_settings(
        WORKFLOW_API_TOKEN="test-api-token-0123456789", WORKFLOW_APP_STOP_TIMEOUT="0.1"
    )
    client = make_client(settings)
    first = _post(client, "gated_hourly", **RANGE)
    assert first.status_code == 202, first.text
    assert gate.entered.wait(20)
    second = _post(client, "gated_hourly", **RANGE)
    assert second.status_code == 409, second.text
    assert second.json()["error"]["code"] == "backfill_running"
    client.__exit__(None, None, None)  # the API stops: no more claims, the run in flight cancelled
    store = open_store(settings.api_db_url)
    try:
        runs = store.list_runs(RunFilter(pipeline="gated_hourly"))
    finally:
        store.close()
    assert [r.status for r in runs] == [Status.CANCELLED]
