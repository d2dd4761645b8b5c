"""Conversions from engine and store records to the API's response models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from ..engine.pipeline import Pipeline
from ..errors import ConfigError
from ..schedules.jitter import start_of
from ..schedules.on import On
from ..store.base import RunRecord
from ..store.fleet import OwnerRecord, daemon_views
from .models import (
    LogLine,
    ParamInfo,
    PipelineDetail,
    PipelineSummary,
    ReleaseInfo,
    RunDetail,
    RunError,
    RunSummary,
    ScheduleInfo,
    SchedulerInfo,
)

__all__ = [
    "log_line",
    "next_fire_times",
    "pipeline_detail",
    "pipeline_summary",
    "run_detail",
    "run_summary",
    "scheduler_info",
]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def next_fire_times(schedule: On, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times strictly after ``now`` (fewer near year 9999)."""
    found: list[datetime] = []
    times = schedule.fire_times(now)
    try:
        for at in times:
            if len(found) == count:
                break
            found.append(at)
    except (ConfigError, ValueError, OverflowError):
        pass
    return found


def _params(pipeline: Pipeline) -> list[ParamInfo]:
    infos = []
    for name, param in pipeline.params.params.items():
        options = getattr(param, "options", None)
        infos.append(
            ParamInfo(
                name=name,
                type=param.type,
                required=param.required and param.default is None,
                default=_jsonable(param.default),
                desc=param.desc,
                options=list(options) if options is not None else None,
            )
        )
    return infos


def _schedule_info(pipeline: str, on: On, now: datetime, count: int) -> ScheduleInfo:
    """One schedule of ``pipeline``: its next fire times and when those releases start."""
    times = next_fire_times(on, now, count)
    starts = [start_of(pipeline, on.key, at, on.jitter) for at in times]
    return ScheduleInfo(
        name=on.name,
        cron=str(on.cronjob),
        written=on.written,
        timezone=on.timezone.key,
        next=times,
        jitter=on.jitter,
        starts=starts,
    )


def _summary_fields(pipeline: Pipeline, now: datetime, count: int) -> dict[str, Any]:
    return {
        "name": pipeline.name,
        "desc": pipeline.desc,
        "params": _params(pipeline),
        "schedules": [_schedule_info(pipeline.name, on, now, count) for on in pipeline.on],
        "scheduled": bool(pipeline.on) and not pipeline.warnings(),
    }


def pipeline_summary(pipeline: Pipeline, now: datetime, count: int) -> PipelineSummary:
    """The list entry of ``pipeline`` with ``count`` next fire times per schedule."""
    return PipelineSummary(**_summary_fields(pipeline, now, count))


def pipeline_detail(pipeline: Pipeline, now: datetime, count: int) -> PipelineDetail:
    """Everything the API shows about one pipeline."""
    return PipelineDetail(
        **_summary_fields(pipeline, now, count),
        params_schema=pipeline.params.json_schema(),
        jobs=list(pipeline.jobs),
        concurrency=pipeline.concurrency,
        catchup=pipeline.catchup,
        warnings=pipeline.warnings(),
    )


def _summary_values(record: RunRecord) -> dict[str, Any]:
    release = None
    if record.release is not None:
        release = ReleaseInfo(schedule=record.release.schedule, at=record.release.at)
    return {
        "run_id": record.run_id,
        "pipeline": record.pipeline,
        "trigger": record.trigger,
        "status": record.status,
        "created": record.created,
        "started": record.started,
        "ended": record.ended,
        "logical_date": record.logical_date,
        "release": release,
        "error": record.error,
        "owner": record.owner,
        "rerun_of": record.rerun_of,
    }


def run_summary(record: RunRecord) -> RunSummary:
    """A history entry (no params, context or errors)."""
    return RunSummary(**_summary_values(record))


def run_detail(record: RunRecord) -> RunDetail:
    """One run in full (masking happens when the response is rendered)."""
    return RunDetail(
        **_summary_values(record),
        params=dict(record.params),
        context=dict(record.context) if record.context is not None else None,
        errors=[
            RunError(kind=e.kind, message=e.message, job=e.job, stage=e.stage)
            for e in record.errors
        ],
        idempotency_key=record.idempotency_key,
    )


def scheduler_info(
    record: OwnerRecord, *, now: datetime, lease: timedelta, stale: timedelta
) -> SchedulerInfo:
    """How one daemon stands at ``now`` (policy: :func:`~ddeutil.workflow.store.fleet.daemon_views`)."""
    (view,) = daemon_views([record], now=now, lease=lease, stale=stale)
    return SchedulerInfo(
        owner=record.owner,
        host=record.host,
        pid=record.pid,
        state=view.state,
        started=record.started,
        last_heartbeat=record.heartbeat,
        age_seconds=view.age,
        stale=view.stale,
        taken_by=record.taken_by,
        ended=record.ended,
        current=view.current,
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def log_line(raw: str) -> LogLine:
    """One line of a per-run log file (JSON lines); other text is kept as the message."""
    text = raw.rstrip("\r\n")
    try:
        data = json.loads(text)
    except ValueError:
        return LogLine(message=text)
    if not isinstance(data, dict):
        return LogLine(message=text)
    return LogLine(
        time=_text(data.get("time")),
        level=_text(data.get("level")),
        message=str(data.get("message", "")),
        pipeline=_text(data.get("pipeline")),
        job=_text(data.get("job")),
        stage=_text(data.get("stage")),
    )


def read_log(lines: Iterator[str], offset: int, limit: int) -> tuple[list[LogLine], int]:
    """Lines ``offset`` to ``offset + limit`` of a log, and how many lines it has."""
    window: list[LogLine] = []
    total = 0
    for raw in lines:
        if offset <= total < offset + limit:
            window.append(log_line(raw))
        total += 1
    return window, total
