"""SQL shared by the SQLite and PostgreSQL stores: schema, statements, row mapping.

Statements are written once with ``?`` placeholders; :class:`Dialect` turns them
into the driver's style and says how timestamps and JSON travel. Tables:

* ``workflow_runs``: one row per run. A scheduled run carries its release
  (``pipeline, release_schedule, release_at``) under a UNIQUE constraint: that
  constraint *is* the release claim, so claiming and recording the PENDING run
  are one insert. Manual and API runs leave the release NULL (NULLs never
  collide). ``idempotency_key`` is UNIQUE too.
* ``workflow_state``: named instants with an owner (the store's ``watermark``).
* ``workflow_owners`` (v2): one row per owner that ever joined (a scheduler
  daemon or, from v3, a worker: ``kind``): its heartbeat, state (live,
  stopped, lost) and who took its work over. A run's ``owner`` names the
  owner that holds it: the daemon that claimed a scheduled run, then the
  worker that started it, if any; ``admitted`` is set while a scheduled run
  holds one of its pipeline's slots (see :mod:`.fleet`).
* ``workflow_watermarks`` (v2): each pipeline's watermark; its row is also the
  pipeline's lock while its releases are claimed or admitted.
* ``workflow_run_logs`` (v3): the log of a run that executed on a Celery worker,
  saved when it ended, for readers on other machines.
* v4: a run's ``rerun_of`` (the run it reruns) and ``cancel_requested`` (when a
  cancel of the RUNNING run was asked; its executor polls for it), and
  ``workflow_pauses``: the paused pipelines, with when each was paused.
* ``workflow_outbox`` (v5): the notification outbox (see :mod:`.outbox`): one
  row per dedupe ``key``, its state (pending, sent, dead), attempts, when it is
  due, and the sender's lease (``lease_owner``, ``lease_until``).
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

SCHEMA_VERSION = 5
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
    "owner",
    "rerun_of",
    "cancel_requested",
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


_V2 = (
    "ALTER TABLE workflow_runs ADD COLUMN owner TEXT",
    "ALTER TABLE workflow_runs ADD COLUMN admitted {ts}",
    "CREATE INDEX IF NOT EXISTS workflow_runs_owner_ix ON workflow_runs (owner, status)",
    # The scheduled runs not ended yet, by pipeline: what slots and takeovers read.
    "CREATE INDEX IF NOT EXISTS workflow_runs_live_ix ON workflow_runs (pipeline, release_at) "
    "WHERE trigger_kind = 'schedule' AND status IN ('PENDING', 'RUNNING')",
    """CREATE TABLE IF NOT EXISTS workflow_owners (
        owner TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started {ts} NOT NULL,
        heartbeat {ts} NOT NULL,
        state TEXT NOT NULL,
        taken_by TEXT,
        ended {ts}
    )""",
    """CREATE TABLE IF NOT EXISTS workflow_watermarks (
        pipeline TEXT PRIMARY KEY,
        at {ts} NOT NULL
    )""",
    "DELETE FROM workflow_state WHERE name = 'heartbeat'",
)


_V3 = (
    "ALTER TABLE workflow_owners ADD COLUMN kind TEXT NOT NULL DEFAULT 'scheduler'",
    "CREATE TABLE IF NOT EXISTS workflow_run_logs (run_id TEXT PRIMARY KEY, text TEXT NOT NULL)",
)


_V4 = (
    "ALTER TABLE workflow_runs ADD COLUMN rerun_of TEXT",
    "ALTER TABLE workflow_runs ADD COLUMN cancel_requested {ts}",
    """CREATE TABLE IF NOT EXISTS workflow_pauses (
        pipeline TEXT PRIMARY KEY,
        paused_at {ts} NOT NULL
    )""",
)


_V5 = (
    """CREATE TABLE IF NOT EXISTS workflow_outbox (
        key TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        event TEXT NOT NULL,
        channel TEXT NOT NULL,
        target TEXT NOT NULL,
        payload TEXT NOT NULL,
        run_id TEXT,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        created {ts} NOT NULL,
        due {ts} NOT NULL,
        done {ts},
        last_error TEXT,
        lease_owner TEXT,
        lease_until {ts}
    )""",
    "CREATE INDEX IF NOT EXISTS workflow_outbox_due_ix ON workflow_outbox (state, due, key)",
)


def migrations(ts_type: str, json_type: str) -> list[list[str]]:
    """Return the DDL of each schema version (index ``n`` brings version ``n`` to ``n + 1``)."""
    versions = (_V1, _V2, _V3, _V4, _V5)
    return [[stmt.format(ts=ts_type, json=json_type) for stmt in v] for v in versions]


INSERT_RUN = f"INSERT INTO workflow_runs ({_COLS}) VALUES ({', '.join('?' * len(COLUMNS))})"
CLAIM = INSERT_RUN + " ON CONFLICT (pipeline, release_schedule, release_at) DO NOTHING"
GET_RUN = f"SELECT {_COLS} FROM workflow_runs WHERE run_id = ?"
RUN_BY_KEY = "SELECT run_id FROM workflow_runs WHERE idempotency_key = ?"
MARK_RUNNING = (
    "UPDATE workflow_runs SET status = 'RUNNING', started = ? "
    "WHERE run_id = ? AND status = 'PENDING'"
)
MARK_RUNNING_BY = (
    "UPDATE workflow_runs SET status = 'RUNNING', started = ?, owner = ? "
    "WHERE run_id = ? AND status = 'PENDING'"
)
FINISH = (
    "UPDATE workflow_runs SET status = ?, ended = ?, context = COALESCE(?, context), "
    "errors = ?, error = ? WHERE run_id = ? AND status IN ('PENDING', 'RUNNING')"
)
PENDING_ORDER = "ORDER BY COALESCE(release_at, created), created, run_id"
RUNNING_ORDER = "ORDER BY COALESCE(started, created), run_id"
_INTERRUPTED = "status = 'RUNNING' AND owner IS NULL"
FAIL_RUNNING = (
    "UPDATE workflow_runs SET status = 'FAILED', ended = ?, errors = ?, error = ? "
    f"WHERE {_INTERRUPTED}"
)
RUNNING_UNOWNED = f"SELECT run_id FROM workflow_runs WHERE {_INTERRUPTED}"
OWNED_BY = " AND owner = ?"
RELEASE_RUNS = (
    "SELECT run_id, trigger_kind, status, owner, release_at FROM workflow_runs "
    "WHERE pipeline = ? AND release_schedule = ? AND release_at IN "
)
RUN_STATES = "SELECT run_id, status, error, owner, started FROM workflow_runs WHERE run_id IN "
SAVE_LOG = (
    "INSERT INTO workflow_run_logs (run_id, text) VALUES (?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET text = excluded.text"
)
RUN_LOG = "SELECT text FROM workflow_run_logs WHERE run_id = ?"
# -- operations: cancel requests, pauses, retention --------------------------------
RUN_STATUS = "SELECT status FROM workflow_runs WHERE run_id = ?"
CANCEL_PENDING = (
    "UPDATE workflow_runs SET status = 'CANCELLED', ended = ?, errors = ?, error = ? "
    "WHERE run_id = ? AND status = 'PENDING'"
)
ASK_CANCEL = (
    "UPDATE workflow_runs SET cancel_requested = COALESCE(cancel_requested, ?) "
    "WHERE run_id = ? AND status = 'RUNNING'"
)
_ASKED = (
    "SELECT run_id FROM workflow_runs WHERE status = 'RUNNING' AND cancel_requested IS NOT NULL"
)
CANCEL_ASKED_BY = _ASKED + " AND owner = ? ORDER BY run_id"
CANCEL_ASKED_UNOWNED = _ASKED + " AND owner IS NULL ORDER BY run_id"
PAUSE = (
    "INSERT INTO workflow_pauses (pipeline, paused_at) VALUES (?, ?) "
    "ON CONFLICT (pipeline) DO NOTHING"
)
PAUSED_AT = "SELECT paused_at FROM workflow_pauses WHERE pipeline = ?"
UNPAUSE = "DELETE FROM workflow_pauses WHERE pipeline = ?"
PAUSED = "SELECT pipeline, paused_at FROM workflow_pauses ORDER BY pipeline"
SKIPPED_FOR = (
    "SELECT release_schedule, release_at FROM workflow_runs WHERE pipeline = ? "
    "AND status = 'SKIPPED' AND error = ? AND release_at >= ? AND release_at < ? "
    "ORDER BY release_at, release_schedule LIMIT ?"
)
DROP_SKIPPED = (
    "DELETE FROM workflow_runs WHERE pipeline = ? AND release_schedule = ? AND release_at = ? "
    "AND status = 'SKIPPED' AND error = ?"
)
# Each pipeline's newest run: the greatest (created, run_id) of its rows.
NEWEST = (
    "SELECT r.pipeline, MAX(r.run_id) FROM workflow_runs r JOIN "
    "(SELECT pipeline, MAX(created) AS created FROM workflow_runs GROUP BY pipeline) n "
    "ON r.pipeline = n.pipeline AND r.created = n.created GROUP BY r.pipeline"
)
_ENDED = "status IN ('SUCCESS', 'FAILED', 'SKIPPED', 'CANCELLED')"
PRUNE_CANDIDATES = (
    f"SELECT run_id FROM workflow_runs WHERE created < ? AND {_ENDED} "
    "ORDER BY created, run_id LIMIT ?"
)
PRUNE_RUNS = f"DELETE FROM workflow_runs WHERE {_ENDED} AND run_id IN "
PRUNE_LOGS = "DELETE FROM workflow_run_logs WHERE run_id IN "
FINISH_OWNED = FINISH + " AND owner = ?"
# -- the notification outbox (see .outbox) ---------------------------------------
OUTBOX_COLS = (
    "key, pipeline, event, channel, target, payload, run_id, state, attempts, created, due, "
    "done, last_error"
)
ADD_NOTICE = (
    "INSERT INTO workflow_outbox (key, pipeline, event, channel, target, payload, run_id, "
    "state, attempts, created, due) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?) "
    "ON CONFLICT (key) DO NOTHING"
)
PIPELINE_OF = "SELECT pipeline FROM workflow_runs WHERE run_id = ?"
# The pipeline's previous run that ended SUCCESS or FAILED, by end time.
PREVIOUS_END = (
    "SELECT status FROM workflow_runs WHERE pipeline = ? AND run_id <> ? "
    "AND status IN ('SUCCESS', 'FAILED') AND ended IS NOT NULL "
    "ORDER BY ended DESC, run_id DESC LIMIT 1"
)
DUE_NOTICES = (
    "SELECT key FROM workflow_outbox WHERE state = 'pending' AND due <= ? "
    "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY due, key LIMIT ?"
)
LEASE_NOTICES = (
    "UPDATE workflow_outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 "
    "WHERE state = 'pending' AND key IN "
)
NOTICES_IN = f"SELECT {OUTBOX_COLS} FROM workflow_outbox WHERE key IN "
NOTICE_SENT = (
    "UPDATE workflow_outbox SET state = 'sent', done = ?, lease_owner = NULL, "
    "lease_until = NULL WHERE key = ? AND state = 'pending'"
)
NOTICE_RETRY = (
    "UPDATE workflow_outbox SET due = ?, last_error = ?, lease_owner = NULL, "
    "lease_until = NULL WHERE key = ? AND state = 'pending'"
)
NOTICE_DEAD = (
    "UPDATE workflow_outbox SET state = 'dead', done = ?, last_error = ?, lease_owner = NULL, "
    "lease_until = NULL WHERE key = ? AND state = 'pending'"
)
LIST_NOTICES = f"SELECT {OUTBOX_COLS} FROM workflow_outbox ORDER BY created DESC, key DESC LIMIT ?"
PRUNE_NOTICE_KEYS = (
    "SELECT key FROM workflow_outbox WHERE state <> 'pending' AND created < ? "
    "ORDER BY created, key LIMIT ?"
)
PRUNE_NOTICES = "DELETE FROM workflow_outbox WHERE state <> 'pending' AND key IN "
GET_STATE = "SELECT at, owner FROM workflow_state WHERE name = ?"
SET_STATE = (
    "INSERT INTO workflow_state (name, at, owner) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET at = excluded.at, owner = excluded.owner"
)
# -- several daemons (see .fleet) ------------------------------------------------
_OWNER_COLS = "owner, host, pid, started, heartbeat, state, taken_by, ended, kind"
JOIN = (
    "INSERT INTO workflow_owners (owner, host, pid, started, heartbeat, state, kind) "
    "VALUES (?, ?, ?, ?, ?, 'live', ?) ON CONFLICT (owner) DO NOTHING"
)
HEARTBEAT = "UPDATE workflow_owners SET heartbeat = ? WHERE owner = ? AND state = 'live'"
LEAVE = "UPDATE workflow_owners SET state = 'stopped', ended = ? WHERE owner = ? AND state = 'live'"
OWNERS = f"SELECT {_OWNER_COLS} FROM workflow_owners ORDER BY heartbeat DESC, owner"
OWNER_LIVE = "SELECT 1 FROM workflow_owners WHERE owner = ? AND state = 'live'"
GONE = (
    f"SELECT {_OWNER_COLS} FROM workflow_owners WHERE taken_by IS NULL AND owner <> ? "
    "AND (state <> 'live' OR heartbeat < ?) ORDER BY heartbeat, owner"
)
# Every other scheduler, and the workers that are gone (a live worker runs on).
GONE_ALL = (
    f"SELECT {_OWNER_COLS} FROM workflow_owners WHERE taken_by IS NULL AND owner <> ? "
    "AND (kind = 'scheduler' OR state <> 'live' OR heartbeat < ?) ORDER BY heartbeat, owner"
)
TAKE_OWNER = (
    "UPDATE workflow_owners SET state = CASE WHEN state = 'live' THEN 'lost' ELSE state END, "
    "taken_by = ?, ended = COALESCE(ended, ?) "
    "WHERE owner = ? AND taken_by IS NULL AND state = ? AND heartbeat = ?"
)
PRUNE_OWNERS = "DELETE FROM workflow_owners WHERE taken_by IS NOT NULL AND ended < ?"
OWNED = (
    f"SELECT {_COLS} FROM workflow_runs WHERE owner = ? AND status = 'PENDING' "
    f"AND trigger_kind = 'schedule' {PENDING_ORDER}"
)
UNOWNED = (
    f"SELECT {_COLS} FROM workflow_runs WHERE owner IS NULL AND status = 'PENDING' "
    f"AND trigger_kind = 'schedule' {PENDING_ORDER}"
)
# An owner's started runs of any trigger (a worker holds manual and API runs too);
# the unowned ones of the schedule only (the others belong to whoever started them).
OWNED_RUNNING = "SELECT run_id FROM workflow_runs WHERE owner = ? AND status = 'RUNNING'"
UNOWNED_RUNNING = (
    "SELECT run_id FROM workflow_runs WHERE owner IS NULL AND status = 'RUNNING' "
    "AND trigger_kind = 'schedule'"
)
LOCK_RUNS = "SELECT run_id FROM workflow_runs WHERE run_id IN "
ADOPT = (
    "UPDATE workflow_runs SET owner = ?, admitted = NULL WHERE status = 'PENDING' AND run_id IN "
)
FAIL_IDS = (
    "UPDATE workflow_runs SET status = 'FAILED', ended = ?, errors = ?, error = ? "
    "WHERE status = 'RUNNING' AND run_id IN "
)
# A gone owner's runs of other triggers that never started (a backfill's, a
# client's): nobody else dispatches them, so they end with the owner.
OWNED_UNSTARTED = (
    "SELECT run_id FROM workflow_runs WHERE owner = ? AND status = 'PENDING' "
    "AND trigger_kind <> 'schedule'"
)
FAIL_PENDING_IDS = (
    "UPDATE workflow_runs SET status = 'FAILED', ended = ?, errors = ?, error = ? "
    "WHERE status = 'PENDING' AND run_id IN "
)
ENSURE_MARK = (
    "INSERT INTO workflow_watermarks (pipeline, at) VALUES (?, ?) ON CONFLICT (pipeline) DO NOTHING"
)
ADVANCE_MARKS = "UPDATE workflow_watermarks SET at = ? WHERE at < ? AND pipeline IN "
MARKS_BEFORE = "SELECT pipeline, at FROM workflow_watermarks WHERE at < ? ORDER BY pipeline"
LOCK_MARKS = "SELECT pipeline, at FROM workflow_watermarks WHERE at < ? AND pipeline IN "
LOCK_MARK = "SELECT at FROM workflow_watermarks WHERE pipeline = ?"
ADVANCE_STORE_MARK = "UPDATE workflow_state SET at = ? WHERE name = 'watermark' AND at < ?"
INSERT_STORE_MARK = (
    "INSERT INTO workflow_state (name, at, owner) VALUES ('watermark', ?, '') "
    "ON CONFLICT (name) DO NOTHING"
)
ROUND_CLAIM = (
    "INSERT INTO workflow_runs (run_id, pipeline, trigger_kind, status, release_schedule, "
    "release_at, logical_date, params, errors, created, ended, error, owner, admitted) "
    "VALUES (?, ?, 'schedule', ?, ?, ?, ?, ?, '[]', ?, ?, ?, ?, ?) "
    "ON CONFLICT (pipeline, release_schedule, release_at) DO NOTHING"
)
_LIVE_SCHEDULED = "trigger_kind = 'schedule' AND status IN ('PENDING', 'RUNNING')"
LOAD = (
    "SELECT pipeline, "
    "SUM(CASE WHEN status = 'RUNNING' OR admitted IS NOT NULL THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN status = 'PENDING' AND admitted IS NULL THEN 1 ELSE 0 END) "
    f"FROM workflow_runs WHERE {_LIVE_SCHEDULED} AND pipeline IN "
)
IN_SLOTS = (
    f"SELECT COUNT(*) FROM workflow_runs WHERE pipeline = ? AND {_LIVE_SCHEDULED} "
    "AND (status = 'RUNNING' OR admitted IS NOT NULL)"
)
HEADS = (
    "SELECT run_id, owner FROM workflow_runs WHERE pipeline = ? AND trigger_kind = 'schedule' "
    "AND status = 'PENDING' AND admitted IS NULL ORDER BY release_at, created, run_id LIMIT ?"
)
ADMIT = (
    "UPDATE workflow_runs SET admitted = ? WHERE owner = ? AND status = 'PENDING' "
    "AND admitted IS NULL AND run_id IN "
)


def marks(count: int) -> str:
    """``(?, ?, ...)`` with ``count`` markers, for ``IN`` lists."""
    return f"({', '.join('?' * count)})"


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
            run.owner,
            run.rerun_of,
            None,
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
            owner,
            rerun_of,
            cancel_requested,
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
            owner=owner,
            rerun_of=rerun_of,
            cancel_requested=self.opt_ts_out(cancel_requested),
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
