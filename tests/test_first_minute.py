"""The first minute: the bundled conf has a run within a minute, and the daemon says when."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ddeutil.workflow.loader import Loader
from ddeutil.workflow.scheduling.catalog import PipelineCatalog
from ddeutil.workflow.scheduling.tick_report import NEXT_LOGGED, log_next_releases
from ddeutil.workflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 1, 1, 10, 0, 30, tzinfo=timezone.utc)


def _bundled() -> PipelineCatalog:
    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(REPO)})
    catalog = PipelineCatalog(Loader.from_settings(settings), settings)
    catalog.reload(force=True)
    return catalog


def test_the_bundled_conf_releases_something_within_a_minute() -> None:
    upcoming = _bundled().next_releases(NOW)
    assert upcoming, "the bundled conf schedules nothing"
    first_at, pipeline, _, offset = upcoming[0]
    assert offset == 0
    assert first_at - NOW <= timedelta(minutes=1)
    assert pipeline == "hello-every-minute"
    assert "delete" in (REPO / "conf" / "pipelines" / "hello.yml").read_text().lower()


def test_the_next_release_of_each_pipeline_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    upcoming = [
        (NOW + timedelta(minutes=i), f"p{i:02d}", "* * * * *@UTC", 0)
        for i in range(NEXT_LOGGED + 3)
    ]
    with caplog.at_level(logging.INFO, logger="ddeutil.workflow.scheduling.scheduler"):
        log_next_releases(upcoming, NOW)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        "next release of p00: 2024-01-01T10:00:30+00:00 (in 0s, schedule * * * * *@UTC)"
    )
    assert len(lines) == NEXT_LOGGED + 1
    assert lines[-1].startswith("... and 3 more pipeline(s)")
