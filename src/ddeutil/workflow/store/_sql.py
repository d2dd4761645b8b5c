"""SQL shared by the SQLite and PostgreSQL stores: schema, statements, row mapping.

Statements are written once with ``?`` placeholders; :class:`Dialect` turns them
into the driver's style and says how timestamps and JSON travel. Tables:

* ``workflow_runs``: one row per run. A scheduled run carries its release
  (``pipeline, release_schedule, release_at``) under a UNIQUE constraint: that
  constraint *is* the release claim, so claiming and recording the PENDING run
  are one insert. Manual and API runs leave the release NULL (NULLs never
  collide). ``idempotency_key`` is UNIQUE too.
* ``workflow_state``: named instants with an owner (``watermark``, ``heartbeat``).
* ``workflow_meta``: ``schema_version``, for later migrations.
"""

# ruff: noqa: S608 - statements are joined from constant fragments; every value
# travels as a bound parameter.
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..result import Status
from ._codec import load_errors
from .base import NewRun, ReleaseKey, RunFilter, RunRecord, TriggerKind

__all__ = ["SCHEMA_VERSION", "Dialect", "migrations"]

SCHEMA_VERSION = 1
"""The schema version this code writes; a newer store is refused."""

COLUMNS = (
    "run_id",
    "pipeline",
    "trigger_kind",
    "status",
    "release_schedule",
    "release_at",
    "logical_date",
    "params",
    "context",
    "errors",
    "created",
    "started",
    "ended",
    "error",
    "idempotency_key",
)
_COLS = ", ".join(COLUMNS)

META_DDL = "CREATE TABLE IF NOT EXISTS workflow_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

_V1 = (
    """CREATE TABLE IF NOT EXISTS workflow_runs (
        run_id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        trigger_kind TEXT NOT NULL,
        status TEXT NOT NULL,
        release_schedule TEXT,
        release_at {ts},
        logical_date {ts},
        params {json} NOT NULL,
        context {json},
        errors {json} NOT NULL,
        created {ts} NOT NULL,
        started {ts},
        ended {ts},
        error TEXT,
        idempotency_key TEXT,
        CONSTRAINT workflow_runs_release_uq UNIQUE (pipeline, release_schedule, release_at),
        CONSTRAINT workflow_runs_idempotency_uq UNIQUE (idempotency_key)
    )""",
    "CREATE INDEX IF NOT EXISTS workflow_runs_created_ix ON workflow_runs (created, run_id)",
    "CREATE INDEX IF NOT EXISTS workflow_runs_pipeline_ix "
    "ON workflow_runs (pipeline, created, run_id)",
    "CREATE INDEX IF NOT EXISTS workflow_runs_status_ix ON workflow_runs (status, created, run_id)",
    "CREATE INDEX IF NOT EXISTS workflow_runs_pipeline_status_ix "
    "ON workflow_runs (pipeline, status, created, run_id)",
    """CREATE TABLE IF NOT EXISTS workflow_state (
        name TEXT PRIMARY KEY,
        at {ts} NOT NULL,
        owner TEXT NOT NULL
    )""",
)


def migrations(ts_type: str, json_type: str) -> list[list[str]]:
    """Return the DDL of each schema version (index 0 brings an empty store to 1)."""
    return [[stmt.format(ts=ts_type, json=json_type) for stmt in _V1]]


INSERT_RUN = f"INSERT INTO workflow_runs ({_COLS}) VALUES ({', '.join('?' * len(COLUMNS))})"
CLAIM = INSERT_RUN + " ON CONFLICT (pipeline, release_schedule, release_at) DO NOTHING"
GET_RUN = f"SELECT {_COLS} FROM workflow_runs WHERE run_id = ?"
RUN_BY_KEY = "SELECT run_id FROM workflow_runs WHERE idempotency_key = ?"
MARK_RUNNING = (
    "UPDATE workflow_runs SET status = 'RUNNING', started = ? "
    "WHERE run_id = ? AND status = 'PENDING'"
)
FINISH = (
    "UPDATE workflow_runs SET status = ?, ended = ?, context = COALESCE(?, context), "
    "errors = ?, error = ? WHERE run_id = ? AND status IN ('PENDING', 'RUNNING')"
)
PENDING_ORDER = "ORDER BY COALESCE(release_at, created), created, run_id"
RUNNING_ORDER = "ORDER BY COALESCE(started, created), run_id"
FAIL_RUNNING = (
    "UPDATE workflow_runs SET status = 'FAILED', ended = ?, errors = ?, error = ? "
    "WHERE status = 'RUNNING'"
)
GET_STATE = "SELECT at, owner FROM workflow_state WHERE name = ?"
SET_STATE = (
    "INSERT INTO workflow_state (name, at, owner) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET at = excluded.at, owner = excluded.owner"
)
GET_VERSION = "SELECT value FROM workflow_meta WHERE key = 'schema_version'"
SET_VERSION = (
    "INSERT INTO workflow_meta (key, value) VALUES ('schema_version', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


@dataclass(frozen=True)
class Dialect:
    """How one driver spells placeholders and carries timestamps and JSON.

    Args:
        placeholder: The driver's parameter marker (``?`` or ``%s``).
        ts_in: Turns an aware datetime into the value the driver stores.
        ts_out: Turns a stored timestamp back into an aware UTC datetime.
        json_out: Turns a stored JSON column into Python values.
        ts_type: The column type of timestamps (see :func:`migrations`).
        json_type: The column type of JSON values.
    """

    placeholder: str
    ts_in: Callable[[datetime], Any]
    ts_out: Callable[[Any], datetime]
    json_out: Callable[[Any], Any]
    ts_type: str
    json_type: str

    def sql(self, statement: str) -> str:
        """Return ``statement`` with ``?`` markers in this driver's style."""
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def opt_ts(self, value: datetime | None) -> Any:
        return None if value is None else self.ts_in(value)

    def opt_ts_out(self, value: Any) -> datetime | None:
        return None if value is None else self.ts_out(value)

    def run_values(self, run: NewRun) -> tuple[Any, ...]:
        """Values of :data:`INSERT_RUN` for a new PENDING run."""
        return (
            run.run_id,
            run.pipeline,
            run.trigger.value,
            Status.PENDING.value,
            None if run.release is None else run.release.schedule,
            None if run.release is None else self.ts_in(run.release.at),
            self.opt_ts(run.logical_date),
            run.params,
            None,
            "[]",
            self.ts_in(run.created),
            None,
            None,
            None,
            run.idempotency_key,
        )

    def record(self, row: Sequence[Any]) -> RunRecord:
        """Map a row of :data:`COLUMNS` to a :class:`RunRecord`."""
        (
            run_id,
            pipeline,
            trigger,
            status,
            schedule,
            release_at,
            logical_date,
            params,
            context,
            errors,
            created,
            started,
            ended,
            error,
            key,
        ) = row
        release = None
        if release_at is not None:
            release = ReleaseKey(pipeline, schedule, self.ts_out(release_at))
        return RunRecord(
            run_id=run_id,
            pipeline=pipeline,
            trigger=TriggerKind(trigger),
            status=Status(status),
            release=release,
            logical_date=self.opt_ts_out(logical_date),
            params=self.json_out(params),
            context=None if context is None else self.json_out(context),
            errors=load_errors(errors),
            created=self.ts_out(created),
            started=self.opt_ts_out(started),
            ended=self.opt_ts_out(ended),
            error=error,
            idempotency_key=key,
        )

    def where(self, runs: RunFilter) -> tuple[str, list[Any]]:
        """Build a ``WHERE`` clause (``?`` markers) and its values for a run filter."""
        parts: list[str] = []
        values: list[Any] = []
        if runs.pipeline is not None:
            parts.append("pipeline = ?")
            values.append(runs.pipeline)
        statuses = runs.statuses
        if statuses is not None:
            if not statuses:
                parts.append("1 = 0")
            else:
                parts.append(f"status IN ({', '.join('?' * len(statuses))})")
                values.extend(s.value for s in statuses)
        if runs.since is not None:
            parts.append("created >= ?")
            values.append(self.ts_in(runs.since))
        if runs.until is not None:
            parts.append("created < ?")
            values.append(self.ts_in(runs.until))
        if runs.trigger is not None:
            parts.append("trigger_kind = ?")
            values.append(runs.trigger.value)
        return (f"WHERE {' AND '.join(parts)}" if parts else ""), values

    def list_query(self, where: str) -> str:
        return self.sql(
            f"SELECT {_COLS} FROM workflow_runs {where} "
            "ORDER BY created DESC, run_id DESC LIMIT ? OFFSET ?"
        )

    def count_query(self, where: str) -> str:
        return self.sql(f"SELECT COUNT(*) FROM workflow_runs {where}")

    def status_query(self, status: Status, trigger: TriggerKind | None) -> tuple[str, list[Any]]:
        """SELECT the runs of one status (optionally one trigger) in their order."""
        where, values = self.where(RunFilter(status=status, trigger=trigger))
        order = PENDING_ORDER if status is Status.PENDING else RUNNING_ORDER
        return self.sql(f"SELECT {_COLS} FROM workflow_runs {where} {order}"), values
