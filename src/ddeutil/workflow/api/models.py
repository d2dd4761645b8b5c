"""The REST API's request and response bodies (pydantic), one class per shape.

Every route declares one of these as its ``response_model``, so the OpenAPI
document at ``/docs`` describes exactly what is returned. Every error (401, 404,
409, 413, 422, 503, ...) has the one :class:`ErrorResponse` shape::

    {"error": {"code": "invalid_params", "message": "...",
               "details": [{"location": "params", "name": "run-date", "message": "..."}],
               "run_id": null}}

Times are ISO 8601 with an offset (UTC). Values read from the run store are
plain JSON (a ``datetime`` param comes back as its ISO text).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..result import Status
from ..settings import MAX_RETENTION_DAYS
from ..store.base import TriggerKind

__all__ = [
    "MAX_PARAM_DEPTH",
    "BackfillAccepted",
    "BackfillPlan",
    "BackfillRelease",
    "BackfillRequest",
    "CancelRequest",
    "CancelResponse",
    "ErrorDetail",
    "ErrorInfo",
    "ErrorResponse",
    "HealthResponse",
    "LogLine",
    "ParamInfo",
    "PipelineDetail",
    "PipelineList",
    "PipelineSummary",
    "PruneRequest",
    "PruneResponse",
    "ReleaseInfo",
    "RunDetail",
    "RunError",
    "RunLogs",
    "RunPage",
    "RunSummary",
    "ScheduleInfo",
    "SchedulerHealth",
    "SchedulerInfo",
    "SchedulerState",
    "StoreHealth",
    "TemplateProblem",
    "TriggerRequest",
    "TriggerResponse",
]

MAX_PARAM_DEPTH = 32
"""Deepest nesting of lists/objects accepted inside one param value."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


# ------------------------------------------------------------------------ errors


class ErrorDetail(_Model):
    """One problem of a request: where it is and what is wrong."""

    location: str = Field(
        description="`params` (a pipeline param), `path`, `query`, `header` or `body`"
    )
    name: str | None = Field(default=None, description="the param, field or header concerned")
    message: str


class ErrorInfo(_Model):
    """What went wrong."""

    code: str = Field(
        description="stable machine-readable code, e.g. `unauthorized`, `not_found`, "
        "`invalid_params`, `validation_error`, `duplicate_run`, `payload_too_large`"
    )
    message: str = Field(description="human-readable summary")
    details: list[ErrorDetail] = Field(default_factory=list)
    run_id: str | None = Field(
        default=None, description="the existing run, for `duplicate_run` (409)"
    )


class ErrorResponse(_Model):
    """The body of every error response."""

    error: ErrorInfo


# --------------------------------------------------------------------- pipelines


class ParamInfo(_Model):
    """One declared param of a pipeline."""

    name: str
    type: str = Field(description="str, int, float, bool, date, datetime, choice, list or map")
    required: bool = Field(description="must be given (required and without a default)")
    default: Any = None
    desc: str | None = None
    options: list[Any] | None = Field(default=None, description="allowed values of a choice")


class ScheduleInfo(_Model):
    """One schedule (`on` entry) of a pipeline and its next fire times."""

    name: str | None = Field(default=None, description="the `on` template name, if any")
    cron: str = Field(description="the cron expression, with any H item resolved to numbers")
    written: str | None = Field(
        default=None, description="the expression as written, when it has H items"
    )
    timezone: str
    next: list[datetime] = Field(description="next fire times, aware UTC, increasing")
    jitter: int = Field(
        default=0, description="seconds a release may start after its fire time (0: none)"
    )
    starts: list[datetime] = Field(
        default_factory=list,
        description="when the releases at `next` start (fire time plus the jitter offset), "
        "aware UTC; equal to `next` without jitter",
    )


class PipelineSummary(_Model):
    """A pipeline as listed."""

    name: str
    desc: str | None = None
    params: list[ParamInfo]
    schedules: list[ScheduleInfo]
    scheduled: bool = Field(
        description="the daemon releases it (it has schedules and every param a default)"
    )
    paused: bool = Field(
        default=False, description="paused: its releases are recorded skipped (paused)"
    )
    paused_at: datetime | None = Field(default=None, description="when it was paused")


class PipelineDetail(PipelineSummary):
    """One pipeline with its params schema and jobs."""

    params_schema: dict[str, Any] = Field(
        description="JSON Schema of the `params` object a trigger sends"
    )
    jobs: list[str] = Field(description="job ids")
    concurrency: str
    catchup: str
    warnings: list[str] = Field(default_factory=list)


class TemplateProblem(_Model):
    """A template in the conf folder that cannot be used."""

    template: str | None = None
    file: str | None = Field(default=None, description="relative to the conf folder")
    key: str | None = None
    message: str


class PipelineList(_Model):
    """Every usable pipeline, sorted by name, and the templates that are broken."""

    items: list[PipelineSummary]
    total: int
    problems: list[TemplateProblem] = Field(default_factory=list)


class UnpauseRequest(_Model):
    """The optional body of an unpause."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    catchup: bool = Field(
        default=False,
        description="also run the releases the pause skipped, in the API process (202)",
    )
    since: str | None = Field(
        default=None,
        max_length=64,
        description="with catchup: the releases skipped (paused) since this instant (ISO 8601); "
        "default since the pause began, or ever when the pipeline is no longer paused",
    )
    parallel: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="with catchup: runs at once (default 1; required above 1000 releases)",
    )


class PauseResponse(_Model):
    """A pipeline's pause state after a pause or an unpause."""

    pipeline: str
    paused: bool
    paused_at: datetime | None = Field(
        description="when it was paused (after an unpause: when the pause began, if any)"
    )
    changed: bool = Field(description="false when it already was in the asked state")
    catchup: int | None = Field(
        default=None, description="releases the pause skipped, now being run (202)"
    )
    follow: str | None = Field(default=None, description="where the catch-up's runs are listed")


# -------------------------------------------------------------------------- runs


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of lists/dicts in ``value``, stopping early beyond ``limit``."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


class TriggerRequest(_Model):
    """The body of a trigger: values of the pipeline's declared params."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    params: dict[str, Any] = Field(
        default_factory=dict,
        description='declared params only; values are coerced as the CLI does (`"5"` to 5)',
    )

    @field_validator("params")
    @classmethod
    def _not_too_deep(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value, MAX_PARAM_DEPTH) > MAX_PARAM_DEPTH:
            raise ValueError(f"param values nest deeper than {MAX_PARAM_DEPTH} levels")
        return value


class RerunRequest(_Model):
    """The body of a rerun (every field optional)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_job: str | None = Field(
        default=None,
        max_length=200,
        description="rerun this job and its downstream too, even if it succeeded",
    )
    force: bool = Field(
        default=False,
        description="rerun even though the template changed (removed jobs, changed needs)",
    )


class TriggerResponse(_Model):
    """A run accepted for execution (202)."""

    run_id: str
    pipeline: str
    status: Status = Field(description="PENDING when accepted")
    location: str = Field(description="URL path of the run, as in the Location header")


class RunError(_Model):
    """One error of a run, with the job and stage it came from."""

    kind: str
    message: str
    job: str | None = None
    stage: str | None = None


class ReleaseInfo(_Model):
    """The scheduled release a run was claimed for."""

    schedule: str
    at: datetime


class RunSummary(_Model):
    """A run as listed in the history."""

    run_id: str
    pipeline: str
    trigger: TriggerKind
    status: Status
    created: datetime
    started: datetime | None = None
    ended: datetime | None = None
    logical_date: datetime | None = None
    release: ReleaseInfo | None = None
    error: str | None = Field(default=None, description="one-line reason of a failure")
    owner: str | None = Field(
        default=None,
        description="the scheduler daemon that claimed or adopted the run (see `/health`); "
        "null for API and manual runs",
    )
    rerun_of: str | None = Field(default=None, description="the run this one reruns, if any")


class RunDetail(RunSummary):
    """One run with its params, result context and errors (secrets masked)."""

    params: dict[str, Any]
    context: dict[str, Any] | None = Field(
        default=None,
        description='the result context: {"params": ..., "jobs": {job: {"stages": '
        '{id: {"outputs": ...}}}}}; null until the run ends',
    )
    errors: list[RunError] = Field(default_factory=list)
    idempotency_key: str | None = None


class RunPage(_Model):
    """One page of the run history, newest first."""

    items: list[RunSummary]
    total: int = Field(description="runs matching the filters, on every page")
    limit: int
    offset: int


class LogLine(_Model):
    """One line of a run's log file."""

    time: str | None = None
    level: str | None = None
    message: str
    pipeline: str | None = None
    job: str | None = None
    stage: str | None = None


class RunLogs(_Model):
    """A window of a run's log lines, oldest first."""

    run_id: str
    lines: list[LogLine]
    total: int = Field(description="lines in the log file")
    offset: int
    limit: int


# ------------------------------------------------------------------------ health


class StoreHealth(_Model):
    reachable: bool


class SchedulerHealth(_Model):
    """The scheduler daemon's last heartbeat in the shared run store."""

    last_heartbeat: datetime
    owner: str
    age_seconds: float
    stale: bool = Field(description="older than WORKFLOW_APP_HEALTH_STALE seconds")


SchedulerState = Literal["live", "unresponsive", "stopped", "lost"]


class SchedulerInfo(_Model):
    """One scheduler daemon the run store knows, as it stands now."""

    owner: str = Field(description="the daemon's owner id, as in a run's `owner`")
    host: str
    pid: int
    state: SchedulerState = Field(
        description="`live`; `unresponsive`: live but silent for longer than "
        "WORKFLOW_APP_LEASE_SECONDS (another daemon takes its work over); `stopped`: it "
        "left cleanly; `lost`: its work was taken over"
    )
    started: datetime
    last_heartbeat: datetime
    age_seconds: float = Field(description="seconds since its last heartbeat")
    stale: bool = Field(description="its last heartbeat is older than WORKFLOW_APP_HEALTH_STALE")
    taken_by: str | None = Field(
        default=None, description="the daemon that adopted its work, once stopped or lost"
    )
    ended: datetime | None = Field(default=None, description="when it stopped or was lost")
    current: bool = Field(
        description="false for a daemon that stopped or was lost more than "
        "WORKFLOW_APP_HEALTH_STALE seconds ago (listed for the record only)"
    )


class HealthResponse(_Model):
    """``ok``: the store answers; ``degraded``: it does, and daemons are known, but none
    is live with a heartbeat fresher than WORKFLOW_APP_HEALTH_STALE; ``unavailable``
    (HTTP 503): the store does not answer or the API is not started."""

    status: Literal["ok", "degraded", "unavailable"]
    version: str
    store: StoreHealth
    scheduler: SchedulerHealth | None = Field(
        default=None,
        description="the newest heartbeat of any daemon; null when no daemon ever beat on "
        "this store",
    )
    schedulers: list[SchedulerInfo] = Field(
        default_factory=list,
        description="every daemon the store knows, newest heartbeat first",
    )
    workers: list[SchedulerInfo] = Field(
        default_factory=list,
        description="every `workflow worker` (Celery executor) the store knows, newest "
        "heartbeat first; a lost worker's running runs were recorded FAILED (worker lost)",
    )
    runs_in_flight: int = Field(description="API runs waiting or running in this process")


# --------------------------------------------------------------------- retention


class PruneRequest(_Model):
    """The body of a prune: how old a run must be to go, and whether to only count."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    older_than_days: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RETENTION_DAYS,
        allow_inf_nan=False,
        description="age in days (may be fractional); default WORKFLOW_RUN_RETENTION_DAYS",
    )
    dry_run: bool = Field(default=False, description="count what would go, delete nothing")


class PruneResponse(_Model):
    """What a prune did (200). Running and pending runs and each pipeline's newest run
    are never pruned; a pruned release can be claimed again."""

    before: datetime = Field(description="runs created before this instant were pruned")
    dry_run: bool
    runs: int = Field(description="ended runs deleted (on a dry run: that would be)")
    log_files: int | None = Field(description="per-run log files removed; null on a dry run")
    batches: int = Field(description="delete transactions")
    elapsed_seconds: float
    longest_batch_seconds: float = Field(description="the longest delete transaction")


class CancelRequest(_Model):
    """The optional body of a cancel: why (recorded with the run)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str | None = Field(
        default=None, max_length=1000, description="why; default `cancelled by request`"
    )


class CancelResponse(_Model):
    """A cancel accepted (202): the run was PENDING and is now CANCELLED, or it is
    RUNNING and whoever executes it was asked (``cancel_requested``)."""

    run_id: str
    status: Status = Field(description="CANCELLED (it was PENDING) or RUNNING (asked)")
    cancel_requested: bool = Field(
        description="true when the run is RUNNING and its executor was asked to cancel it; "
        "it is recorded CANCELLED once that process notices (about a second)"
    )
    owner: str | None = Field(
        default=None,
        description="who executes the run (daemon, Celery worker, `workflow run` client); "
        "null for an API run",
    )


# ---------------------------------------------------------------------- backfill


class BackfillRequest(_Model):
    """The body of a backfill: the range ``[start, end)`` and how many runs at once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: str = Field(
        max_length=64, description="first instant, inclusive (ISO 8601; naive: the schedules' zone)"
    )
    end: str = Field(max_length=64, description="last instant, exclusive (ISO 8601, or `now`)")
    parallel: int | None = Field(
        default=None,
        description="runs at once (default 1; required above 1000 releases; at most 256)",
    )
    dry_run: bool = Field(default=False, description="list the releases, claim nothing")


class BackfillRelease(_Model):
    """One release of a backfill's range and the run that claimed it, if any."""

    release: datetime = Field(description="the release instant in its schedule's zone")
    schedule: str
    claimed: bool
    run_id: str | None = None
    status: Status | None = None
    claimed_by: TriggerKind | None = Field(
        default=None, description="`schedule` (the daemon) or `backfill`"
    )


class BackfillPlan(_Model):
    """A dry run (200): what a backfill would run and what is already claimed."""

    pipeline: str
    start: datetime
    end: datetime
    zone: str
    total: int
    would_run: int
    claimed: int
    releases: list[BackfillRelease] = Field(description="oldest first, at most 1000")
    truncated: bool = Field(description="more releases than listed")


class BackfillAccepted(_Model):
    """A backfill started in the API process (202)."""

    pipeline: str
    start: datetime
    end: datetime
    zone: str
    parallel: int
    total: int
    claimed: int = Field(description="releases already claimed (skipped)")
    to_run: int
    follow: str = Field(description="where its runs are listed")
