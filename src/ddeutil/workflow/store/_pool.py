"""A small connection pool for the PostgreSQL store (no extra dependency)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import StoreError

__all__ = ["Pool"]


class Pool:
    """At most ``size`` connections, handed out one per operation (LIFO reuse).

    A caller waits up to ``timeout`` seconds for a free slot. A connection comes
    back to the idle list only when it is healthy and outside a transaction;
    a broken one is closed. One that sat idle longer than ``check_after``
    seconds is pinged before use and replaced if the server dropped it (a
    database restart between two daemon ticks costs nothing). A connection
    found broken in use also drops every idle one (after a server restart they
    are all dead), so an outage fails one operation, not one per pooled
    session. Statements are never retried: a write whose outcome is unknown
    must not be replayed.
    """

    def __init__(
        self, connect: Callable[[], Any], size: int, timeout: float, check_after: float = 5.0
    ) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self.check_after = check_after
        self._slots = threading.BoundedSemaphore(size)
        self._mutex = threading.Lock()
        self._idle: list[tuple[Any, float]] = []
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Any]:
        if not self._slots.acquire(timeout=self._timeout):
            raise StoreError(
                f"no PostgreSQL connection became free within {self._timeout:g}s "
                f"(pool_size={self._size})"
            )
        conn = None
        try:
            conn = self._take()
            yield conn
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    def _take(self) -> Any:
        with self._mutex:
            conn, since = self._idle.pop() if self._idle else (None, 0.0)
        if conn is not None and time.monotonic() - since > self.check_after:
            try:
                conn.execute("SELECT 1")
            except Exception:
                conn.close()
                conn = None
        return self._connect() if conn is None else conn

    def _give_back(self, conn: Any) -> None:
        from psycopg.pq import TransactionStatus

        broken = conn.closed or conn.broken
        if not broken and conn.info.transaction_status == TransactionStatus.IDLE:
            with self._mutex:
                if not self._closed:
                    self._idle.append((conn, time.monotonic()))
                    return
        conn.close()
        if broken:
            with self._mutex:
                idle, self._idle = self._idle, []
            for other, _ in idle:
                other.close()

    def close(self) -> None:
        with self._mutex:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()
