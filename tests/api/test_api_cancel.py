"""``POST /api/v1/runs/{run_id}/cancel``: 202 cancelled or asked, 404, 409, 422.

A RUNNING API run is cancelled by the API process's own cancel watch, whoever
asked (this route, ``workflow cancel`` in another shell): its bash process group
is killed and it ends CANCELLED.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from _apitest import AUTH, TOKEN, TestClient, trigger, wait_terminal
from _procs import wait_group_gone
from ddeutil.workflow.api.models import CancelResponse, ErrorResponse
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import RunStore, TriggerKind, open_store
from ddeutil.workflow.store.cancel import ask_cancel

WAIT = 20.0

SLEEPER = """
bash-sleeper:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: Sleep
          bash: |
            echo $$ > "{pid_file}"
            sleep 60
"""


@pytest.fixture(params=["sqlite", "postgres"])
def settings_for(
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    write_conf: Callable[[str, str], Any],
    conf: None,
    tmp_path: Path,
) -> Settings:
    write_conf("sleeper.yml", SLEEPER.format(pid_file=tmp_path / "bash.pid"))
    env = {"WORKFLOW_API_TOKEN": TOKEN}
    if request.param == "postgres":
        env["WORKFLOW_API_DB_URL"] = str(request.getfixturevalue("postgres_url"))
    return make_settings(**env)


@pytest.fixture
def store(settings_for: Settings) -> Iterator[RunStore]:
    opened = open_store(settings_for.api_db_url)
    yield opened
    opened.close()


def cancel(client: TestClient, run_id: str, body: Any = None) -> Any:
    return client.post(f"/api/v1/runs/{run_id}/cancel", json=body, headers=AUTH)


def _wait_for(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def test_a_running_api_run_is_cancelled_by_the_api_process(
    make_client: Callable[..., TestClient],
    settings_for: Settings,
    store: RunStore,
    tmp_path: Path,
) -> None:
    client = make_client(settings_for)
    run_id = trigger(client, "bash-sleeper").json()["run_id"]
    pgid = os.getpgid(_wait_for("the bash pid", lambda: _pid(tmp_path / "bash.pid")))
    response = cancel(client, run_id, {"reason": "operator asked"})
    assert response.status_code == 202, response.text
    body = CancelResponse.model_validate(response.json())
    assert (body.run_id, body.status, body.cancel_requested, body.owner) == (
        run_id,
        Status.RUNNING,
        True,
        None,
    )
    ended = wait_terminal(client, run_id, WAIT)
    assert ended["status"] == "CANCELLED"
    wait_group_gone(pgid, WAIT)
    again = cancel(client, run_id)
    assert again.status_code == 409
    error = ErrorResponse.model_validate(again.json()).error
    assert error.code == "run_ended"
    assert [(d.name, d.message) for d in error.details] == [("status", "CANCELLED")]


def test_a_cancel_asked_from_another_process_reaches_an_api_run(
    make_client: Callable[..., TestClient],
    settings_for: Settings,
    store: RunStore,
    tmp_path: Path,
) -> None:
    client = make_client(settings_for)
    run_id = trigger(client, "bash-sleeper").json()["run_id"]
    _wait_for("the bash pid", lambda: _pid(tmp_path / "bash.pid"))
    outcome = ask_cancel(store, run_id, now=datetime.now(timezone.utc))  # as `workflow cancel`
    assert outcome is not None
    assert outcome.what == "asked"
    assert wait_terminal(client, run_id, WAIT)["status"] == "CANCELLED"


def test_a_pending_run_is_cancelled_at_once(
    make_client: Callable[..., TestClient], settings_for: Settings, store: RunStore
) -> None:
    client = make_client(settings_for)
    store.create_run(
        run_id="r-pending",
        pipeline="quick",
        trigger=TriggerKind.MANUAL,
        params={},
        now=datetime.now(timezone.utc),
    )
    response = cancel(client, "r-pending")
    assert response.status_code == 202
    assert response.json() == {
        "run_id": "r-pending",
        "status": "CANCELLED",
        "cancel_requested": False,
        "owner": None,
    }
    record = store.get_run("r-pending")
    assert record is not None
    assert record.status is Status.CANCELLED
    assert record.error == "cancelled by request"


def test_unknown_ended_and_malformed(client: TestClient) -> None:
    assert cancel(client, "no-such-run").status_code == 404
    done = wait_terminal(client, trigger(client, "quick").json()["run_id"])
    ended = cancel(client, done["run_id"])
    assert ended.status_code == 409
    assert "already ended: SUCCESS" in ended.json()["error"]["message"]
    assert cancel(client, "a..b").status_code == 422
    assert cancel(client, done["run_id"], {"reason": "x", "extra": 1}).status_code == 422
    assert cancel(client, done["run_id"], {"reason": "x" * 1001}).status_code == 422
    unauthorised = client.post(f"/api/v1/runs/{done['run_id']}/cancel")
    assert unauthorised.status_code == 401
