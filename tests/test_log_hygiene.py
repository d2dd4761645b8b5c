"""Log hygiene: quiet idle ticks, counts that agree with `workflow list`, readable
catch-up wording, no uvicorn colour escapes or null fields in JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ddeutil.workflow.errors import ConfigError
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.logs import configure_logging
from ddeutil.workflow.schedules.planner import Release
from ddeutil.workflow.scheduling import catalog as catalog_module
from ddeutil.workflow.scheduling.catalog import PipelineCatalog
from ddeutil.workflow.scheduling.tick_report import TickReport
from ddeutil.workflow.scheduling.tick_summary import TickSummary
from ddeutil.workflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc)
SCHEDULER = "ddeutil.workflow.scheduling.scheduler"


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level = root.level
    yield root
    for handler in [h for h in root.handlers if getattr(h, "_ddeutil_workflow", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def _release(minute: int) -> Release:
    at = T0 + timedelta(minutes=minute)
    return Release(pipeline="p", schedule="* * * * *@UTC", at=at, logical_date=at)


def test_idle_ticks_log_one_debug_line_each_and_one_info_line_per_hour(
    caplog: pytest.LogCaptureFixture,
) -> None:
    summary = TickSummary()
    with caplog.at_level(logging.DEBUG, logger=SCHEDULER):
        for minute in range(60):
            due = (_release(minute),) if minute in (5, 6) else ()
            dispatched = ("r1",) if minute == 5 else ()
            report = TickReport(
                now=T0 + timedelta(minutes=minute), watermark=None, due=due, dispatched=dispatched
            )
            summary.tick(report)
        assert [r.levelno for r in caplog.records] == [logging.DEBUG] * 60
        assert caplog.records[0].getMessage() == (
            "tick at 2024-01-01T10:00:00+00:00: 0 release(s) due, 0 run(s) dispatched, "
            "0 held for a slot, 0 recorded SKIPPED, 0 missed release(s) skipped by catch-up, "
            "0 run event(s)"
        )
        caplog.clear()
        summary.tick(TickReport(now=T0 + timedelta(hours=1), watermark=None))
        summary.tick(TickReport(now=T0 + timedelta(hours=1, minutes=1), watermark=None))
        summary.tick(TickReport(now=T0, watermark=None, active=False))  # not counted
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == [
        "61 tick(s) since 2024-01-01T10:00:00+00:00: 2 release(s) due, 1 run(s) dispatched, "
        "0 held for a slot, 0 recorded SKIPPED, 0 missed release(s) skipped by catch-up, "
        "0 run event(s)"
    ]
    assert len(caplog.records) == 3  # two DEBUG lines and the summary


def test_the_conf_loaded_line_counts_schedules_as_workflow_list_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(REPO)})
    loader = Loader.from_settings(settings)
    catalog = PipelineCatalog(loader, settings)
    with caplog.at_level(logging.INFO, logger=catalog_module.__name__):
        catalog.reload(force=True)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("conf ")]
    templates = len(loader.of_kind("on"))  # `workflow list`: "schedules (N):"
    pipelines = len(loader.of_kind("pipeline"))
    assert line.startswith(f"conf loaded: {pipelines} pipeline(s) (")
    assert line.endswith(f"), {templates} schedule template(s)")


def test_a_caught_up_release_reads_plainly(caplog: pytest.LogCaptureFixture) -> None:
    from ddeutil.workflow.schedules.planner import Plan
    from ddeutil.workflow.scheduling.tick_report import TickLog, log_tick

    release = _release(0)
    late = Release(
        pipeline=release.pipeline,
        schedule=release.schedule,
        at=release.at,
        logical_date=release.logical_date,
        reason="a missed release, run late (catchup: latest)",
    )
    with caplog.at_level(logging.INFO, logger=SCHEDULER):
        log_tick(Plan((late, release), (), ()), TickLog())
    assert [r.getMessage() for r in caplog.records] == [
        "release due: a missed release, run late (catchup: latest); schedule * * * * *@UTC, "
        "logical date 2024-01-01T10:00:00+00:00",
        "release due; schedule * * * * *@UTC, logical date 2024-01-01T10:00:00+00:00",
    ]


def test_json_lines_drop_uvicorns_color_message(root: logging.Logger) -> None:
    out = io.StringIO()
    handler = configure_logging(fmt="json", stream=out)
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 42, extra={"color_message": "Started \x1b[36m%d\x1b[0m"}
    )
    handler.flush()
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["message"] == "Started server process [42]"
    assert "color_message" not in line
    assert "\x1b" not in out.getvalue()


def test_conf_error_lines_omit_unknown_locations(root: logging.Logger) -> None:
    out = io.StringIO()
    handler = configure_logging(fmt="json", stream=out)
    error = ConfigError("a broken conf folder", template="t1")
    logging.getLogger(catalog_module.__name__).error(
        "conf error: %s", error, extra=catalog_module._where(error)
    )
    handler.flush()
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["template"] == "t1"
    assert "file" not in line
    assert "key" not in line
