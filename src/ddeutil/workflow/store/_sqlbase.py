"""What the SQLite and PostgreSQL stores share: every query written once.

:class:`SqlRunStore` holds the run store methods whose SQL is the same in both
databases (through :class:`~._sql.Dialect`). A subclass says how it hands out a
connection (:meth:`SqlRunStore._read`, :meth:`SqlRunStore._write`,
:meth:`SqlRunStore._transaction`) and implements the few operations each
database does its own way: batched claims, the idempotent insert, closing
interrupted runs, the scheduler lock and closing.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

from ..errors import StoreError
from ..result import ErrorRecord, Status
from . import _sql
from ._codec import dump_errors, dumps_json, text_in
from ._sqlops import SqlOperations
from ._sqloutbox import SqlOutbox
from .base import (
    Ending,
    NewRun,
    ReleaseKey,
    ReleaseRun,
    RunFilter,
    RunRecord,
    RunState,
    RunStoreBase,
    TriggerKind,
    owner_kind,
)
from .fleet import (
    ClaimState,
    Decide,
    OwnerKind,
    OwnerLost,
    OwnerRecord,
    OwnerState,
    PipelineLoad,
    Quiet,
    RoundClaim,
    RoundView,
    Takeover,
)

__all__ = ["SqlRunStore"]

_OWNERS_KEPT = timedelta(days=7)
"""How long the row of a daemon whose work was taken over is kept (``workflow health``)."""
_CHUNK = 500


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class SqlRunStore(SqlOperations, SqlOutbox, RunStoreBase):
    """A :class:`~.base.RunStore` over a SQL database; subclasses bring the driver.

    A subclass sets the class attributes, ``_pid`` (the opening process),
    ``_closed`` and ``_driver_error`` (the driver's base exception class) and
    implements the abstract methods.
    """

    _dialect: ClassVar[_sql.Dialect]
    _kind: ClassVar[str]
    """The database's name in messages (``"SQLite"``)."""
    _finish_sql: ClassVar[str]
    """:data:`~._sql.FINISH` in the driver's placeholder style."""

    _driver_error: type[Exception]
    _pid: int
    _closed: bool
    _marked: set[str]
    """Pipelines whose watermark row this store object has made sure exists."""

    # -- plumbing -----------------------------------------------------------------

    @property
    @abc.abstractmethod
    def _label(self) -> str:
        """How messages name this store (its file or URL)."""

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Any]:
        """A connection for reads."""

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Any]:
        """A connection for a write; what the block executes is committed at its end."""

    def _transaction(self) -> AbstractContextManager[Any]:
        """A connection whose statements in the block apply all or not at all.

        The default is :meth:`_write`, for stores whose every write is a transaction.
        """
        return self._write()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn the driver's errors into :class:`StoreError` naming this store."""
        try:
            yield
        except self._driver_error as exc:
            raise StoreError(f"{self._kind} run store {self._label}: {exc}") from exc

    def _check_open(self) -> None:
        """Refuse a closed store, and one used outside the process that opened it."""
        if self._closed:
            raise StoreError(f"the {self._kind} run store {self._label} is closed")
        if os.getpid() != self._pid:
            raise StoreError(
                f"this {self._kind} run store was opened in process {self._pid}; "
                "open a new store in each process (open_store(url))"
            )

    def _migrate_schema(self, conn: Any) -> None:
        """Bring the schema to :data:`~._sql.SCHEMA_VERSION` in the caller's transaction.

        Raises:
            StoreError: the schema is newer than this version understands.
        """
        conn.execute(_sql.META_DDL)
        row = conn.execute(_sql.GET_VERSION).fetchone()
        version = int(row[0]) if row else 0
        if version > _sql.SCHEMA_VERSION:
            raise StoreError(
                f"the run store {self._label} has schema version {version}, newer than "
                f"this ddeutil-workflow supports ({_sql.SCHEMA_VERSION}); upgrade it"
            )
        dialect = self._dialect
        for statements in _sql.migrations(dialect.ts_type, dialect.json_type)[version:]:
            for statement in statements:
                conn.execute(statement)
        if version < _sql.SCHEMA_VERSION:
            conn.execute(dialect.sql(_sql.SET_VERSION), (str(_sql.SCHEMA_VERSION),))
            # Logged by the concrete store's module (ddeutil.workflow.store.sqlite, ...).
            logging.getLogger(type(self).__module__).info(
                "run store %s migrated to schema version %d", self._label, _sql.SCHEMA_VERSION
            )

    def _get(self, conn: Any, run_id: str) -> RunRecord | None:
        row = conn.execute(self._dialect.sql(_sql.GET_RUN), (run_id,)).fetchone()
        return None if row is None else self._dialect.record(row)

    # -- runs -------------------------------------------------------------------

    @abc.abstractmethod
    def _insert_run(self, conn: Any, values: Sequence[Any], idempotency_key: str | None) -> None:
        """Insert :data:`~._sql.INSERT_RUN` ``values`` inside a transaction.

        Raises:
            DuplicateRun: ``idempotency_key`` was used before.
        """

    def _create(self, run: NewRun) -> RunRecord:
        values = self._dialect.run_values(run)
        with self._transaction() as conn:
            self._insert_run(conn, values, run.idempotency_key)
            record = self._get(conn, run.run_id)
        assert record is not None
        return record

    def _update_one(self, sql: str, values: Sequence[Any]) -> bool:
        """Run one UPDATE of at most one row in its own write; True when a row changed.

        A subclass may share the transaction with other threads' updates (group
        commit) as long as the call returns only once its update is committed.
        """
        with self._write() as conn:
            return bool(conn.execute(sql, values).rowcount == 1)

    def mark_running(
        self,
        run_id: str,
        *,
        now: datetime,
        owner: str | None = None,
        runner: str | None = None,
    ) -> bool:
        statement, values = _sql.MARK_RUNNING, [self._dialect.ts_in(now), run_id]
        if runner is not None:
            statement, values = _sql.MARK_RUNNING_BY, [values[0], runner, run_id]
        if owner is not None:
            statement, values = statement + _sql.OWNED_BY, [*values, owner]
        return self._update_one(self._dialect.sql(statement), values)

    def _finish(self, run_id: str, ending: Ending) -> bool:
        values: tuple[Any, ...] = (
            ending.status.value,
            self._dialect.ts_in(ending.ended),
            ending.context,
            ending.errors,
            ending.error,
            run_id,
        )
        sql = self._finish_sql
        if ending.owner is not None:
            sql, values = sql + " AND owner = " + self._dialect.placeholder, (*values, ending.owner)
        if not ending.notices:
            return self._update_one(sql, values)
        with self._transaction() as conn:
            if conn.execute(sql, values).rowcount != 1:
                return False
            self._notices_after_finish(conn, run_id, ending.notices, ending.ended)
        return True

    @abc.abstractmethod
    def _fail_running(
        self, update: str, values: Sequence[Any], trigger: TriggerKind | None
    ) -> list[str]:
        """Apply ``update`` (RUNNING runs nobody holds, of ``trigger``, to FAILED) atomically.

        Returns:
            The ids it closed, oldest start first.
        """

    def fail_interrupted(
        self, *, now: datetime, reason: str, trigger: TriggerKind | None = None
    ) -> list[str]:
        update, extra = _sql.FAIL_RUNNING, []
        if trigger is not None:
            update, extra = update + " AND trigger_kind = ?", [TriggerKind(trigger).value]
        errors = dump_errors([ErrorRecord(message=reason, kind="Interrupted")])
        values = (self._dialect.ts_in(now), errors, reason, *extra)
        return self._fail_running(self._dialect.sql(update), values, trigger)

    # -- queries ----------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._read() as conn:
            return self._get(conn, run_id)

    def run_states(self, run_ids: Sequence[str]) -> dict[str, RunState]:
        sql, ts_out = self._dialect.sql, self._dialect.opt_ts_out
        states: dict[str, RunState] = {}
        with self._read() as conn:
            for chunk in _chunks(list(dict.fromkeys(run_ids))):
                rows = conn.execute(sql(_sql.RUN_STATES + _sql.marks(len(chunk))), chunk)
                for run_id, status, error, owner, started in rows.fetchall():
                    states[run_id] = RunState(Status(status), error, owner, ts_out(started))
        return states

    def release_runs(self, releases: Sequence[ReleaseKey]) -> dict[ReleaseKey, ReleaseRun]:
        dialect = self._dialect
        by_schedule: dict[tuple[str, str], dict[datetime, ReleaseKey]] = {}
        for key in releases:
            by_schedule.setdefault((key.pipeline, key.schedule), {})[key.at] = key
        found: dict[ReleaseKey, ReleaseRun] = {}
        with self._read() as conn:
            for (pipeline, schedule), keys in by_schedule.items():
                instants = list(keys)
                for start in range(0, len(instants), _CHUNK):
                    chunk = instants[start : start + _CHUNK]
                    rows = conn.execute(
                        dialect.sql(_sql.RELEASE_RUNS + _sql.marks(len(chunk))),
                        (pipeline, schedule, *map(dialect.ts_in, chunk)),
                    ).fetchall()
                    for run_id, trigger, status, owner, at in rows:
                        key = keys[dialect.ts_out(at)]
                        found[key] = ReleaseRun(run_id, TriggerKind(trigger), Status(status), owner)
        return found

    def save_log(self, run_id: str, text: str) -> None:
        with self._write() as conn:
            conn.execute(self._dialect.sql(_sql.SAVE_LOG), (run_id, text))

    def run_log(self, run_id: str) -> str | None:
        with self._read() as conn:
            row = conn.execute(self._dialect.sql(_sql.RUN_LOG), (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def _list(self, where: RunFilter, limit: int, offset: int) -> list[RunRecord]:
        clause, values = self._dialect.where(where)
        with self._read() as conn:
            rows = conn.execute(
                self._dialect.list_query(clause), (*values, limit, offset)
            ).fetchall()
        return [self._dialect.record(row) for row in rows]

    def _count(self, where: RunFilter) -> int:
        clause, values = self._dialect.where(where)
        with self._read() as conn:
            return int(conn.execute(self._dialect.count_query(clause), values).fetchone()[0])

    def _pending(self, trigger: TriggerKind | None) -> list[RunRecord]:
        query, values = self._dialect.status_query(Status.PENDING, trigger)
        with self._read() as conn:
            rows = conn.execute(query, values).fetchall()
        return [self._dialect.record(row) for row in rows]

    # -- scheduler state ----------------------------------------------------------

    def _get_state(self, name: str) -> tuple[datetime, str] | None:
        with self._read() as conn:
            row = conn.execute(self._dialect.sql(_sql.GET_STATE), (name,)).fetchone()
        return None if row is None else (self._dialect.ts_out(row[0]), row[1])

    def _set_state(self, name: str, at: datetime, owner: str) -> None:
        with self._write() as conn:
            conn.execute(self._dialect.sql(_sql.SET_STATE), (name, self._dialect.ts_in(at), owner))

    # -- several daemons (see .fleet) ---------------------------------------------

    _for_update: ClassVar[str] = ""
    """Row lock clause of a SELECT inside a transaction (`` FOR UPDATE`` on PostgreSQL)."""
    _for_share: ClassVar[str] = ""
    """Shared row lock clause (`` FOR SHARE`` on PostgreSQL)."""

    _skip_locked: ClassVar[str] = ""
    """Lock clause that passes over rows another transaction holds (PostgreSQL)."""

    def _owner_record(self, row: Sequence[Any]) -> OwnerRecord:
        owner, host, pid, started, beat, state, taken_by, ended, kind = row
        ts_out = self._dialect.ts_out
        return OwnerRecord(
            owner=owner,
            host=host,
            pid=int(pid),
            started=ts_out(started),
            heartbeat=ts_out(beat),
            state=OwnerState(state),
            taken_by=taken_by,
            ended=self._dialect.opt_ts_out(ended),
            kind=kind,
        )

    def _check_live(self, conn: Any, owner: str) -> None:
        """Raise :class:`OwnerLost` unless ``owner`` is live (shared row lock till commit)."""
        statement = self._dialect.sql(_sql.OWNER_LIVE + self._for_share)
        if conn.execute(statement, (owner,)).fetchone() is None:
            raise OwnerLost(owner)

    def join(
        self, owner: str, *, now: datetime, host: str, pid: int, kind: OwnerKind = "scheduler"
    ) -> bool:
        at = self._dialect.ts_in(now)
        values = (owner, host, pid, at, at, owner_kind(kind))
        with self._write() as conn:
            return bool(conn.execute(self._dialect.sql(_sql.JOIN), values).rowcount == 1)

    def heartbeat(self, *, now: datetime, owner: str) -> bool:
        values = (self._dialect.ts_in(now), owner)
        with self._write() as conn:
            return bool(conn.execute(self._dialect.sql(_sql.HEARTBEAT), values).rowcount == 1)

    def leave(self, owner: str, *, now: datetime) -> None:
        with self._write() as conn:
            conn.execute(self._dialect.sql(_sql.LEAVE), (self._dialect.ts_in(now), owner))

    def owners(self) -> list[OwnerRecord]:
        with self._read() as conn:
            rows = conn.execute(_sql.OWNERS).fetchall()
        return [self._owner_record(row) for row in rows]

    def take_over(
        self,
        owner: str,
        *,
        now: datetime,
        lease: timedelta,
        everyone: bool = False,
        unowned: bool = False,
        reason: Callable[[OwnerRecord], str],
    ) -> Takeover:
        sql, ts_in = self._dialect.sql, self._dialect.ts_in
        at = ts_in(now)
        with self._read() as conn:
            self._check_live(conn, owner)
            gone_sql = _sql.GONE_ALL if everyone else _sql.GONE
            rows = conn.execute(sql(gone_sql), (owner, ts_in(now - lease))).fetchall()
        gone = [self._owner_record(row) for row in rows]
        taken: list[OwnerRecord] = []
        adopted: list[RunRecord] = []
        failed: list[str] = []
        for record in gone:
            with self._transaction() as conn:
                self._bound_lock_waits(conn)
                self._check_live(conn, owner)
                values = (owner, at, record.owner, record.state.value, ts_in(record.heartbeat))
                if conn.execute(sql(_sql.TAKE_OWNER), values).rowcount != 1:
                    continue  # it beat meanwhile, or another daemon took it over
                taken.append(record)
                got, ended = self._adopt(conn, owner, record.owner, at, reason(record))
            adopted.extend(got)
            failed.extend(ended)
        if unowned:
            placeholder = OwnerRecord("", "", 0, now, now, OwnerState.LOST)
            with self._transaction() as conn:
                self._bound_lock_waits(conn)
                self._check_live(conn, owner)
                got, ended = self._adopt(conn, owner, None, at, reason(placeholder))
            adopted.extend(got)
            failed.extend(ended)
        if taken:
            with self._write() as conn:
                conn.execute(sql(_sql.PRUNE_OWNERS), (ts_in(now - _OWNERS_KEPT),))
        return Takeover(tuple(taken), tuple(adopted), tuple(failed))

    def _adopt(
        self, conn: Any, owner: str, gone: str | None, at: Any, reason: str
    ) -> tuple[list[RunRecord], list[str]]:
        """Move ``gone``'s PENDING scheduled runs to ``owner``, fail its RUNNING ones.

        A named owner's RUNNING runs of any trigger are failed (a worker holds
        manual and API runs too), and so are its PENDING runs of other triggers
        (a client's that never started: nobody else would start them); without one (``gone=None``: the runs nobody
        holds) the scheduled ones only. Rows are locked in run id order, as
        admission locks them.
        """
        sql = self._dialect.sql
        select = _sql.OWNED if gone is not None else _sql.UNOWNED
        started = _sql.OWNED_RUNNING if gone is not None else _sql.UNOWNED_RUNNING
        args: tuple[Any, ...] = (gone,) if gone is not None else ()
        which = " AND status = ? AND " + ("owner = ?" if gone is not None else "owner IS NULL")
        rows = conn.execute(sql(select), args).fetchall()
        found = [self._dialect.record(row) for row in rows]
        locked = set(
            self._lock_runs(conn, [r.run_id for r in found], which, (Status.PENDING.value, *args))
        )
        records = [r for r in found if r.run_id in locked]  # still PENDING and theirs
        for chunk in _chunks([r.run_id for r in records]):
            conn.execute(sql(_sql.ADOPT + _sql.marks(len(chunk))), (owner, *chunk))
        running = [row[0] for row in conn.execute(sql(started), args).fetchall()]
        ids = self._lock_runs(conn, running, which, (Status.RUNNING.value, *args))
        errors = dump_errors([ErrorRecord(message=reason, kind="Interrupted")])
        for chunk in _chunks(ids):
            conn.execute(sql(_sql.FAIL_IDS + _sql.marks(len(chunk))), (at, errors, reason, *chunk))
        if gone is not None:
            unstarted = [row[0] for row in conn.execute(sql(_sql.OWNED_UNSTARTED), args)]
            more = self._lock_runs(conn, unstarted, which, (Status.PENDING.value, *args))
            for chunk in _chunks(more):
                statement = sql(_sql.FAIL_PENDING_IDS + _sql.marks(len(chunk)))
                conn.execute(statement, (at, errors, reason, *chunk))
            ids = sorted([*ids, *more])
        adopted = [replace(r, owner=owner) for r in records]
        return adopted, ids

    def _lock_runs(
        self, conn: Any, run_ids: list[str], where: str = "", args: tuple[Any, ...] = ()
    ) -> list[str]:
        """Lock the rows of ``run_ids`` that still match ``where``, in run id order.

        Takeover and admission lock the same rows; one order means no deadlock.
        Returns the ids locked (sorted).
        """
        locked: list[str] = []
        for chunk in _chunks(sorted(run_ids)):
            statement = self._dialect.sql(
                _sql.LOCK_RUNS + _sql.marks(len(chunk)) + where + " ORDER BY run_id"
            )
            rows = conn.execute(statement + self._for_update, (*chunk, *args)).fetchall()
            locked.extend(row[0] for row in rows)
        return locked

    def _bound_lock_waits(self, conn: Any) -> None:
        """Make a lock wait of this transaction fail after a while (PostgreSQL)."""

    def claim_round(
        self,
        pipelines: Sequence[str],
        *,
        owner: str,
        at: datetime,
        init: datetime,
        now: datetime,
        decide: Decide,
        batch: int = 64,
        claimed: Callable[[list[tuple[RoundClaim, bool]]], None] | None = None,
        quiet: Quiet | None = None,
    ) -> list[tuple[RoundClaim, bool]]:
        sql, ts_in = self._dialect.sql, self._dialect.ts_in
        names = sorted(set(pipelines))
        fresh = [name for name in names if name not in self._marked]
        if fresh:
            with self._write() as conn:
                conn.cursor().executemany(
                    sql(_sql.ENSURE_MARK), [(name, ts_in(init)) for name in fresh]
                )
            self._marked.update(fresh)
        with self._read() as conn:  # which pipelines are behind ``at`` (no lock yet)
            rows = conn.execute(sql(_sql.MARKS_BEFORE), (ts_in(at),)).fetchall()
        wanted, ts_out = set(names), self._dialect.ts_out
        behind: list[str] = []
        passed: list[str] = []  # quiet: nothing due after the watermark read here
        seen: dict[Any, datetime] = {}  # most watermarks are one boundary: read each once
        for name, mark in rows:
            if name not in wanted:
                continue
            if quiet is not None:
                when = seen.get(mark)
                if when is None:
                    when = seen[mark] = ts_out(mark)
                if quiet(name, when):
                    passed.append(name)
                    continue
            behind.append(name)
        outcomes: list[tuple[RoundClaim, bool]] = []
        created = ts_in(now)
        # The first batch is small, so the first runs go out early; later ones grow
        # (up to 4x), since a commit costs more than the rows it writes.
        start, size = 0, batch
        while start < len(behind):
            chunk = behind[start : start + size]
            start += size
            size = min(size * 2, batch * 4)
            done: list[tuple[RoundClaim, bool]] = []
            with self._transaction() as conn:
                self._check_live(conn, owner)
                # Rows another daemon holds are passed over, not waited for: it is
                # claiming them now (if it dies, the next beat's round picks them up).
                statement = sql(_sql.LOCK_MARKS + _sql.marks(len(chunk)) + self._skip_locked)
                rows = [
                    (name, self._dialect.ts_out(mark))
                    for name, mark in conn.execute(statement, (ts_in(at), *chunk)).fetchall()
                ]
                if rows:
                    locked = [name for name, _ in rows]
                    view = RoundView(dict(rows), self._load(conn, locked))
                    claims = list(decide(view).claims)
                    won = self._insert_claims(conn, claims, owner, created)
                    conn.execute(
                        sql(_sql.ADVANCE_MARKS + _sql.marks(len(locked))),
                        (ts_in(at), ts_in(at), *locked),
                    )
                    done = list(zip(claims, won, strict=True))
            outcomes.extend(done)
            if claimed is not None and done:
                claimed(done)
        if passed:
            # Watermarks only move forward, so nothing is due after the current one
            # either: advanced after the claims, rows another caller holds passed over.
            mark = ts_in(at)
            with self._transaction() as conn:
                for chunk in _chunks(passed):
                    held = chunk
                    if self._skip_locked:  # row locks: pass over rows another caller holds
                        statement = sql(
                            _sql.LOCK_MARKS + _sql.marks(len(chunk)) + self._skip_locked
                        )
                        held = [n for n, _ in conn.execute(statement, (mark, *chunk)).fetchall()]
                    if held:
                        conn.execute(
                            sql(_sql.ADVANCE_MARKS + _sql.marks(len(held))), (mark, mark, *held)
                        )
        # The store's watermark (where new pipelines start) in statements of their own:
        # one row every daemon writes must never be held by a batch's transaction.
        with self._write() as conn:
            conn.execute(sql(_sql.INSERT_STORE_MARK), (ts_in(at),))
            conn.execute(sql(_sql.ADVANCE_STORE_MARK), (ts_in(at), ts_in(at)))
        return outcomes

    def _insert_claims(
        self, conn: Any, claims: Sequence[RoundClaim], owner: str, created: Any
    ) -> list[bool]:
        """Insert the round's claims; one flag per claim (``False``: claimed before)."""
        statement = self._dialect.sql(_sql.ROUND_CLAIM)
        return [
            conn.execute(statement, self._claim_values(item, owner, created)).rowcount == 1
            for item in claims
        ]

    def _claim_values(self, item: RoundClaim, owner: str, created: Any) -> tuple[Any, ...]:
        claim, ts = item.claim, self._dialect
        skipped = item.state is ClaimState.SKIPPED
        return (
            claim.run_id,
            claim.release.pipeline,
            (Status.SKIPPED if skipped else Status.PENDING).value,
            claim.release.schedule,
            ts.ts_in(claim.release.at),
            ts.opt_ts(claim.logical_date),
            dumps_json(dict(claim.params)),
            created,
            created if skipped else None,
            text_in(item.reason) if skipped else None,
            owner,
            created if item.state is ClaimState.ADMITTED else None,
        )

    def _load(self, conn: Any, pipelines: Sequence[str]) -> dict[str, PipelineLoad]:
        loads: dict[str, PipelineLoad] = {}
        for chunk in _chunks(list(pipelines)):
            statement = self._dialect.sql(_sql.LOAD + _sql.marks(len(chunk)) + " GROUP BY pipeline")
            for name, running, waiting in conn.execute(statement, chunk).fetchall():
                loads[name] = PipelineLoad(int(running or 0), int(waiting or 0))
        return loads

    def load(self, pipelines: Sequence[str]) -> dict[str, PipelineLoad]:
        with self._read() as conn:
            return self._load(conn, pipelines)

    def admit(self, limits: Mapping[str, int], *, owner: str, now: datetime) -> list[str]:
        sql, ts_in = self._dialect.sql, self._dialect.ts_in
        admitted: list[str] = []
        if not limits:
            return admitted
        with self._transaction() as conn:
            self._bound_lock_waits(conn)
            fresh = sorted(set(limits) - self._marked)
            if fresh:  # claims adopted from a store without watermark rows (a v1 store)
                mark = conn.execute(sql(_sql.GET_STATE), ("watermark",)).fetchone()
                start = ts_in(now) if mark is None else mark[0]
                for pipeline in fresh:
                    conn.execute(sql(_sql.ENSURE_MARK), (pipeline, start))
            for pipeline in sorted(limits):
                # A pipeline another daemon is claiming or admitting right now is
                # passed over (asked again at the next poll), never waited for.
                held = conn.execute(sql(_sql.LOCK_MARK + self._skip_locked), (pipeline,))
                if held.fetchone() is None:
                    continue
                busy = int(conn.execute(sql(_sql.IN_SLOTS), (pipeline,)).fetchone()[0])
                free = limits[pipeline] - busy
                if free <= 0:
                    continue
                heads = conn.execute(sql(_sql.HEADS), (pipeline, free)).fetchall()
                admitted.extend(run_id for run_id, holder in heads if holder == owner)
            if admitted:  # one lock order (run id); a run taken over meanwhile drops out
                mine = " AND status = 'PENDING' AND admitted IS NULL AND owner = ?"
                admitted = self._lock_runs(conn, admitted, mine, (owner,))
            if admitted:
                statement = sql(_sql.ADMIT + _sql.marks(len(admitted)))
                conn.execute(statement, (ts_in(now), owner, *admitted))
        self._marked.update(fresh)
        return admitted

    def ping(self) -> bool:
        try:
            with self._read() as conn:
                conn.execute("SELECT 1").fetchone()
        except StoreError:
            return False
        return True
