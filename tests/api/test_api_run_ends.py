"""Every API run ends recorded: hostile stages and hostile param values (issue 9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from _apitest import AUTH, PIPELINES, SECRET_VALUE, TestClient, trigger, wait_terminal

STOPS = f"""
stops:
  type: Pipeline
  params:
    kind: str
  jobs:
    main:
      stages:
        - name: raise what only a BaseException handler catches
          vars:
            kind: ${{{{ params.kind }}}}
          run: |
            import asyncio

            class Custom(BaseException):
                pass

            kinds = {{
                "custom": Custom,
                "interrupt": KeyboardInterrupt,
                "cancelled": asyncio.CancelledError,
            }}
            raise kinds[kind]("token {SECRET_VALUE}")

lone:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: emit a lone surrogate
          id: emit
          run: text = "a" + chr(0xD800) + "b"
"""


@pytest.fixture
def conf(write_conf: Callable[[str, str], Any]) -> None:
    write_conf("pipelines.yml", PIPELINES + STOPS)


def test_a_stage_raising_a_base_exception_fails_its_run_and_frees_the_thread(
    client: TestClient,
) -> None:
    kinds = {"custom": "Custom", "interrupt": "KeyboardInterrupt", "cancelled": "CancelledError"}
    # three such runs on a pool of two threads, then an ordinary run
    runs = {kind: trigger(client, "stops", {"kind": kind}) for kind in kinds}
    assert all(r.status_code == 202 for r in runs.values()), [r.text for r in runs.values()]
    quick = trigger(client, "quick", {"who": "after"}).json()["run_id"]
    for kind, response in runs.items():
        body = wait_terminal(client, response.json()["run_id"], timeout=10)
        assert body["status"] == "FAILED"
        assert kinds[kind] in body["error"]
        assert "token ***" in body["error"]
        assert SECRET_VALUE not in str(body)
    assert wait_terminal(client, quick, timeout=10)["status"] == "SUCCESS"
    assert client.get("/health").json()["runs_in_flight"] == 0


def test_a_param_with_a_lone_surrogate_is_422_naming_it_and_records_nothing(
    client: TestClient,
) -> None:
    body = '{"params": {"who": "a\\ud800b"}}'  # valid JSON, not valid Unicode text
    response = client.post(
        "/api/v1/pipelines/quick/runs",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert [(d["location"], d["name"]) for d in details] == [("params", "who")]
    assert "lone surrogate \\ud800" in details[0]["message"]
    assert client.get("/api/v1/runs", headers=AUTH).json()["total"] == 0


def test_a_stage_output_with_a_lone_surrogate_is_served_escaped(client: TestClient) -> None:
    run_id = trigger(client, "lone").json()["run_id"]
    body = wait_terminal(client, run_id, timeout=10)
    assert body["status"] == "SUCCESS"
    outputs = body["context"]["jobs"]["main"]["stages"]["emit"]["outputs"]
    assert outputs == {"text": "a\\ud800b"}
