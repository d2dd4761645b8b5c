"""The API process sends the notification outbox too with WORKFLOW_NOTIFY_API_SENDER=true."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _apitest import TOKEN, TestClient, trigger, wait_terminal
from _hooksink import hook_sink
from ddeutil.workflow.settings import Settings

FAILS = """
fails:
  type: Pipeline
  jobs:
    main:
      stages:
        - name: boom
          run: raise RuntimeError("boom")
"""


def test_the_api_sends_the_failure_of_a_run_it_started(
    make_client: Callable[..., TestClient],
    make_settings: Callable[..., Settings],
    write_conf: Callable[[str, str], Any],
) -> None:
    write_conf("fails.yml", FAILS)
    with hook_sink() as sink:
        settings = make_settings(
            WORKFLOW_API_TOKEN=TOKEN,
            WORKFLOW_NOTIFY_WEBHOOK_URL=sink.url,
            WORKFLOW_NOTIFY_API_SENDER="true",
        )
        client = make_client(settings)
        response = trigger(client, "fails")
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        assert wait_terminal(client, run_id)["status"] == "FAILED"
        (hit,) = sink.wait_for(1, timeout=20.0)  # the next pass, at most 5 s later
        assert hit.body["id"] == f"{run_id}:failure:webhook"
        assert hit.body["pipeline"] == "fails"


def test_without_the_setting_the_api_leaves_the_outbox_to_the_daemon(
    make_client: Callable[..., TestClient],
    make_settings: Callable[..., Settings],
    write_conf: Callable[[str, str], Any],
) -> None:
    write_conf("fails.yml", FAILS)
    with hook_sink() as sink:
        settings = make_settings(WORKFLOW_API_TOKEN=TOKEN, WORKFLOW_NOTIFY_WEBHOOK_URL=sink.url)
        client = make_client(settings)
        run_id = trigger(client, "fails").json()["run_id"]
        assert wait_terminal(client, run_id)["status"] == "FAILED"
        store = client.app.state.service._store  # type: ignore[attr-defined]
        (row,) = store.notices()
        assert (row.key, row.state.value) == (f"{run_id}:failure:webhook", "pending")
        assert sink.hits == []
