"""Shared constants and helpers of the REST API tests (imported by conftest and tests)."""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any

with warnings.catch_warnings():
    # Starlette >= 1.x prefers httpx2 for its TestClient and warns on import when
    # only httpx (our test extra) is installed; the client works the same.
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

__all__ = [
    "AUTH",
    "GATE",
    "PIPELINES",
    "SECRET_VALUE",
    "TOKEN",
    "Gate",
    "TestClient",
    "trigger",
    "wait_terminal",
]

TOKEN = "test-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET_VALUE = "s3cr3t-value-from-env"
GATE = "ddw_api_test_gate"

PIPELINES = f"""
on_every_5_min:
  type: on.On
  cron: "*/5 * * * *"
  timezone: UTC

quick:
  type: ddeutil.workflow.pipeline.Pipeline
  desc: three quick stages
  on: on_every_5_min
  params:
    who:
      type: str
      default: world
  jobs:
    main:
      stages:
        - name: nothing
        - name: greet
          id: greet
          vars:
            who: ${{{{ params.who }}}}
          run: |
            greeting = "hello " + who
            size = len(greeting)

typed:
  type: Pipeline
  desc: every kind of param
  params:
    count: int
    run-date: datetime
    mode:
      type: choice
      options: [full, delta]
    dry: bool
    label:
      type: str
      default: x
  jobs:
    main:
      stages:
        - name: nothing

echo-secret:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: read the secret
          id: read
          run: |
            import os
            value = "token is " + os.environ["DDW_API_TEST_TOKEN"]

gated:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: wait at the gate
          run: |
            import {GATE}
            {GATE}.entered.set()
            {GATE}.release.wait(30)

cooperative:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: wait for a cancel
          run: |
            import {GATE}
            {GATE}.entered.set()
            if cancel_token.wait(30):
                raise RuntimeError(cancel_token.reason)

broken:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: not a stage kind
          bogus: 1
"""


def wait_terminal(client: TestClient, run_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """Poll the run (long-poll, bounded by a deadline) until it is terminal."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        wait = max(min(left, 5.0), 0.0)
        response = client.get(f"/api/v1/runs/{run_id}", params={"wait": wait}, headers=AUTH)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] not in ("PENDING", "RUNNING"):
            return body
        if left <= 0:
            raise AssertionError(f"run {run_id} still {body['status']} after {timeout}s")


def trigger(
    client: TestClient,
    name: str,
    params: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> Any:
    body = {"params": params} if params is not None else None
    return client.post(
        f"/api/v1/pipelines/{name}/runs", json=body, headers={**AUTH, **(headers or {})}
    )


class Gate:
    """The ``gated`` pipeline's module: ``entered`` when the stage runs, ``release`` to end it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
