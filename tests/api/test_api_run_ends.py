"""Every API run ends recorded: hostile stages and hostile param values (issue 9)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _apitest import PIPELINES, SECRET_VALUE, TestClient, trigger, wait_terminal

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
