"""Runs survive an API restart as records; one interrupted by the restart ends FAILED."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest

from _apitest import AUTH, TOKEN, Gate, TestClient, trigger, wait_terminal
from ddeutil.workflow.api.models import HealthResponse
from ddeutil.workflow.api.service import INTERRUPTED_REASON, NOT_STARTED_REASON, SHUTDOWN_REASON
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.errors import StoreError
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import RunStore, TriggerKind
from ddeutil.workflow.store.ends import EndJournal, RunEnd
from ddeutil.workflow.store.fleet import OwnerRecord
from ddeutil.workflow.store.memory import MemoryRunStore

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(api_settings: Settings) -> Iterator[RunStore]:
    s = open_store(api_settings.api_db_url)
    yield s
    s.close()


def test_runs_left_by_a_previous_api_process_are_closed_failed(
    store: RunStore, make_client: Callable[..., TestClient]
) -> None:
    for run_id, kind in [
        ("20240101T000000-0000000a", TriggerKind.API),
        ("20240101T000000-0000000b", TriggerKind.API),
        ("20240101T000000-0000000c", TriggerKind.SCHEDULE),
    ]:
        store.create_run(run_id=run_id, pipeline="quick", trigger=kind, params={}, now=T0)
    store.mark_running("20240101T000000-0000000a", now=T0)
    store.mark_running("20240101T000000-0000000c", now=T0)

    client = make_client()

    running = client.get("/api/v1/runs/20240101T000000-0000000a", headers=AUTH).json()
    assert running["status"] == "FAILED"
    assert running["error"] == INTERRUPTED_REASON
    pending = client.get("/api/v1/runs/20240101T000000-0000000b", headers=AUTH).json()
    assert pending["status"] == "FAILED"
    assert pending["error"] == NOT_STARTED_REASON
    # The daemon's runs are the daemon's business.
    scheduled = client.get("/api/v1/runs/20240101T000000-0000000c", headers=AUTH).json()
    assert scheduled["status"] == "RUNNING"


def test_ends_journaled_by_a_previous_process_are_replayed_before_closing_interrupted_runs(
    store: RunStore, api_settings: Settings, make_client: Callable[..., TestClient]
) -> None:
    run_id = "20240101T000000-0000000a"
    store.create_run(run_id=run_id, pipeline="quick", trigger=TriggerKind.API, params={}, now=T0)
    store.mark_running(run_id, now=T0)
    # the run succeeded, but its end reached only the journal (the store refused it)
    journal = EndJournal.for_store(api_settings, api_settings.api_db_url)
    journal.append(RunEnd(run_id, Status.SUCCESS, T0, {"params": {}, "jobs": {}}))

    client = make_client()

    body = client.get(f"/api/v1/runs/{run_id}", headers=AUTH).json()
    assert (body["status"], body["error"]) == ("SUCCESS", None)
    assert not journal.path.exists()


def test_a_run_killed_mid_way_by_an_app_restart_ends_failed(
    gate: Gate, make_client: Callable[..., TestClient], store: RunStore
) -> None:
    old = make_client()
    run_id = trigger(old, "gated").json()["run_id"]
    assert gate.entered.wait(10), "the gated run never started"
    record = store.get_run(run_id)
    assert record is not None
    assert record.status is Status.RUNNING

    # A new API process starts on the same store while the old one is "dead".
    new = make_client()
    body = new.get(f"/api/v1/runs/{run_id}", headers=AUTH).json()
    assert body["status"] == "FAILED"
    assert body["error"] == INTERRUPTED_REASON

    # The old process's thread finishing late does not overwrite the record.
    gate.release.set()
    assert old.app.state.service.wait(run_id, 10)  # type: ignore[attr-defined]
    old.__exit__(None, None, None)
    final = store.get_run(run_id)
    assert final is not None
    assert final.status is Status.FAILED
    assert final.error == INTERRUPTED_REASON
    # And the new process still serves it.
    assert wait_terminal(new, run_id)["status"] == "FAILED"


def test_stopping_the_api_cancels_triggers_still_waiting_for_a_slot(
    gate: Gate,
    make_settings: Callable[..., Settings],
    make_client: Callable[..., TestClient],
    store: RunStore,
) -> None:
    settings = make_settings(
        WORKFLOW_API_TOKEN="t0ken-for-stop",
        WORKFLOW_API_RUN_WORKERS="1",
        WORKFLOW_APP_STOP_TIMEOUT="0.2",
    )
    client = make_client(settings)
    headers = {"Authorization": "Bearer t0ken-for-stop"}
    running = client.post("/api/v1/pipelines/cooperative/runs", headers=headers).json()["run_id"]
    assert gate.entered.wait(10)
    waiting = client.post("/api/v1/pipelines/quick/runs", headers=headers).json()["run_id"]
    health = client.get("/health").json()
    assert health["runs_in_flight"] == 2

    client.__exit__(None, None, None)

    first = store.get_run(running)
    assert first is not None
    assert first.status is Status.CANCELLED
    second = store.get_run(waiting)
    assert second is not None
    assert second.status is Status.CANCELLED
    assert second.error == SHUTDOWN_REASON


def test_health_reports_the_scheduler_heartbeat_age(
    client: TestClient, store: RunStore, api_settings: Settings
) -> None:
    assert client.get("/health").json()["scheduler"] is None
    assert store.join("vm:123", now=datetime(2023, 12, 30, tzinfo=timezone.utc), host="vm", pid=123)
    store.heartbeat(now=datetime(2024, 1, 1, 0, 2, 0, tzinfo=timezone.utc), owner="vm:123")
    fresh = client.get("/health").json()
    assert fresh["status"] == "ok"
    assert fresh["scheduler"]["owner"] == "vm:123"
    assert fresh["scheduler"]["age_seconds"] == 30.0
    assert fresh["scheduler"]["stale"] is False
    store.heartbeat(now=datetime(2023, 12, 31, tzinfo=timezone.utc), owner="vm:123")
    stale = client.get("/health").json()
    assert stale["status"] == "degraded"
    assert stale["scheduler"]["stale"] is True


def test_health_lists_every_daemon_with_its_state_age_and_taker(
    client: TestClient, store: RunStore, api_clock: FakeClock
) -> None:
    now = api_clock.now()

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    for owner, pid, joined in [("vm1:1", 1, 7200), ("vm2:2", 2, 7200), ("vm3:3", 3, 7200)]:
        assert store.join(owner, now=ago(joined), host=owner[:3], pid=pid)
    assert store.join("vm4:4", now=ago(300), host="vm4", pid=4)
    store.heartbeat(now=ago(5), owner="vm1:1")
    store.heartbeat(now=ago(45), owner="vm2:2")  # older than the 30 s lease: unresponsive
    store.leave("vm3:3", now=ago(3600))  # an hour ago: listed for the record only
    store.heartbeat(now=ago(90), owner="vm4:4")  # lost 55 s ago, adopted by vm1
    taken = store.take_over("vm1:1", now=ago(55), lease=timedelta(seconds=30), reason=str)
    assert sorted(o.owner for o in taken.owners) == ["vm3:3", "vm4:4"]

    body = client.get("/health").json()
    HealthResponse.model_validate(body)
    assert body["status"] == "ok"
    assert body["scheduler"] == {
        "last_heartbeat": "2024-01-01T00:02:25Z",
        "owner": "vm1:1",
        "age_seconds": 5.0,
        "stale": False,
    }
    rows = [
        (d["owner"], d["host"], d["pid"], d["state"], d["age_seconds"], d["taken_by"])
        for d in body["schedulers"]
    ]
    assert rows == [
        ("vm1:1", "vm1", 1, "live", 5.0, None),
        ("vm2:2", "vm2", 2, "unresponsive", 45.0, None),
        ("vm4:4", "vm4", 4, "lost", 90.0, "vm1:1"),
        ("vm3:3", "vm3", 3, "stopped", 7200.0, "vm1:1"),
    ]
    by_owner = {d["owner"]: d for d in body["schedulers"]}
    assert by_owner["vm4:4"]["ended"] == "2024-01-01T00:01:35Z"
    assert [by_owner[o]["current"] for o in ("vm1:1", "vm2:2", "vm4:4", "vm3:3")] == [
        True,
        True,
        True,
        False,
    ]
    assert [by_owner[o]["stale"] for o in ("vm1:1", "vm2:2", "vm4:4", "vm3:3")] == [
        False,
        False,
        False,
        True,
    ]


def test_health_is_degraded_when_no_daemon_is_live_even_after_a_recent_beat(
    client: TestClient, store: RunStore, api_clock: FakeClock
) -> None:
    now = api_clock.now()
    assert store.join("vm:1", now=now - timedelta(seconds=600), host="vm", pid=1)
    store.heartbeat(now=now - timedelta(seconds=10), owner="vm:1")
    assert client.get("/health").json()["status"] == "ok"
    store.leave("vm:1", now=now - timedelta(seconds=10))
    body = client.get("/health").json()
    assert body["status"] == "degraded"
    assert body["scheduler"]["stale"] is False  # still the newest heartbeat, 10 s old
    assert [(d["state"], d["current"]) for d in body["schedulers"]] == [("stopped", True)]


class _OwnersUnreadable(MemoryRunStore):
    def owners(self) -> list[OwnerRecord]:
        raise StoreError("workflow_owners: permission denied")


def test_health_is_503_when_the_daemons_cannot_be_read(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(store=_OwnersUnreadable())
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["store"], body["scheduler"], body["schedulers"]) == (
        "unavailable",
        {"reachable": False},
        None,
        [],
    )


def test_health_is_503_when_the_store_is_gone(
    make_client: Callable[..., TestClient], api_settings: Settings
) -> None:
    own = open_store(api_settings.api_db_url)
    client = make_client(store=own)
    assert client.get("/health").status_code == 200
    own.close()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["store"]["reachable"] is False
    runs = client.get("/api/v1/runs", headers=AUTH)
    assert runs.status_code == 503
    assert runs.json()["error"]["code"] == "store_unavailable"


def test_a_stopping_api_says_which_runs_it_waits_for(
    gate: Gate,
    make_client: Callable[..., TestClient],
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(make_settings(WORKFLOW_API_TOKEN=TOKEN, WORKFLOW_APP_STOP_TIMEOUT="0.2"))
    run_id = trigger(client, "gated").json()["run_id"]
    assert gate.entered.wait(10), "the gated run never started"
    with caplog.at_level(logging.INFO, logger="ddeutil.workflow.api.service"):
        client.__exit__(None, None, None)
    gate.release.set()
    said = [r.getMessage() for r in caplog.records if "API stopping" in r.getMessage()]
    assert said == [
        f"API stopping: waiting up to 0.2s for 1 run(s) in flight ({run_id}), then cancelling them"
    ]
