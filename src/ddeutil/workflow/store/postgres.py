"""The PostgreSQL run store (extra ``postgres``: psycopg 3).

``postgresql://user@host:5432/db?schema=workflow&pool_size=5``: ``schema`` (created
if missing, default the connection's current schema) and ``pool_size`` (default
5) are read by this store; every other query parameter goes to libpq
(``connect_timeout`` defaults to 10 seconds).

Concurrency model: a small pool of autocommit connections per store object, so
a hundred worker threads share a handful of server sessions. A claim is one
``INSERT ... ON CONFLICT DO NOTHING`` against the release's UNIQUE constraint,
the start handshake one ``UPDATE ... WHERE status = 'PENDING'``, so both hold
across processes and hosts. Timestamps are ``timestamptz`` (sessions run in UTC),
params/context/errors ``json`` (key order kept).

The scheduler lock is ``pg_try_advisory_lock`` on a dedicated session named
``ddeutil-workflow scheduler: <owner>`` (``application_name``); the server drops
it when that session ends, including when the holder is killed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import Any

from ..errors import StoreError, StoreLockedError
from ..result import ErrorRecord, Status
from . import _sql
from ._codec import dump_errors, dumps_json, utc
from ._pool import Pool
from .base import (
    Claim,
    DuplicateRun,
    ReleaseKey,
    RunRecord,
    StatusFilter,
    TriggerKind,
    check_paging,
    terminal_status,
)

__all__ = ["PostgresRunStore"]

logger = logging.getLogger(__name__)

_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


def _detach_inherited() -> None:
    # After fork a child shares the parent's sockets. Point each inherited fd at
    # /dev/null: the child can neither talk on nor keep alive the parent's
    # sessions (so the advisory lock dies with the parent), and a later close
    # in the child cannot send "terminate" on the parent's session.
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for conn in list(_LIVE):
            try:
                os.dup2(devnull, conn.fileno())
            except Exception:  # noqa: S112 - closed or broken: nothing to detach
                continue
    finally:
        os.close(devnull)


os.register_at_fork(after_in_child=_detach_inherited)


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the test env has it
        raise StoreError(
            "the PostgreSQL run store needs psycopg: pip install 'ddeutil-workflow[postgres]'"
        ) from exc
    return psycopg


def _ts_out(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _json_out(value: Any) -> Any:
    return value


_DIALECT = _sql.Dialect(placeholder="%s", ts_in=utc, ts_out=_ts_out, json_out=_json_out)
_CLAIM_MANY = """
INSERT INTO workflow_runs (run_id, pipeline, trigger_kind, status, release_schedule,
                           release_at, logical_date, params, errors, created)
SELECT r, p, 'schedule', 'PENDING', s, a, l, pa, '[]'::json, %s
FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[],
            %s::json[]) WITH ORDINALITY AS t(r, p, s, a, l, pa, n)
ORDER BY n
ON CONFLICT (pipeline, release_schedule, release_at) DO NOTHING
RETURNING run_id
"""
_LOCK_HOLDER = """
SELECT a.pid, a.application_name, COALESCE(host(a.client_addr), 'local socket')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = %s AND l.objid::bigint = %s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _key(purpose: str, schema: str) -> int:
    """A stable signed 64-bit advisory lock key for ``purpose`` in ``schema``."""
    digest = hashlib.blake2b(f"ddeutil-workflow:{purpose}:{schema}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class PostgresRunStore:
    """A :class:`~.base.RunStore` in a PostgreSQL database.

    Args:
        conninfo: A libpq URL or ``key=value`` string (without this store's own
            ``schema``/``pool_size`` parameters; :func:`~.open_store` strips them).
        schema: Schema holding the tables; created if missing.
        pool_size: Most sessions this store object opens at once.
        pool_timeout: Seconds an operation waits for a free session.

    Raises:
        StoreError: psycopg is missing, the server cannot be reached, or the
            schema is newer than this version of ddeutil-workflow understands.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str | None = None,
        pool_size: int = 5,
        pool_timeout: float = 30.0,
    ) -> None:
        self._pg = _import_psycopg()
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(conninfo)
        except self._pg.Error as exc:
            raise StoreError(f"invalid PostgreSQL URL: {exc}") from None
        params.setdefault("connect_timeout", 10)
        params.setdefault("application_name", "ddeutil-workflow")
        self._params = params
        self._schema = schema
        self._pid = os.getpid()
        self._closed = False
        host = params.get("host") or "local socket"
        port = f":{params['port']}" if params.get("port") else ""
        self.display = f"postgresql://{host}{port}/{params.get('dbname', '')}"
        if schema:
            self.display += f" (schema {schema})"
        self._pool = Pool(self._connect, pool_size, pool_timeout)
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresRunStore({self.display!r})"

    # -- plumbing -----------------------------------------------------------------

    def _connect(self, **overrides: Any) -> Any:
        with self._errors():
            conn = self._pg.connect(autocommit=True, **{**self._params, **overrides})
            try:
                conn.execute("SET TIME ZONE 'UTC'")
                if self._schema:
                    from psycopg import sql

                    conn.execute(
                        sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema))
                    )
            except BaseException:
                conn.close()
                raise
        _LIVE.add(conn)
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._pg.Error as exc:
            raise StoreError(f"PostgreSQL run store {self.display}: {exc}") from exc

    @contextmanager
    def _conn(self, *, transaction: bool = False) -> Iterator[Any]:
        if self._closed:
            raise StoreError(f"the PostgreSQL run store {self.display} is closed")
        if os.getpid() != self._pid:
            raise StoreError(
                f"this PostgreSQL run store was opened in process {self._pid}; "
                "open a new store in each process (open_store(url))"
            )
        with self._errors(), self._pool.connection() as conn:
            if transaction:
                with conn.transaction():
                    yield conn
            else:
                yield conn

    def _migrate(self) -> None:
        with self._conn(transaction=True) as conn:
            if self._schema:
                from psycopg import sql

                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_key("migrate", self._schema),))
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema))
                )
                self._schema_name = self._schema
            else:
                self._schema_name = conn.execute("SELECT current_schema()").fetchone()[0]
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s)", (_key("migrate", self._schema_name),)
                )
            conn.execute(_sql.META_DDL)
            row = conn.execute(_sql.GET_VERSION).fetchone()
            version = int(row[0]) if row else 0
            if version > _sql.SCHEMA_VERSION:
                raise StoreError(
                    f"the run store {self.display} has schema version {version}, newer "
                    f"than this ddeutil-workflow supports ({_sql.SCHEMA_VERSION}); upgrade it"
                )
            for statements in _sql.migrations("TIMESTAMPTZ", "JSON")[version:]:
                for statement in statements:
                    conn.execute(statement)
            if version < _sql.SCHEMA_VERSION:
                conn.execute(_DIALECT.sql(_sql.SET_VERSION), (str(_sql.SCHEMA_VERSION),))
                logger.info(
                    "run store %s migrated to schema version %d",
                    self.display,
                    _sql.SCHEMA_VERSION,
                )

    def _get(self, conn: Any, run_id: str) -> RunRecord | None:
        row = conn.execute(_DIALECT.sql(_sql.GET_RUN), (run_id,)).fetchone()
        return None if row is None else _DIALECT.record(row)

    # -- claims and runs --------------------------------------------------------

    def claim(
        self,
        release: ReleaseKey,
        *,
        run_id: str,
        params: Mapping[str, Any],
        logical_date: datetime,
        now: datetime,
    ) -> bool:
        return self.claim_many([Claim(release, run_id, params, logical_date)], now=now)[0]

    def claim_many(self, claims: Sequence[Claim], *, now: datetime) -> list[bool]:
        if not claims:
            return []
        values = (
            utc(now),
            [c.run_id for c in claims],
            [c.release.pipeline for c in claims],
            [c.release.schedule for c in claims],
            [c.release.at for c in claims],
            [None if c.logical_date is None else utc(c.logical_date) for c in claims],
            [dumps_json(dict(c.params)) for c in claims],
        )
        with self._conn() as conn:
            won = {row[0] for row in conn.execute(_CLAIM_MANY, values).fetchall()}
        return [c.run_id in won for c in claims]

    def create_run(
        self,
        *,
        run_id: str,
        pipeline: str,
        trigger: TriggerKind,
        params: Mapping[str, Any],
        now: datetime,
        idempotency_key: str | None = None,
        logical_date: datetime | None = None,
    ) -> RunRecord:
        values = _DIALECT.run_values(
            run_id=run_id,
            pipeline=pipeline,
            trigger=trigger,
            release=None,
            logical_date=logical_date,
            params=dumps_json(dict(params)),
            created=utc(now),
            idempotency_key=idempotency_key,
        )
        insert = _DIALECT.sql(
            _sql.INSERT_RUN + " ON CONFLICT (idempotency_key) DO NOTHING RETURNING run_id"
        )
        with self._conn(transaction=True) as conn:
            if conn.execute(insert, values).fetchone() is None:
                row = conn.execute(_DIALECT.sql(_sql.RUN_BY_KEY), (idempotency_key,)).fetchone()
                raise DuplicateRun(row[0] if row else "?", idempotency_key)
            record = self._get(conn, run_id)
        assert record is not None
        return record

    def mark_running(self, run_id: str, *, now: datetime) -> bool:
        with self._conn() as conn:
            cur = conn.execute(_DIALECT.sql(_sql.MARK_RUNNING), (utc(now), run_id))
            return bool(cur.rowcount == 1)

    def finish(
        self,
        run_id: str,
        *,
        status: Status,
        now: datetime,
        context: Mapping[str, Any] | None = None,
        errors: Sequence[ErrorRecord] = (),
        error: str | None = None,
    ) -> bool:
        values = (
            terminal_status(status).value,
            utc(now),
            None if context is None else dumps_json(dict(context)),
            dump_errors(errors),
            error,
            run_id,
        )
        finish = _DIALECT.sql(_sql.FINISH).replace("COALESCE(%s,", "COALESCE(%s::json,")
        with self._conn() as conn:
            return bool(conn.execute(finish, values).rowcount == 1)

    # -- queries ----------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._conn() as conn:
            return self._get(conn, run_id)

    def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: StatusFilter = None,
        since: datetime | None = None,
        until: datetime | None = None,
        trigger: TriggerKind | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        check_paging(limit, offset)
        where, values = _DIALECT.where(
            pipeline=pipeline, status=status, since=since, until=until, trigger=trigger
        )
        with self._conn() as conn:
            rows = conn.execute(_DIALECT.list_query(where), (*values, limit, offset)).fetchall()
        return [_DIALECT.record(row) for row in rows]

    def count_runs(
        self,
        *,
        pipeline: str | None = None,
        status: StatusFilter = None,
        since: datetime | None = None,
        until: datetime | None = None,
        trigger: TriggerKind | None = None,
    ) -> int:
        where, values = _DIALECT.where(
            pipeline=pipeline, status=status, since=since, until=until, trigger=trigger
        )
        with self._conn() as conn:
            return int(conn.execute(_DIALECT.count_query(where), values).fetchone()[0])

    def _by_status(self, status: Status, trigger: TriggerKind | None) -> list[RunRecord]:
        query, values = _DIALECT.status_query(status, trigger)
        with self._conn() as conn:
            rows = conn.execute(query, values).fetchall()
        return [_DIALECT.record(row) for row in rows]

    def pending_runs(self, *, trigger: TriggerKind | None = None) -> list[RunRecord]:
        return self._by_status(Status.PENDING, trigger)

    def running_runs(self, *, trigger: TriggerKind | None = None) -> list[RunRecord]:
        return self._by_status(Status.RUNNING, trigger)

    def fail_interrupted(
        self, *, now: datetime, reason: str, trigger: TriggerKind | None = None
    ) -> list[str]:
        update, extra = _sql.FAIL_RUNNING, []
        if trigger is not None:
            update, extra = update + " AND trigger_kind = ?", [TriggerKind(trigger).value]
        query = _DIALECT.sql(
            f"WITH closed AS ({update} RETURNING run_id, started, created) "  # noqa: S608 - constant fragments
            "SELECT run_id FROM closed ORDER BY COALESCE(started, created), run_id"
        )
        errors = dump_errors([ErrorRecord(message=reason, kind="Interrupted")])
        with self._conn() as conn:
            rows = conn.execute(query, (utc(now), errors, reason, *extra)).fetchall()
        return [row[0] for row in rows]

    # -- scheduler state ----------------------------------------------------------

    def _get_state(self, name: str) -> tuple[datetime, str] | None:
        with self._conn() as conn:
            row = conn.execute(_DIALECT.sql(_sql.GET_STATE), (name,)).fetchone()
        return None if row is None else (_ts_out(row[0]), row[1])

    def _set_state(self, name: str, at: datetime, owner: str) -> None:
        with self._conn() as conn:
            conn.execute(_DIALECT.sql(_sql.SET_STATE), (name, utc(at), owner))

    def get_watermark(self) -> datetime | None:
        state = self._get_state("watermark")
        return None if state is None else state[0]

    def set_watermark(self, at: datetime) -> None:
        self._set_state("watermark", at, "")

    def heartbeat(self, *, now: datetime, owner: str) -> None:
        self._set_state("heartbeat", now, owner)

    def last_heartbeat(self) -> tuple[datetime, str] | None:
        return self._get_state("heartbeat")

    def scheduler_lock(self, owner: str) -> AbstractContextManager[None]:
        if self._closed:
            raise StoreError(f"the PostgreSQL run store {self.display} is closed")
        return self._advisory_lock(owner)

    @contextmanager
    def _advisory_lock(self, owner: str) -> Iterator[None]:
        key = _key("scheduler", self._schema_name)
        name = f"ddeutil-workflow scheduler: {owner}"[:63]
        conn = self._connect(application_name=name)
        try:
            with self._errors():
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
                if not got:
                    halves = ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)
                    row = conn.execute(_LOCK_HOLDER, halves).fetchone()
                    holder = (
                        f"{row[1] or 'unnamed session'}, server pid {row[0]}, client {row[2]}"
                        if row
                        else "unknown holder"
                    )
                    raise StoreLockedError(
                        f"the run store {self.display} is in use by another scheduler "
                        f"({holder}); advisory lock {key}. Stop that daemon first or use "
                        "another run store."
                    )
            try:
                yield
            finally:
                if not conn.closed and os.getpid() == self._pid:
                    try:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                    except self._pg.Error as exc:  # the session is gone: so is the lock
                        logger.warning("could not release the scheduler lock: %s", exc)
        finally:
            if os.getpid() == self._pid:
                conn.close()

    def ping(self) -> bool:
        try:
            with self._conn() as conn:
                conn.execute("SELECT 1").fetchone()
        except StoreError:
            return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if os.getpid() == self._pid:
            self._pool.close()
