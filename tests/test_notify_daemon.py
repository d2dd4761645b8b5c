"""The daemon's notify thread, end to end: a real daemon (``--once``) and a webhook receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from _hooksink import hook_sink
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.pipeline import Pipeline
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import ReleaseKey
from ddeutil.workflow.store.outbox import NoticeState

RELEASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
CONF = """
nightly:
  type: Pipeline
  on:
    - cronjob: "0 0 1 1 *"
      timezone: UTC
  jobs:
    only:
      stages:
        - name: fail
          bash: exit 3
"""


def test_a_daemon_records_and_sends_the_failure_of_a_scheduled_run_once(
    root: Path, write_conf: Callable[[str, str], Path]
) -> None:
    write_conf("nightly.yml", CONF)
    with hook_sink() as sink:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
        env.update(
            WORKFLOW_ROOT_PATH=str(root),
            WORKFLOW_CORE_TIMEZONE="UTC",
            WORKFLOW_APP_PROCESS_WORKER="1",
            WORKFLOW_APP_STOP_TIMEOUT="20",
            WORKFLOW_NOTIFY_WEBHOOK_URL=sink.url,
        )
        settings = Settings.from_env(env)
        loader = Loader.from_settings(settings)
        on = Pipeline.from_template(loader.get("nightly"), loader=loader, settings=settings).on[0]
        store = open_store(settings.api_db_url)
        try:
            key = ReleaseKey("nightly", on.key, RELEASE)
            assert store.claim(key, run_id="n1", params={}, logical_date=RELEASE, now=RELEASE)
            proc = subprocess.run(
                [sys.executable, "-m", "ddeutil.workflow.app", "--once"],
                env=env,
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert proc.returncode == 0, textwrap.shorten(proc.stdout.decode(), 2000)
            record = store.get_run("n1")
            assert record is not None
            assert record.status is Status.FAILED
            (hit,) = sink.wait_for(1)
            assert hit.body["id"] == "n1:failure:webhook"
            assert hit.body["release"]["at"] == RELEASE.isoformat()
            assert [(n.key, n.state) for n in store.notices()] == [
                ("n1:failure:webhook", NoticeState.SENT)
            ]
        finally:
            store.close()
