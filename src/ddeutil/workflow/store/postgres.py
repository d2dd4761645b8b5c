"""The PostgreSQL run store (extra ``postgres``: psycopg 3).

``postgresql://user@host:5432/db?schema=workflow&pool_size=5``: ``schema`` (created
if missing, default the connection's current schema) and ``pool_size`` (default
5) are read by this store; every other query parameter goes to libpq
(``connect_timeout`` defaults to 10 seconds, TCP keepalives are on).

Concurrency model: a small pool of autocommit connections per store object, so
a hundred worker threads share a handful of server sessions. A claim is one
``INSERT ... ON CONFLICT DO NOTHING`` against the release's UNIQUE constraint,
the start handshake one ``UPDATE ... WHERE status = 'PENDING'``, so both hold
across processes and hosts. Timestamps are ``timestamptz`` (sessions run in UTC),
params/context/errors ``json`` (key order kept). Every session has a statement
timeout and an idle-in-transaction timeout (:data:`_SESSION`): a client that
stops inside a transaction frees its locks within seconds.

The store is **shared** (see :mod:`.fleet`): any number of daemons run on it at
once. A claim round locks pipeline watermark rows with ``FOR UPDATE SKIP
LOCKED``, so daemons at the same boundary split its pipelines between them.

The scheduler lock is ``pg_try_advisory_lock_shared`` on a dedicated session
named ``ddeutil-workflow scheduler: <owner>`` (``application_name``): daemons of
this version share it, and a daemon of an older version (which took it
exclusively) keeps them out, and they it, during an upgrade. The server drops
it when that session ends, including when the holder is killed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import Any

from ..errors import StoreError, StoreLockedError
from . import _sql
from ._codec import dumps_json, utc
from ._pool import Pool
from ._sqlbase import SqlRunStore
from .base import Claim, DuplicateRun, TriggerKind
from .fleet import RoundClaim

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


_DIALECT = _sql.Dialect(
    placeholder="%s",
    ts_in=utc,
    ts_out=_ts_out,
    json_out=_json_out,
    ts_type="TIMESTAMPTZ",
    json_type="JSON",
)
# COALESCE(new, context) needs the new context typed as json.
_FINISH = _DIALECT.sql(_sql.FINISH).replace("COALESCE(%s,", "COALESCE(%s::json,")
_INSERT_RUN = _DIALECT.sql(
    _sql.INSERT_RUN + " ON CONFLICT (idempotency_key) DO NOTHING RETURNING run_id"
)
_CLAIM_MANY = """
INSERT INTO workflow_runs (run_id, pipeline, trigger_kind, status, release_schedule,
                           release_at, logical_date, params, errors, created, owner)
SELECT r, p, k, 'PENDING', s, a, l, pa, '[]'::json, %s, %s
FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[],
            %s::json[], %s::text[]) WITH ORDINALITY AS t(r, p, s, a, l, pa, k, n)
ORDER BY n
ON CONFLICT (pipeline, release_schedule, release_at) DO NOTHING
RETURNING run_id
"""
_ROUND_CLAIMS = """
INSERT INTO workflow_runs (run_id, pipeline, trigger_kind, status, release_schedule,
                           release_at, logical_date, params, errors, created, ended, error,
                           owner, admitted)
SELECT r, p, 'schedule', st, s, a, l, pa, '[]'::json, %s, e, er, %s, ad
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
            %s::timestamptz[], %s::json[], %s::timestamptz[], %s::text[], %s::timestamptz[])
     WITH ORDINALITY AS t(r, p, st, s, a, l, pa, e, er, ad, n)
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


_SESSION = {
    # A statement never waits on a lock or a dead peer forever ...
    "statement_timeout": "'30s'",
    # ... and a client that stops (SIGSTOP, a host lost) inside a transaction
    # gives its row locks back after 5 s (a transaction of this store never
    # idles that long), so other daemons are not held up by it.
    "idle_in_transaction_session_timeout": "'5s'",
    # The server notices a client host that vanished within about 25 s.
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
"""Session settings of every connection (constants, never user input)."""


def _key(purpose: str, schema: str) -> int:
    """A stable signed 64-bit advisory lock key for ``purpose`` in ``schema``."""
    digest = hashlib.blake2b(f"ddeutil-workflow:{purpose}:{schema}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


class PostgresRunStore(SqlRunStore):
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

    _dialect = _DIALECT
    _kind = "PostgreSQL"
    _finish_sql = _FINISH
    _for_update = " FOR UPDATE"
    _for_share = " FOR SHARE"
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def shared(self) -> bool:
        return True

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str | None = None,
        pool_size: int = 5,
        pool_timeout: float = 30.0,
    ) -> None:
        self._pg = _import_psycopg()
        self._driver_error = self._pg.Error
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(conninfo)
        except self._pg.Error as exc:
            raise StoreError(f"invalid PostgreSQL URL: {exc}") from None
        params.setdefault("connect_timeout", 10)
        for name, value in (("keepalives", 1), ("keepalives_idle", 10), ("keepalives_interval", 5)):
            params.setdefault(name, value)  # the client notices a vanished server too
        params.setdefault("application_name", "ddeutil-workflow")
        self._params = params
        self._schema = schema
        self._pid = os.getpid()
        self._closed = False
        self._marked: set[str] = set()
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
            # Plan every statement with the table as it is now: a plan prepared while
            # a table was small (the first claims of a round) turns into a full scan
            # once thousands of runs are waiting.
            conn.prepare_threshold = None
            try:
                conn.execute("SET TIME ZONE 'UTC'")
                for setting, value in _SESSION.items():
                    conn.execute(f"SET {setting} = {value}")
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

    @property
    def _label(self) -> str:
        return self.display

    @contextmanager
    def _conn(self, *, transaction: bool = False) -> Iterator[Any]:
        self._check_open()
        with self._errors(), self._pool.connection() as conn:
            if transaction:
                with conn.transaction():
                    yield conn
            else:
                yield conn

    def _read(self) -> AbstractContextManager[Any]:
        return self._conn()

    def _write(self) -> AbstractContextManager[Any]:
        """An autocommit session: each statement commits by itself, in one round trip."""
        return self._conn()

    def _transaction(self) -> AbstractContextManager[Any]:
        return self._conn(transaction=True)

    def _migrate(self) -> None:
        with self._transaction() as conn:
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
            self._migrate_schema(conn)

    # -- claims and runs --------------------------------------------------------

    def claim_many(
        self, claims: Sequence[Claim], *, now: datetime, owner: str | None = None
    ) -> list[bool]:
        if not claims:
            return []
        values = (
            utc(now),
            owner,
            [c.run_id for c in claims],
            [c.release.pipeline for c in claims],
            [c.release.schedule for c in claims],
            [c.release.at for c in claims],
            [None if c.logical_date is None else utc(c.logical_date) for c in claims],
            [dumps_json(dict(c.params)) for c in claims],
            [TriggerKind(c.trigger).value for c in claims],
        )
        with self._write() as conn:
            won = {row[0] for row in conn.execute(_CLAIM_MANY, values).fetchall()}
        return [c.run_id in won for c in claims]

    def _bound_lock_waits(self, conn: Any) -> None:
        conn.execute("SET LOCAL lock_timeout = '2s'")

    def _insert_claims(
        self, conn: Any, claims: Sequence[RoundClaim], owner: str, created: Any
    ) -> list[bool]:
        if not claims:
            return []
        rows = [self._claim_values(item, owner, created) for item in claims]
        columns = list(zip(*rows, strict=True))
        # _claim_values order: run_id, pipeline, status, schedule, at, logical, params,
        # created, ended, error, owner, admitted
        values = (
            created,
            owner,
            list(columns[0]),
            list(columns[1]),
            list(columns[2]),
            list(columns[3]),
            list(columns[4]),
            list(columns[5]),
            list(columns[6]),
            list(columns[8]),
            list(columns[9]),
            list(columns[11]),
        )
        won = {row[0] for row in conn.execute(_ROUND_CLAIMS, values).fetchall()}
        return [item.claim.run_id in won for item in claims]

    def _insert_run(self, conn: Any, values: Sequence[Any], idempotency_key: str | None) -> None:
        if conn.execute(_INSERT_RUN, values).fetchone() is None:
            row = conn.execute(_DIALECT.sql(_sql.RUN_BY_KEY), (idempotency_key,)).fetchone()
            raise DuplicateRun(row[0] if row else "?", idempotency_key)

    def _fail_running(
        self, update: str, values: Sequence[Any], trigger: TriggerKind | None
    ) -> list[str]:
        query = (
            f"WITH closed AS ({update} RETURNING run_id, started, created) "  # noqa: S608 - constant fragments
            "SELECT run_id FROM closed ORDER BY COALESCE(started, created), run_id"
        )
        with self._write() as conn:
            rows = conn.execute(query, values).fetchall()
        return [row[0] for row in rows]

    # -- scheduler lock -----------------------------------------------------------

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
                got = conn.execute("SELECT pg_try_advisory_lock_shared(%s)", (key,)).fetchone()[0]
                if not got:
                    halves = ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)
                    row = conn.execute(_LOCK_HOLDER, halves).fetchone()
                    holder = (
                        f"{row[1] or 'unnamed session'}, server pid {row[0]}, client {row[2]}"
                        if row
                        else "unknown holder"
                    )
                    raise StoreLockedError(
                        f"the run store {self.display} is held exclusively by a scheduler "
                        f"of an older ddeutil-workflow version ({holder}); advisory lock "
                        f"{key}. Stop that daemon first: daemons of this version share the "
                        "store."
                    )
            try:
                yield
            finally:
                if not conn.closed and os.getpid() == self._pid:
                    try:
                        conn.execute("SELECT pg_advisory_unlock_shared(%s)", (key,))
                    except self._pg.Error as exc:  # the session is gone: so is the lock
                        logger.warning("could not release the scheduler lock: %s", exc)
        finally:
            if os.getpid() == self._pid:
                conn.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if os.getpid() == self._pid:
            self._pool.close()
