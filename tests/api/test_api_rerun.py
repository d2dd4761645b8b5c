"""POST /api/v1/runs/{id}/rerun: a new run reusing the outputs of the jobs that succeeded.

Each stage appends its label to a log file as it executes and fails while its
label is listed in a fail file: the log is what the tests count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _apitest import AUTH, PIPELINES, TestClient, trigger, wait_terminal
from ddeutil.workflow.api.catalog import Catalog
from ddeutil.workflow.settings import Settings

FLAKY = """
flaky:
  type: Pipeline
  params:
    log: str
    fail: str
  jobs:
    fan:
      strategy:
        matrix:
          part: [1, 2, 3]
      stages:
        - name: work
          id: work
          vars:
            label: fan-${{ matrix.part }}
            part: ${{ matrix.part }}
            log: ${{ params.log }}
            fail: ${{ params.fail }}
          run: |
            import pathlib
            with pathlib.Path(log).open("a") as out:
                out.write(label + "\\n")
            if label in pathlib.Path(fail).read_text().split():
                raise RuntimeError(label + " fails")
            value = part * 10
    total:
      needs: [fan]
      stages:
        - name: add
          id: add
          vars:
            log: ${{ params.log }}
            values: ${{ jobs.fan.strategies }}
          run: |
            import pathlib
            with pathlib.Path(log).open("a") as out:
                out.write("total\\n")
            total = sum(s["stages"]["work"]["outputs"]["value"] for s in values.values())
"""


class Files:
    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "executed.log"
        self.fail = tmp_path / "fail.txt"
        self.fail.write_text("")

    def executed(self) -> list[str]:
        lines = sorted(self.log.read_text().split()) if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return lines


@pytest.fixture
def conf(write_conf: Callable[[str, str], Any]) -> None:
    """The API tests' conf folder, with ``flaky`` (replaces the conftest's ``conf``)."""
    write_conf("pipelines.yml", PIPELINES)
    write_conf("flaky.yml", FLAKY)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def _failed_run(client: TestClient, files: Files) -> str:
    files.fail.write_text("fan-2")
    params = {"log": str(files.log), "fail": str(files.fail)}
    response = trigger(client, "flaky", params)
    assert response.status_code == 202, response.text
    run_id = str(response.json()["run_id"])
    assert wait_terminal(client, run_id)["status"] == "FAILED"
    assert files.executed() == ["fan-1", "fan-2", "fan-3"]
    files.fail.write_text("")
    return run_id


def test_a_rerun_runs_only_the_failed_combination_and_what_follows(
    client: TestClient, files: Files
) -> None:
    first = _failed_run(client, files)
    response = client.post(f"/api/v1/runs/{first}/rerun", headers=AUTH)
    assert response.status_code == 202
    rerun = response.json()["run_id"]
    assert response.headers["Location"] == f"/api/v1/runs/{rerun}"
    body = wait_terminal(client, rerun)
    assert body["status"] == "SUCCESS"
    assert body["rerun_of"] == first
    assert body["trigger"] == "api"
    assert files.executed() == ["fan-2", "total"]  # fan-1 and fan-3 reused
    assert body["context"]["jobs"]["total"]["stages"]["add"]["outputs"]["total"] == 60
    listed = client.get("/api/v1/runs", params={"pipeline": "flaky"}, headers=AUTH).json()
    assert {r["run_id"]: r["rerun_of"] for r in listed["items"]} == {first: None, rerun: first}


def test_a_rerun_from_a_job_runs_it_even_if_it_succeeded(client: TestClient, files: Files) -> None:
    first = _failed_run(client, files)
    rerun = client.post(f"/api/v1/runs/{first}/rerun", json={}, headers=AUTH).json()["run_id"]
    assert wait_terminal(client, rerun)["status"] == "SUCCESS"
    files.executed()
    again = client.post(
        f"/api/v1/runs/{rerun}/rerun", json={"from_job": "total"}, headers=AUTH
    ).json()["run_id"]
    assert wait_terminal(client, again)["status"] == "SUCCESS"
    assert files.executed() == ["total"]


def test_rerun_refusals(client: TestClient, files: Files) -> None:
    response = client.post("/api/v1/runs/nope/rerun", headers=AUTH)
    assert response.status_code == 404
    first = _failed_run(client, files)
    response = client.post(
        f"/api/v1/runs/{first}/rerun", json={"from_job": "missing"}, headers=AUTH
    )
    assert response.status_code == 422
    assert "has no job 'missing' (its jobs: fan, total)" in response.json()["error"]["message"]
    response = client.post(f"/api/v1/runs/{first}/rerun", json={"force": "maybe"}, headers=AUTH)
    assert response.status_code == 422
    rerun = client.post(f"/api/v1/runs/{first}/rerun", headers=AUTH).json()["run_id"]
    wait_terminal(client, rerun)
    response = client.post(f"/api/v1/runs/{rerun}/rerun", headers=AUTH)  # it succeeded
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "rerun_refused"
    assert "nothing to rerun" in error["message"]


def test_a_changed_template_is_refused_unless_forced(
    client: TestClient,
    files: Files,
    write_conf: Callable[[str, str], Any],
    api_settings: Settings,
) -> None:
    first = _failed_run(client, files)
    extra = "    extra:\n      stages:\n        - name: nothing\n"
    write_conf(
        "flaky.yml",
        FLAKY.replace("[fan]", "[fan, extra]").replace("    total:", extra + "    total:"),
    )
    service = client.app.state.service  # type: ignore[attr-defined]
    service.catalog = Catalog(api_settings, refresh_seconds=0)  # sees the edit at once
    response = client.post(f"/api/v1/runs/{first}/rerun", headers=AUTH)
    assert response.status_code == 409
    details = [d["message"] for d in response.json()["error"]["details"]]
    assert details == ["job 'total' needs changed: ['fan'] -> ['fan', 'extra']"]
    response = client.post(f"/api/v1/runs/{first}/rerun", json={"force": True}, headers=AUTH)
    assert response.status_code == 202
