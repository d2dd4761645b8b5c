"""End to end: a real daemon on a ``* * * * *`` schedule runs two minutes once each,
and starts a jittered release at its offset (up to 70 s: one boundary and 8 s).

Takes about two minutes of wall time (it waits for two real minute boundaries),
so it is marked ``slow``: CI runs it with the rest of the suite; deselect it
locally with ``-m 'not slow'``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ddeutil.workflow.result import Status
from ddeutil.workflow.schedules.jitter import jitter_offset
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import RunFilter, RunRecord

UTC = timezone.utc


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_minute_schedule_runs_two_consecutive_minutes_exactly_once(
    root: Path, write_conf: Callable[..., Path]
) -> None:
    marks = root / "marks.txt"
    write_conf(
        "every_minute.yml",
        f"""
        every-minute:
          type: Pipeline
          on:
            - cronjob: "* * * * *"
              timezone: Asia/Bangkok
          params:
            greeting:
              type: str
              default: hello
          jobs:
            mark:
              stages:
                - name: Record the release
                  bash: echo "${{{{ params.greeting }}}} ${{{{ release.logical_date }}}}" >> {marks}
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(
        WORKFLOW_ROOT_PATH=str(root),
        WORKFLOW_CORE_TIMEZONE="UTC",
        WORKFLOW_APP_PROCESS_WORKER="1",
        WORKFLOW_APP_STOP_TIMEOUT="10",
        PYTHONUNBUFFERED="1",
    )
    settings = Settings.from_env(env)
    out = (root / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "ddeutil.workflow.app"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    store = open_store(settings.api_db_url)
    try:

        def finished() -> list[RunRecord]:
            return [
                r
                for r in store.list_runs(RunFilter(pipeline="every-minute"))
                if r.status.is_terminal
            ]

        _wait_until(lambda: len(finished()) >= 2, 200, "two scheduled runs")
        health = subprocess.run(
            [sys.executable, "-m", "ddeutil.workflow", "health"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert health.returncode == 0, health.stdout + health.stderr
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
        runs = sorted(store.list_runs(RunFilter(pipeline="every-minute")), key=lambda r: r.created)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
        out.close()
        store.close()

    log = (root / "daemon.log").read_text()
    assert len(runs) in (2, 3), log  # a third boundary may pass while stopping
    first, second = runs[0], runs[1]
    assert first.release is not None
    assert second.release is not None
    assert second.release.at - first.release.at == timedelta(minutes=1)
    assert first.release.at.second == 0
    assert {first.status, second.status} == {Status.SUCCESS}
    releases = [r.release.at for r in runs if r.release]
    assert len(releases) == len(set(releases))
    for run in (first, second):
        assert run.started is not None
        assert run.release is not None
        assert run.started - run.release.at < timedelta(seconds=5)  # ticked at the boundary
    bangkok = [
        (first.release.at + timedelta(hours=7)).strftime("%Y-%m-%d %H:%M"),
        (second.release.at + timedelta(hours=7)).strftime("%Y-%m-%d %H:%M"),
    ]
    lines = marks.read_text().splitlines()
    assert len(lines) >= 2, lines
    for expected, line in zip(bangkok, lines, strict=False):
        assert line.startswith(f"hello {expected}"), lines
        assert line.endswith("+07:00"), lines
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records, log
    due = [r for r in records if r["message"].startswith("release due")]
    assert {r["release"] for r in due} >= {
        first.release.at.isoformat(),
        second.release.at.isoformat(),
    }
    assert all(r["pipeline"] == "every-minute" for r in due)
    assert datetime.fromisoformat(due[0]["release"]).tzinfo == UTC


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_jittered_release_starts_at_its_offset_and_keeps_its_fire_time(
    root: Path, write_conf: Callable[..., Path]
) -> None:
    write_conf(
        "jittered.yml",
        """
        spread:
          type: Pipeline
          on:
            - cronjob: "* * * * *"
              timezone: UTC
              jitter: 8s
          jobs:
            only:
              stages:
                - name: nothing
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(
        WORKFLOW_ROOT_PATH=str(root),
        WORKFLOW_CORE_TIMEZONE="UTC",
        WORKFLOW_APP_PROCESS_WORKER="1",
        WORKFLOW_APP_STOP_TIMEOUT="10",
        PYTHONUNBUFFERED="1",
    )
    settings = Settings.from_env(env)
    out = (root / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "ddeutil.workflow.app"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    store = open_store(settings.api_db_url)
    try:

        def finished() -> list[RunRecord]:
            runs = store.list_runs(RunFilter(pipeline="spread"))
            return [r for r in runs if r.status.is_terminal]

        _wait_until(lambda: len(finished()) >= 1, 100, "one jittered run")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
        run = min(finished(), key=lambda r: r.created)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(10)
        out.close()
        store.close()

    log = (root / "daemon.log").read_text()
    assert run.status is Status.SUCCESS, log
    assert run.release is not None
    assert run.started is not None
    assert run.release.at.second == 0  # the release keeps its fire time
    assert run.logical_date == run.release.at
    offset = jitter_offset("spread", run.release.schedule, run.release.at, 8)
    lag = (run.started - run.release.at).total_seconds()
    assert offset <= lag < offset + 5, (offset, lag, log)
    if offset:
        assert "release held for its jitter" in log
