"""The day-to-day operations of the SQL stores: cancel requests, pauses, retention.

:class:`SqlOperations` is a mixin of :class:`~._sqlbase.SqlRunStore`: the
:class:`~.base.RunStore` methods that ``workflow cancel``, ``pause`` /
``unpause`` and ``prune`` stand on, written once for SQLite and PostgreSQL
through :class:`~._sql.Dialect`. Each is one short statement or transaction, so
none holds a lock a scheduler tick waits on for long (a prune deletes in bounded
batches, the caller looping).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar

from ..result import ErrorRecord, Status
from ..runs import ReleaseKey
from . import _sql
from ._codec import dump_errors, text_in, utc
from .base import Claim, NewRun

__all__ = ["SqlOperations"]


class SqlOperations(abc.ABC):
    """Cancel requests, pauses and retention over a SQL database (see the module)."""

    _dialect: ClassVar[_sql.Dialect]

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Any]: ...

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Any]: ...

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]: ...

    # -- cancel requests ------------------------------------------------------------

    def request_cancel(self, run_id: str, *, now: datetime, reason: str) -> Status | None:
        sql, at = self._dialect.sql, self._dialect.ts_in(now)
        reason = text_in(reason) or "cancelled"
        errors = dump_errors([ErrorRecord(message=reason, kind="Cancelled")])
        with self._transaction() as conn:
            # Either statement changes at most the one row; the status read last is
            # the one this transaction left (a run that started meanwhile is marked).
            conn.execute(sql(_sql.CANCEL_PENDING), (at, errors, reason, run_id))
            conn.execute(sql(_sql.ASK_CANCEL), (at, run_id))
            row = conn.execute(sql(_sql.RUN_STATUS), (run_id,)).fetchone()
        return None if row is None else Status(row[0])

    def cancel_requests(self, owner: str | None) -> list[str]:
        sql = self._dialect.sql
        with self._read() as conn:
            if owner is None:
                rows = conn.execute(sql(_sql.CANCEL_ASKED_UNOWNED)).fetchall()
            else:
                rows = conn.execute(sql(_sql.CANCEL_ASKED_BY), (owner,)).fetchall()
        return [row[0] for row in rows]

    # -- pauses ---------------------------------------------------------------------

    def pause(self, pipeline: str, *, now: datetime) -> bool:
        values = (pipeline, self._dialect.ts_in(now))
        with self._write() as conn:
            return bool(conn.execute(self._dialect.sql(_sql.PAUSE), values).rowcount == 1)

    def unpause(self, pipeline: str) -> datetime | None:
        sql = self._dialect.sql
        with self._transaction() as conn:
            row = conn.execute(sql(_sql.PAUSED_AT), (pipeline,)).fetchone()
            conn.execute(sql(_sql.UNPAUSE), (pipeline,))
        return None if row is None else self._dialect.ts_out(row[0])

    def paused(self) -> dict[str, datetime]:
        with self._read() as conn:
            rows = conn.execute(_sql.PAUSED).fetchall()
        return {name: self._dialect.ts_out(at) for name, at in rows}

    def skipped_releases(
        self, pipeline: str, *, reason: str, since: datetime, until: datetime, limit: int
    ) -> list[ReleaseKey]:
        sql, ts_in = self._dialect.sql, self._dialect.ts_in
        values = (pipeline, reason, ts_in(since), ts_in(until), limit)
        with self._read() as conn:
            rows = conn.execute(sql(_sql.SKIPPED_FOR), values).fetchall()
        return [ReleaseKey(pipeline, row[0], self._dialect.ts_out(row[1])) for row in rows]

    def reclaim_skipped(
        self, claims: Sequence[Claim], *, reason: str, now: datetime, owner: str | None = None
    ) -> list[bool]:
        sql, dialect = self._dialect.sql, self._dialect
        created = utc(now)
        won: list[bool] = []
        with self._transaction() as conn:
            for claim in claims:
                key = claim.release
                dropped = conn.execute(
                    sql(_sql.DROP_SKIPPED),
                    (key.pipeline, key.schedule, dialect.ts_in(key.at), reason),
                ).rowcount
                if dropped != 1:
                    won.append(False)
                    continue
                row = dialect.run_values(NewRun.claimed(claim, created, owner))
                won.append(conn.execute(sql(_sql.CLAIM), row).rowcount == 1)
        return won

    # -- retention ------------------------------------------------------------------

    def newest_runs(self) -> dict[str, str]:
        with self._read() as conn:
            return {str(name): str(run_id) for name, run_id in conn.execute(_sql.NEWEST)}

    def _prune(self, before: datetime, limit: int, keep: frozenset[str]) -> list[str]:
        sql = self._dialect.sql
        # Chosen outside the transaction (a read), deleted inside it: the write
        # lock is held for the deletes only. A candidate that changed meanwhile
        # cannot have: only ended runs are selected, and an ended run never changes.
        with self._read() as conn:
            rows = conn.execute(
                sql(_sql.PRUNE_CANDIDATES), (self._dialect.ts_in(before), limit + len(keep))
            ).fetchall()
        ids = [row[0] for row in rows if row[0] not in keep][:limit]
        if not ids:
            return []
        marks = _sql.marks(len(ids))
        with self._transaction() as conn:
            conn.execute(sql(_sql.PRUNE_RUNS + marks), ids)
            conn.execute(sql(_sql.PRUNE_LOGS + marks), ids)
        return ids
