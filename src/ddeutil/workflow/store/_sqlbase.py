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
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, ClassVar

from ..errors import StoreError
from ..result import ErrorRecord, Status
from . import _sql
from ._codec import dump_errors
from .base import Ending, NewRun, RunFilter, RunRecord, RunStoreBase, TriggerKind

__all__ = ["SqlRunStore"]


class SqlRunStore(RunStoreBase):
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

    def mark_running(self, run_id: str, *, now: datetime) -> bool:
        started = self._dialect.ts_in(now)
        return self._update_one(self._dialect.sql(_sql.MARK_RUNNING), (started, run_id))

    def _finish(self, run_id: str, ending: Ending) -> bool:
        values = (
            ending.status.value,
            self._dialect.ts_in(ending.ended),
            ending.context,
            ending.errors,
            ending.error,
            run_id,
        )
        return self._update_one(self._finish_sql, values)

    @abc.abstractmethod
    def _fail_running(
        self, update: str, values: Sequence[Any], trigger: TriggerKind | None
    ) -> list[str]:
        """Apply ``update`` (RUNNING runs of ``trigger`` to FAILED) atomically.

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

    def ping(self) -> bool:
        try:
            with self._read() as conn:
                conn.execute("SELECT 1").fetchone()
        except StoreError:
            return False
        return True
