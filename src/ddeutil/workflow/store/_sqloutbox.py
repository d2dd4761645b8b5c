"""The notification outbox of the SQL stores (see :mod:`.outbox` for the policies).

:class:`SqlOutbox` is a mixin of :class:`~._sqlbase.SqlRunStore`, written once
for SQLite and PostgreSQL through :class:`~._sql.Dialect`. A claim is one
transaction: the due rows are selected (on PostgreSQL ``FOR UPDATE SKIP
LOCKED``, so concurrent senders split them; SQLite's write transaction is
exclusive anyway) and leased in it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar

from . import _sql
from ._codec import text_in, utc
from .outbox import Notice, NoticeState, OutboxItem

__all__ = ["SqlOutbox"]


class SqlOutbox(abc.ABC):
    """Outbox rows over a SQL database (see the module)."""

    _dialect: ClassVar[_sql.Dialect]
    _skip_locked: ClassVar[str]

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Any]: ...

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]: ...

    def _insert_notices(self, conn: Any, notices: Sequence[Notice], now: datetime) -> list[bool]:
        at = self._dialect.ts_in(now)
        sql = self._dialect.sql(_sql.ADD_NOTICE)
        return [
            conn.execute(
                sql,
                (n.key, n.pipeline, n.event, n.channel, n.target, n.payload, n.run_id, at, at),
            ).rowcount
            == 1
            for n in notices
        ]

    def _notices_after_finish(
        self, conn: Any, run_id: str, notices: Sequence[Notice], now: datetime
    ) -> None:
        """Insert a just-closed run's ``notices`` in the finish's transaction."""
        sql = self._dialect.sql
        wanted = list(notices)
        if any(n.after_failure for n in wanted):
            row = conn.execute(sql(_sql.PIPELINE_OF), (run_id,)).fetchone()
            previous = None
            if row is not None:
                previous = conn.execute(sql(_sql.PREVIOUS_END), (row[0], run_id)).fetchone()
            if previous is None or previous[0] != "FAILED":
                wanted = [n for n in wanted if not n.after_failure]
        self._insert_notices(conn, wanted, now)

    def add_notices(self, notices: Sequence[Notice], *, now: datetime) -> list[bool]:
        with self._transaction() as conn:
            return self._insert_notices(conn, notices, utc(now))

    def _claim_notices(
        self, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[OutboxItem]:
        sql, ts_in = self._dialect.sql, self._dialect.ts_in
        at = ts_in(now)
        with self._transaction() as conn:
            rows = conn.execute(
                sql(_sql.DUE_NOTICES + self._skip_locked),
                (at, at, limit),
            ).fetchall()
            keys = [row[0] for row in rows]
            if not keys:
                return []
            marks = _sql.marks(len(keys))
            conn.execute(sql(_sql.LEASE_NOTICES + marks), (owner, ts_in(until), *keys))
            items = conn.execute(sql(_sql.NOTICES_IN + marks), keys).fetchall()
        return sorted((self._item(row) for row in items), key=lambda i: (i.due, i.key))

    def notice_sent(self, key: str, *, now: datetime) -> bool:
        with self._transaction() as conn:
            values = (self._dialect.ts_in(utc(now)), key)
            return bool(conn.execute(self._dialect.sql(_sql.NOTICE_SENT), values).rowcount == 1)

    def notice_failed(
        self, key: str, *, now: datetime, retry_at: datetime | None, error: str
    ) -> bool:
        ts_in, message = self._dialect.ts_in, text_in(error)
        if retry_at is None:
            statement, values = _sql.NOTICE_DEAD, (ts_in(utc(now)), message, key)
        else:
            statement, values = _sql.NOTICE_RETRY, (ts_in(utc(retry_at)), message, key)
        with self._transaction() as conn:
            return bool(conn.execute(self._dialect.sql(statement), values).rowcount == 1)

    def notices(self, *, limit: int = 100) -> list[OutboxItem]:
        with self._read() as conn:
            rows = conn.execute(self._dialect.sql(_sql.LIST_NOTICES), (limit,)).fetchall()
        return [self._item(row) for row in rows]

    def _prune_notices(self, before: datetime, limit: int) -> int:
        sql = self._dialect.sql
        with self._transaction() as conn:
            rows = conn.execute(
                sql(_sql.PRUNE_NOTICE_KEYS), (self._dialect.ts_in(before), limit)
            ).fetchall()
            keys = [row[0] for row in rows]
            if keys:
                conn.execute(sql(_sql.PRUNE_NOTICES + _sql.marks(len(keys))), keys)
        return len(keys)

    def _item(self, row: Sequence[Any]) -> OutboxItem:
        key, pipeline, event, channel, target, payload, run_id = row[:7]
        state, attempts, created, due, done, last_error = row[7:]
        ts_out = self._dialect.ts_out
        return OutboxItem(
            key=key,
            pipeline=pipeline,
            event=event,
            channel=channel,
            target=target,
            payload=payload,
            run_id=run_id,
            state=NoticeState(state),
            attempts=int(attempts),
            created=ts_out(created),
            due=ts_out(due),
            done=self._dialect.opt_ts_out(done),
            last_error=last_error,
        )
