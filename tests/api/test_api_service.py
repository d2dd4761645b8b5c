"""Service edges: an injected executor, a failing queue, run id collisions, the lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from _apitest import AUTH, TestClient, trigger, wait_terminal
from ddeutil.workflow.api import create_app, service
from ddeutil.workflow.dispatch.records import RunRequest
from ddeutil.workflow.dispatch.threads import ThreadExecutor
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.logs import run_log_path
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store


def test_an_injected_executor_runs_the_triggers(
    make_client: Callable[..., TestClient], api_settings: Settings
) -> None:
    store = open_store(api_settings.api_db_url)
    loader = Loader.from_settings(api_settings)
    pool = ThreadExecutor(
        store=store,
        settings=api_settings,
        templates=lambda name, version: loader.get(name),
        size=1,
        name="injected pool",
    )
    try:
        client = make_client(store=store, executor=pool)
        run_id = trigger(client, "quick", {"who": "pool"}).json()["run_id"]
        body = wait_terminal(client, run_id)
        assert body["status"] == "SUCCESS"
        assert client.app.state.service.wait(run_id, 5)  # type: ignore[attr-defined]
        assert client.get("/health").json()["runs_in_flight"] == 0
    finally:
        pool.shutdown(5)
        store.close()


class RefusingExecutor:
    """An executor whose queue is broken."""

    def start(self) -> None:
        pass

    def submit(self, request: RunRequest) -> None:
        raise RuntimeError("queue is full of bees")

    def drain_events(self) -> list[Any]:
        return []

    def wait_event(self, timeout: float) -> bool:
        return False

    def shutdown(self, timeout: float) -> None:
        pass


def test_a_run_that_cannot_be_queued_is_503_and_recorded_failed(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(executor=RefusingExecutor())
    response = trigger(client, "quick")
    assert response.status_code == 503
    error = response.json()["error"]
    assert "bees" in error["message"]
    run = client.get(f"/api/v1/runs/{error['run_id']}", headers=AUTH).json()
    assert run["status"] == "FAILED"
    assert "could not be queued" in run["error"]


def test_a_run_id_drawn_twice_is_drawn_again(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = iter(["20240101T000230-00000001", "20240101T000230-00000001", "20240101T000230-00000002"])
    monkeypatch.setattr(service, "new_run_id", lambda clock: next(ids))
    first = trigger(client, "quick").json()["run_id"]
    second = trigger(client, "quick").json()["run_id"]
    assert (first, second) == ("20240101T000230-00000001", "20240101T000230-00000002")
    assert wait_terminal(client, second)["status"] == "SUCCESS"


def test_routes_answer_503_until_the_app_is_started(api_settings: Settings) -> None:
    client = TestClient(create_app(api_settings))  # lifespan not entered
    response = client.get("/api/v1/runs", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"


def test_an_app_can_be_started_again_after_a_stop(api_settings: Settings, api_clock: Any) -> None:
    app = create_app(api_settings, clock=api_clock)
    with TestClient(app) as first:
        run_id = trigger(first, "quick").json()["run_id"]
        wait_terminal(first, run_id)
    with TestClient(app) as again:
        assert again.get(f"/api/v1/runs/{run_id}", headers=AUTH).json()["status"] == "SUCCESS"


def test_log_files_with_foreign_lines_are_served_as_text(
    client: TestClient, api_settings: Settings
) -> None:
    path = run_log_path(api_settings.log_path, "20240101T000000-0000f00d")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '{"time": "t", "level": "INFO", "message": "ok", "job": "j"}\n'
        "plain text line\n"
        "[1, 2]\n"
        '{"message": "s3cr3t-value-from-env leaked"}\n',
        encoding="utf-8",
    )
    body = client.get("/api/v1/runs/20240101T000000-0000f00d/logs", headers=AUTH).json()
    assert body["total"] == 4
    assert [line["message"] for line in body["lines"]] == [
        "ok",
        "plain text line",
        "[1, 2]",
        "*** leaked",
    ]
    assert body["lines"][0]["job"] == "j"
    assert body["lines"][1]["level"] is None
