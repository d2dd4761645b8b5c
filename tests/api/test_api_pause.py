"""Pause and unpause through the API: kept in the run store, shown with each pipeline."""

from __future__ import annotations

from _apitest import AUTH, TestClient
from ddeutil.workflow.api.models import PauseResponse
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store

PAUSED_AT = "2024-01-01T00:02:30Z"


def test_pause_then_unpause_a_pipeline(client: TestClient, api_settings: Settings) -> None:
    response = client.post("/api/v1/pipelines/quick/pause", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    PauseResponse.model_validate(body)
    assert body == {"pipeline": "quick", "paused": True, "paused_at": PAUSED_AT, "changed": True}
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
    assert body == {"pipeline": "quick", "paused": False, "paused_at": PAUSED_AT, "changed": True}
    body = client.post("/api/v1/pipelines/quick/unpause", headers=AUTH).json()
    assert body == {"pipeline": "quick", "paused": False, "paused_at": None, "changed": False}
    assert client.get("/api/v1/pipelines/quick", headers=AUTH).json()["paused"] is False


def test_pausing_an_unknown_pipeline_is_404(client: TestClient) -> None:
    for verb in ("pause", "unpause"):
        response = client.post(f"/api/v1/pipelines/nope/{verb}", headers=AUTH)
        assert response.status_code == 404
        assert "no pipeline named 'nope'" in response.json()["error"]["message"]
    assert client.post("/api/v1/pipelines/a..b/pause", headers=AUTH).status_code in (404, 422)


def test_pausing_needs_the_token(client: TestClient) -> None:
    assert client.post("/api/v1/pipelines/quick/pause").status_code == 401
