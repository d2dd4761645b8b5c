"""The SQLite run store: one file, the default (``sqlite:///<path>``).

Concurrency model:

* **Threads of one process** share one connection guarded by a mutex. Every
  write is one ``BEGIN IMMEDIATE`` transaction, so the write lock is taken up
  front and a transaction never fails half-way on a lock upgrade. SQLite allows
  one writer at a time anyway: ``benchmarks/bench_store.py`` measured a
  connection per thread within noise of the shared one (both ~7-11k claims/s
  on 1 or 8 threads), so the simpler design stays. The run updates of the
  worker threads (``mark_running``, ``finish``) are **group-committed**: the
  updates threads queue while the connection is busy go into one transaction,
  and each caller returns once the transaction with its update committed. A
  burst of runs then costs a few transactions instead of two per run, and the
  processes contend for the database's write lock that much less.
* **Processes** (daemon, workers, API, CLI) each open their own store from the
  same URL. WAL mode lets readers run beside the writer; writers wait up to the
  busy timeout (``?timeout=30`` seconds by default). The release claim is a
  UNIQUE constraint, so it holds across processes without any help from Python.
* **Durability**: ``synchronous=NORMAL`` by default: a committed write survives
  any crash of the process (``kill -9`` included), which is what exactly-once
  across daemon restarts needs; only a power cut or kernel crash may roll back
  the last commits. ``?synchronous=full`` fsyncs every commit and survives those
  too; single writes then cost an fsync each (3x to 25x slower on this VM,
  depending on disk load), batched claims (:meth:`claim_many`) one per batch.

The scheduler lock is ``fcntl.flock`` on ``<db path>.lock``; the file holds the
owner's name and pid while held, and the kernel drops the lock when the holder
dies. A store object is bound to the process that opened it: after ``fork`` open
a new one (the inherited lock descriptor is closed in the child, so a worker
process never keeps the daemon's lock alive).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError, StoreLockedError
from . import _sql
from ._codec import loads_json, ts_text, utc
from ._sqlbase import SqlRunStore
from .base import Claim, DuplicateRun, NewRun, TriggerKind
from .memory import LOCAL_LOCKS

__all__ = ["SqliteRunStore"]

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_HELD_LOCK_FDS: set[int] = set()


def _close_inherited_locks() -> None:
    # A forked child shares the parent's open file description: keeping it open
    # would keep the scheduler lock alive after the parent dies. Close (never
    # unlock: that would release the parent's lock too).
    for fd in list(_HELD_LOCK_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCK_FDS.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


def _ts_out(value: str) -> datetime:
    return utc(datetime.fromisoformat(value))


_DIALECT = _sql.Dialect(
    placeholder="?",
    ts_in=ts_text,
    ts_out=_ts_out,
    json_out=loads_json,
    ts_type="TEXT",
    json_type="TEXT",
)


class SqliteRunStore(SqlRunStore):
    """A :class:`~.base.RunStore` in one SQLite file (or ``:memory:``).

    Args:
        path: The database file (parent folders are created) or ``":memory:"``
            (one process only; the scheduler lock is then process-local).
        busy_timeout: Seconds a write waits for another process's transaction.
        synchronous: SQLite ``synchronous`` level (``NORMAL`` or ``FULL``).

    Raises:
        StoreError: the file cannot be opened, or its schema is newer than this
            version of ddeutil-workflow understands.
    """

    _dialect = _DIALECT
    _kind = "SQLite"
    _finish_sql = _sql.FINISH
    _driver_error: type[Exception] = sqlite3.Error

    def shared(self) -> bool:
        return False

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 30.0, synchronous: str = "NORMAL"
    ) -> None:
        level = synchronous.upper()
        if level not in _SYNCHRONOUS:
            raise StoreError(
                f"sqlite synchronous must be one of {_SYNCHRONOUS}, got {synchronous!r}"
            )
        self.synchronous = level
        self.busy_timeout = busy_timeout
        self._memory = str(path) == ":memory:"
        self.path = str(path) if self._memory else str(Path(path).expanduser().absolute())
        self._mutex = threading.RLock()
        self._queue_lock = threading.Lock()
        self._queued: list[_Update] = []
        self._pid = os.getpid()
        self._closed = False
        self._marked: set[str] = set()
        try:
            if not self._memory:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the SQLite run store {self.path}: {exc}") from exc
        try:
            with self._errors():
                self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                self._wal(time.monotonic() + busy_timeout)
                self._conn.execute(f"PRAGMA synchronous = {level}")
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"SqliteRunStore({self.path!r})"

    def _wal(self, deadline: float) -> None:
        """Switch to WAL; retried while another process creates the same file.

        Changing the journal mode of a new database does not wait on the busy
        timeout: two processes opening a fresh store at once (a daemon and its
        workers starting together) would otherwise see "database is locked".
        """
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)  # the other process holds the lock for milliseconds

    # -- plumbing -----------------------------------------------------------------

    @property
    def _label(self) -> str:
        return self.path

    def _connection(self) -> sqlite3.Connection:
        self._check_open()
        return self._conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._mutex, self._errors():
            yield self._connection()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: commit on success, else roll back."""
        with self._mutex, self._errors():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # some errors (disk full, I/O) roll back by themselves
                    conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _update_one(self, sql: str, values: Sequence[Any]) -> bool:
        """Group commit: one transaction for the updates threads queued meanwhile.

        The caller queues its update, then takes the connection: the first
        thread to get it commits every update queued so far in one ``BEGIN
        IMMEDIATE`` transaction; a thread whose update was committed by another
        returns at once. Every caller returns only after the transaction holding
        its update committed (the same durability as a transaction of its own).
        If a shared transaction fails, each of its updates is retried alone, so
        each caller gets its own outcome.
        """
        update = _Update(sql, values)
        with self._queue_lock:
            self._queued.append(update)
        with self._mutex:
            if not update.done:
                with self._queue_lock:
                    batch, self._queued = self._queued, []
                self._commit_updates(batch)
        if update.error is not None:
            raise update.error
        return update.changed

    def _commit_updates(self, batch: list[_Update]) -> None:
        try:
            with self._write() as conn:
                changed = [conn.execute(u.sql, u.values).rowcount == 1 for u in batch]
        except BaseException as exc:
            if not isinstance(exc, Exception):  # e.g. KeyboardInterrupt: nobody waits forever
                interrupted = StoreError(
                    f"SQLite run store {self.path}: shared transaction interrupted "
                    f"({type(exc).__name__})"
                )
                for update in batch:
                    update.fail(interrupted)
                raise
            if len(batch) == 1:
                batch[0].fail(exc)
                return
            for update in batch:  # each alone: its own outcome
                self._commit_updates([update])
            return
        for update, ok in zip(batch, changed, strict=True):
            update.finish(ok)

    def _migrate(self) -> None:
        with self._errors():
            exists = self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workflow_meta'"
            ).fetchone()
            if exists:
                row = self._conn.execute(_sql.GET_VERSION).fetchone()
                if row and int(row[0]) == _sql.SCHEMA_VERSION:
                    return
        with self._write() as conn:
            self._migrate_schema(conn)

    # -- claims and runs --------------------------------------------------------

    def claim_many(
        self, claims: Sequence[Claim], *, now: datetime, owner: str | None = None
    ) -> list[bool]:
        created = utc(now)
        rows = [_DIALECT.run_values(NewRun.claimed(c, created, owner)) for c in claims]
        with self._write() as conn:
            return [conn.execute(_sql.CLAIM, row).rowcount == 1 for row in rows]

    def _insert_run(
        self, conn: sqlite3.Connection, values: Sequence[Any], idempotency_key: str | None
    ) -> None:
        if idempotency_key is not None:
            row = conn.execute(_sql.RUN_BY_KEY, (idempotency_key,)).fetchone()
            if row is not None:
                raise DuplicateRun(row[0], idempotency_key)
        conn.execute(_sql.INSERT_RUN, values)

    def _fail_running(
        self, update: str, values: Sequence[Any], trigger: TriggerKind | None
    ) -> list[str]:
        query, selected = _sql.RUNNING_UNOWNED, []
        if trigger is not None:
            query, selected = query + " AND trigger_kind = ?", [TriggerKind(trigger).value]
        query += " " + _sql.RUNNING_ORDER
        with self._write() as conn:
            ids = [row[0] for row in conn.execute(query, selected).fetchall()]
            conn.execute(update, values)
        return ids

    # -- scheduler lock -----------------------------------------------------------

    @property
    def lock_path(self) -> str | None:
        """The scheduler lock file (``None`` for an in-memory database)."""
        return None if self._memory else f"{self.path}.lock"

    def scheduler_lock(self, owner: str) -> AbstractContextManager[None]:
        with self._read():
            pass  # refuse a closed or foreign-process store up front
        if self.lock_path is None:
            return LOCAL_LOCKS.hold(f"sqlite:{id(self)}", owner, what=f"{self!r}")
        return _file_lock(self.lock_path, owner, store=self.path)

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            if os.getpid() == self._pid:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA optimize")  # refresh planner statistics
                self._conn.close()


class _Update:
    """One queued single-row UPDATE of :meth:`SqliteRunStore._update_one`."""

    __slots__ = ("changed", "done", "error", "sql", "values")

    def __init__(self, sql: str, values: Sequence[Any]) -> None:
        self.sql = sql
        self.values = values
        self.done = False
        self.changed = False
        self.error: BaseException | None = None

    def finish(self, changed: bool) -> None:
        self.changed = changed
        self.done = True

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done = True


@contextmanager
def _file_lock(lock_path: str, owner: str, *, store: str) -> Iterator[None]:
    """Hold ``flock(LOCK_EX)`` on ``lock_path``; refuse at once if it is held."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open the scheduler lock file {lock_path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown holder"
        os.close(fd)
        raise StoreLockedError(
            f"the run store {store} is in use by another scheduler ({holder}); "
            f"lock file {lock_path}. Stop that daemon first or use another run store."
        ) from None
    pid = os.getpid()
    _HELD_LOCK_FDS.add(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"owner {owner}, pid {pid}, host {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        _HELD_LOCK_FDS.discard(fd)
        if os.getpid() == pid:  # a forked child must not unlock its parent's lock
            try:
                os.ftruncate(fd, 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
