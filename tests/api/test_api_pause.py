"""Pause and unpause through the API: kept in the run store, shown with each pipeline."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from _apitest import AUTH, TestClient
from ddeutil.workflow.api.models import PauseResponse
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.scheduling.backfill import load_entry
from ddeutil.workflow.scheduling.tick_report import PAUSED_REASON
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import Claim, ReleaseKey, open_store
from ddeutil.workflow.store.fleet import ClaimState, Decision, RoundClaim, RoundView

PAUSED_AT = "2024-01-01T00:02:30Z"
T0 = datetime(2024, 1, 1, 0, 0, tzinfo=timezone.utc)


def test_pause_then_unpause_a_pipeline(client: TestClient, api_settings: Settings) -> None:
    response = client.post("/api/v1/pipelines/quick/pause", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    PauseResponse.model_validate(body)
    assert body == {
        "pipeline": "quick",
        "paused": True,
        "paused_at": PAUSED_AT,
        "changed": True,
        "catchup": None,
        "follow": None,
    }
    again = client.post("/api/v1/pipelines/quick/pause", headers=AUTH).json()
    assert again["changed"] is False
    store = open_store(api_settings.api_db_url)
    try:
        assert list(store.paused()) == ["quick"]
    finally:
        store.close()
    shown = client.get("/api/v1/pipelines/quick", headers=AUTH).json()
    assert (shown["paused"], shown["paused_at"]) == (True, PAUSED_AT)
    listed = {p["name"]: p for p in client.get("/api/v1/pipelines", headers=AUTH).json()["items"]}
    assert listed["quick"]["paused"] is True
    assert all(not p["paused"] for name, p in listed.items() if name != "quick")
    body = client.post("/api/v1/pipelines/quick/unpause", headers=AUTH).json()
    assert (body["paused"], body["paused_at"], body["changed"]) == (False, PAUSED_AT, True)
    body = client.post("/api/v1/pipelines/quick/unpause", headers=AUTH).json()
    assert (body["paused"], body["paused_at"], body["changed"]) == (False, None, False)
    assert client.get("/api/v1/pipelines/quick", headers=AUTH).json()["paused"] is False


def test_pausing_an_unknown_pipeline_is_404(client: TestClient) -> None:
    for verb in ("pause", "unpause"):
        response = client.post(f"/api/v1/pipelines/nope/{verb}", headers=AUTH)
        assert response.status_code == 404
        assert "no pipeline named 'nope'" in response.json()["error"]["message"]
    assert client.post("/api/v1/pipelines/a..b/pause", headers=AUTH).status_code in (404, 422)


def test_pausing_needs_the_token(client: TestClient) -> None:
    assert client.post("/api/v1/pipelines/quick/pause").status_code == 401


def _skipped_by_a_pause(settings: Settings, minutes: list[int]) -> list[ReleaseKey]:
    """Record releases of ``quick`` (every 5 minutes) SKIPPED as a paused daemon would."""
    entry = load_entry("quick", Loader.from_settings(settings), settings)
    keys = [ReleaseKey("quick", entry.schedules[0].key, T0 - timedelta(minutes=m)) for m in minutes]
    store = open_store(settings.api_db_url)
    try:
        assert store.join("daemon", now=T0, host="h", pid=1)

        def decide(view: RoundView) -> Decision:
            return Decision(
                tuple(
                    RoundClaim(Claim(k, f"s{i}", {}, k.at), ClaimState.SKIPPED, PAUSED_REASON)
                    for i, k in enumerate(keys)
                )
            )

        start = T0 - timedelta(hours=1)
        store.claim_round(["quick"], owner="daemon", at=T0, init=start, now=T0, decide=decide)
    finally:
        store.close()
    return keys


def test_unpause_with_catchup_runs_what_the_pause_skipped(
    client: TestClient, api_settings: Settings
) -> None:
    keys = _skipped_by_a_pause(api_settings, [10, 5])
    assert client.post("/api/v1/pipelines/quick/pause", headers=AUTH).status_code == 200
    response = client.post(
        "/api/v1/pipelines/quick/unpause",
        json={"catchup": True, "since": "2023-12-31T23:00:00Z"},
        headers=AUTH,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["paused"], body["changed"], body["catchup"]) == (False, True, 2)
    assert response.headers["Location"] == "/api/v1/runs?pipeline=quick&trigger=backfill"
    service = client.app.state.service  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while service.backfills():
        assert time.monotonic() < deadline, "the catch-up did not end"
        time.sleep(0.02)
    runs = client.get(
        "/api/v1/runs", params={"pipeline": "quick", "trigger": "backfill"}, headers=AUTH
    ).json()["items"]
    assert sorted((r["release"]["at"], r["status"]) for r in runs) == [
        (k.at.isoformat().replace("+00:00", "Z"), "SUCCESS") for k in keys
    ]


def test_a_bad_catchup_is_422_and_keeps_the_pause(client: TestClient) -> None:
    assert client.post("/api/v1/pipelines/quick/pause", headers=AUTH).status_code == 200
    for body in ({"catchup": True, "since": "soon"}, {"catchup": True, "parallel": 0}):
        response = client.post("/api/v1/pipelines/quick/unpause", json=body, headers=AUTH)
        assert response.status_code == 422, body
    shown = client.get("/api/v1/pipelines/quick", headers=AUTH).json()
    assert shown["paused"] is True
