"""Triggering runs, params validation, idempotency, run status, history, logs, masking."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from _apitest import AUTH, SECRET_VALUE, TestClient, trigger, wait_terminal
from ddeutil.workflow.api.models import ErrorResponse, RunDetail, RunPage
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.result import ErrorRecord, Status
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import Claim, ReleaseKey, TriggerKind


def test_trigger_answers_202_with_run_id_and_location(client: TestClient) -> None:
    response = trigger(client, "quick", {"who": "api"})
    assert response.status_code == 202
    body = response.json()
    assert body["pipeline"] == "quick"
    assert body["status"] == "PENDING"
    assert response.headers["Location"] == f"/api/v1/runs/{body['run_id']}"
    assert body["location"] == response.headers["Location"]


def test_trigger_then_poll_ends_success_with_outputs(client: TestClient) -> None:
    run_id = trigger(client, "quick", {"who": "api"}).json()["run_id"]
    body = wait_terminal(client, run_id)
    RunDetail.model_validate(body)
    assert body["status"] == "SUCCESS"
    assert body["trigger"] == "api"
    assert body["params"] == {"who": "api"}
    outputs = body["context"]["jobs"]["main"]["stages"]["greet"]["outputs"]
    assert outputs == {"greeting": "hello api", "size": 9}
    assert body["errors"] == []
    assert body["started"] is not None
    assert body["ended"] is not None


def test_trigger_without_body_uses_the_defaults(client: TestClient) -> None:
    response = client.post("/api/v1/pipelines/quick/runs", headers=AUTH)
    assert response.status_code == 202
    body = wait_terminal(client, response.json()["run_id"])
    assert body["context"]["jobs"]["main"]["stages"]["greet"]["outputs"]["greeting"] == (
        "hello world"
    )


def details_by_name(response: Any) -> dict[str, str]:
    ErrorResponse.model_validate(response.json())
    error = response.json()["error"]
    assert all(d["location"] == "params" for d in error["details"])
    return {d["name"]: d["message"] for d in error["details"]}


def test_bad_params_are_422_naming_each_param(client: TestClient) -> None:
    response = trigger(
        client, "typed", {"count": "many", "run-date": "yesterday", "mode": "partial"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_params"
    problems = details_by_name(response)
    assert set(problems) == {"count", "run-date", "mode", "dry"}
    assert "whole number" in problems["count"]
    assert "ISO 8601" in problems["run-date"]
    assert "full, delta" in problems["mode"]
    assert "required" in problems["dry"]


def test_unknown_params_are_rejected(client: TestClient) -> None:
    response = trigger(client, "quick", {"who": "x", "whom": "y", "extra": 1})
    assert response.status_code == 422
    problems = details_by_name(response)
    assert set(problems) == {"whom", "extra"}
    assert "not a declared param" in problems["whom"]


def test_rejected_triggers_record_nothing(client: TestClient) -> None:
    trigger(client, "quick", {"nope": 1})
    page = client.get("/api/v1/runs", headers=AUTH).json()
    assert page["total"] == 0


def test_params_are_coerced_like_the_cli(client: TestClient) -> None:
    response = trigger(
        client, "typed", {"count": "5", "run-date": "2024-01-02", "mode": "full", "dry": "yes"}
    )
    assert response.status_code == 202
    body = wait_terminal(client, response.json()["run_id"])
    assert body["status"] == "SUCCESS"
    assert body["params"] == {
        "count": 5,
        "run-date": "2024-01-02T00:00:00",
        "mode": "full",
        "dry": True,
        "label": "x",
    }


def test_unknown_pipeline_is_404(client: TestClient) -> None:
    response = trigger(client, "no-such-pipeline", {})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    schedule = trigger(client, "on_every_5_min", {})
    assert schedule.status_code == 404


def test_invalid_pipeline_is_422_with_the_reason(client: TestClient) -> None:
    response = trigger(client, "broken", {})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_pipeline"
    assert "bogus" in error["message"]
    assert error["details"][0]["location"] == "template"


def test_idempotency_key_reuse_is_409_with_the_existing_run(client: TestClient) -> None:
    key = {"Idempotency-Key": "order-42"}
    first = trigger(client, "quick", {"who": "a"}, headers=key)
    assert first.status_code == 202
    run_id = first.json()["run_id"]
    again = trigger(client, "quick", {"who": "b"}, headers=key)
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "duplicate_run"
    assert error["run_id"] == run_id
    assert again.headers["Location"] == f"/api/v1/runs/{run_id}"
    assert wait_terminal(client, run_id)["idempotency_key"] == "order-42"
    assert client.get("/api/v1/runs", headers=AUTH).json()["total"] == 1
    other = trigger(client, "quick", {}, headers={"Idempotency-Key": "order-43"})
    assert other.status_code == 202


@pytest.mark.parametrize("key", ["has space", "x" * 201, "tab\there"])
def test_malformed_idempotency_keys_are_422(client: TestClient, key: str) -> None:
    response = trigger(client, "quick", {}, headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["location"] == "header"


def test_unknown_run_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/runs/20240101T000000-deadbeef", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    logs = client.get("/api/v1/runs/20240101T000000-deadbeef/logs", headers=AUTH)
    assert logs.status_code == 404


def test_secrets_are_masked_in_run_results(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DDW_API_TEST_TOKEN", SECRET_VALUE)
    client = make_client(masker=None)  # the default: Masker.from_env(os.environ)
    run_id = trigger(client, "echo-secret").json()["run_id"]
    body = wait_terminal(client, run_id)
    assert body["status"] == "SUCCESS"
    assert body["context"]["jobs"]["main"]["stages"]["read"]["outputs"] == {"value": "token is ***"}
    raw = client.get(f"/api/v1/runs/{run_id}", headers=AUTH).text
    assert SECRET_VALUE not in raw
    logs = client.get(f"/api/v1/runs/{run_id}/logs", headers=AUTH).text
    assert SECRET_VALUE not in logs


def test_secret_param_values_are_masked_in_store_and_responses(
    client: TestClient, api_settings: Any
) -> None:
    run_id = trigger(client, "quick", {"who": SECRET_VALUE}).json()["run_id"]
    body = wait_terminal(client, run_id)
    assert body["params"] == {"who": "***"}
    assert body["context"]["jobs"]["main"]["stages"]["greet"]["outputs"]["greeting"] == (
        "hello ***"
    )
    store = open_store(api_settings.api_db_url)
    try:
        record = store.get_run(run_id)
    finally:
        store.close()
    assert record is not None
    assert record.params == {"who": "***"}


def test_secret_dict_keys_are_masked_in_store_and_responses(
    make_client: Callable[..., TestClient],
    write_conf: Callable[[str, str], Any],
    api_settings: Any,
) -> None:
    write_conf(
        "keyed.yml",
        """
        keyed:
          type: Pipeline
          params:
            who: str
          jobs:
            main:
              stages:
                - name: index by the value
                  id: index
                  vars:
                    who: ${{ params.who }}
                  run: "table = {who: 1}"
        """,
    )
    client = make_client()
    response = trigger(client, "keyed", {"who": SECRET_VALUE})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    body = wait_terminal(client, run_id)
    assert body["status"] == "SUCCESS"
    assert body["context"]["jobs"]["main"]["stages"]["index"]["outputs"] == {"table": {"***": 1}}
    raw = client.get(f"/api/v1/runs/{run_id}", headers=AUTH).text
    assert SECRET_VALUE not in raw
    store = open_store(api_settings.api_db_url)
    try:
        record = store.get_run(run_id)
    finally:
        store.close()
    assert record is not None
    assert SECRET_VALUE not in json.dumps(record.context)


def test_error_messages_are_masked(client: TestClient) -> None:
    response = trigger(client, "typed", {"count": SECRET_VALUE})
    assert response.status_code == 422
    assert SECRET_VALUE not in response.text
    assert "***" in details_by_name(response)["count"]


def test_run_logs_are_served_oldest_first(client: TestClient) -> None:
    run_id = trigger(client, "quick", {"who": "logs"}).json()["run_id"]
    wait_terminal(client, run_id)
    response = client.get(f"/api/v1/runs/{run_id}/logs", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == len(body["lines"]) > 0
    messages = [line["message"] for line in body["lines"]]
    assert "started" in messages[0]
    assert "SUCCESS" in messages[-1]
    assert any("stage 'greet'" in m for m in messages)
    assert all(line["level"] for line in body["lines"])
    window = client.get(
        f"/api/v1/runs/{run_id}/logs", params={"offset": 1, "limit": 1}, headers=AUTH
    ).json()
    assert window["total"] == body["total"]
    assert [line["message"] for line in window["lines"]] == messages[1:2]


def test_a_known_run_without_log_file_has_no_lines(client: TestClient, api_settings: Any) -> None:
    store = open_store(api_settings.api_db_url)
    try:
        store.create_run(
            run_id="20240101T000000-0000abcd",
            pipeline="quick",
            trigger=TriggerKind.MANUAL,
            params={},
            now=_at(0),
        )
    finally:
        store.close()
    response = client.get("/api/v1/runs/20240101T000000-0000abcd/logs", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["lines"] == []


# ------------------------------------------------------------------ history


def _at(minutes: int) -> Any:
    from datetime import datetime, timezone

    return datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)


@pytest.fixture
def history(api_settings: Any) -> list[str]:
    """Seven runs of two pipelines, one per minute, with mixed statuses and triggers."""
    store = open_store(api_settings.api_db_url)
    ids = []
    plan = [
        ("quick", TriggerKind.API, Status.SUCCESS),
        ("quick", TriggerKind.SCHEDULE, Status.FAILED),
        ("typed", TriggerKind.API, Status.SUCCESS),
        ("quick", TriggerKind.MANUAL, Status.SUCCESS),
        ("typed", TriggerKind.API, Status.FAILED),
        ("quick", TriggerKind.API, Status.CANCELLED),
        ("quick", TriggerKind.API, None),
    ]
    try:
        for minute, (pipeline, kind, status) in enumerate(plan):
            run_id = f"20240101T00{minute:02d}00-0000000{minute}"
            store.create_run(
                run_id=run_id, pipeline=pipeline, trigger=kind, params={}, now=_at(minute)
            )
            if status is not None:
                store.mark_running(run_id, now=_at(minute))
                failed = status is Status.FAILED
                store.finish(
                    run_id,
                    status=status,
                    now=_at(minute),
                    errors=(ErrorRecord("boom", job="main"),) if failed else (),
                    error="main: boom" if failed else None,
                )
            ids.append(run_id)
    finally:
        store.close()
    return ids


def page(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/runs", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    RunPage.model_validate(response.json())
    body: dict[str, Any] = response.json()
    return body


def test_history_is_newest_first_and_paged_with_a_total(
    client: TestClient, history: list[str]
) -> None:
    first = page(client, limit=3)
    assert first["total"] == 7
    assert [r["run_id"] for r in first["items"]] == history[::-1][:3]
    second = page(client, limit=3, offset=3)
    assert [r["run_id"] for r in second["items"]] == history[::-1][3:6]
    last = page(client, limit=3, offset=6)
    assert [r["run_id"] for r in last["items"]] == history[:1]
    assert page(client, limit=3, offset=9)["items"] == []
    assert (second["limit"], second["offset"], second["total"]) == (3, 3, 7)


def test_history_filters(client: TestClient, history: list[str]) -> None:
    quick = page(client, pipeline="quick")
    assert quick["total"] == 5
    assert {r["pipeline"] for r in quick["items"]} == {"quick"}
    failed = page(client, status="FAILED")
    assert [r["run_id"] for r in failed["items"]] == [history[4], history[1]]
    assert failed["items"][0]["error"] == "main: boom"
    detail = client.get(f"/api/v1/runs/{history[4]}", headers=AUTH).json()
    assert detail["errors"] == [
        {"kind": "WorkflowError", "message": "boom", "job": "main", "stage": None}
    ]
    either = page(client, status=["FAILED", "CANCELLED"], pipeline="quick")
    assert [r["run_id"] for r in either["items"]] == [history[5], history[1]]
    api = page(client, trigger="api")
    assert api["total"] == 5
    window = page(client, since="2024-01-01T00:02:00Z", until="2024-01-01T00:04:00Z")
    assert [r["run_id"] for r in window["items"]] == [history[3], history[2]]
    naive = page(client, since="2024-01-01T00:05:00")
    assert naive["total"] == 2
    zoned = page(client, until="2024-01-01T07:01:00+07:00")
    assert [r["run_id"] for r in zoned["items"]] == [history[0]]
    pending = page(client, status="PENDING")
    assert [r["run_id"] for r in pending["items"]] == [history[6]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"status": "DONE"},
        {"trigger": "cron"},
        {"since": "last week"},
        {"pipeline": "../x"},
    ],
)
def test_bad_history_filters_are_422(client: TestClient, params: dict[str, Any]) -> None:
    response = client.get("/api/v1/runs", params=params, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["location"] == "query"


def test_a_triggered_run_is_in_the_history_with_trigger_api(
    client: TestClient, api_clock: FakeClock
) -> None:
    run_id = trigger(client, "quick", {}).json()["run_id"]
    wait_terminal(client, run_id)
    listed = page(client, trigger="api", status="SUCCESS")
    assert [r["run_id"] for r in listed["items"]] == [run_id]
    assert listed["items"][0]["created"] == "2024-01-01T00:02:30Z"
    assert run_id.startswith("20240101T000230-")


def test_long_poll_is_bounded_and_wakes_for_runs_finished_elsewhere(
    client: TestClient, api_settings: Any
) -> None:
    import threading
    import time

    store = open_store(api_settings.api_db_url)
    run_id = "20240101T000000-0000beef"
    try:
        store.create_run(
            run_id=run_id, pipeline="quick", trigger=TriggerKind.SCHEDULE, params={}, now=_at(0)
        )
        store.mark_running(run_id, now=_at(0))
        bounded = client.get(f"/api/v1/runs/{run_id}", params={"wait": 0.2}, headers=AUTH)
        assert bounded.json()["status"] == "RUNNING"

        seen: list[str] = []
        poller = threading.Thread(
            target=lambda: seen.append(
                client.get(f"/api/v1/runs/{run_id}", params={"wait": 20}, headers=AUTH).json()[
                    "status"
                ]
            )
        )
        started = time.monotonic()
        poller.start()
        store.finish(run_id, status=Status.SUCCESS, now=_at(1))
        poller.join(30)
        assert seen == ["SUCCESS"]
        assert time.monotonic() - started < 10
    finally:
        store.close()


def test_long_poll_needs_a_sane_wait(client: TestClient) -> None:
    for wait in ("-1", "31", "nan", "soon"):
        response = client.get(
            "/api/v1/runs/20240101T000000-deadbeef", params={"wait": wait}, headers=AUTH
        )
        assert response.status_code == 422, wait


def test_runs_name_the_daemon_that_owns_them(
    client: TestClient, api_settings: Any, api_clock: FakeClock
) -> None:
    now = api_clock.now()
    key = ReleaseKey(pipeline="quick", schedule="* * * * *@UTC", at=now)
    store = open_store(api_settings.api_db_url)
    try:
        assert store.join("vm1:42:aa", now=now, host="vm1", pid=42)
        claim = Claim(key, "20240101T000230-00000001", {}, now)
        assert store.claim_many([claim], now=now, owner="vm1:42:aa") == [True]
        store.create_run(
            run_id="20240101T000230-00000002",
            pipeline="quick",
            trigger=TriggerKind.MANUAL,
            params={},
            now=now,
        )
    finally:
        store.close()
    page = client.get("/api/v1/runs", headers=AUTH).json()
    RunPage.model_validate(page)
    owners = {item["run_id"]: item["owner"] for item in page["items"]}
    assert owners == {"20240101T000230-00000001": "vm1:42:aa", "20240101T000230-00000002": None}
    one = client.get("/api/v1/runs/20240101T000230-00000001", headers=AUTH).json()
    assert one["owner"] == "vm1:42:aa"
