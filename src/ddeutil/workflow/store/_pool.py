"""A small connection pool for the PostgreSQL store (no extra dependency)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import StoreError

__all__ = ["Pool"]


class Pool:
    """At most ``size`` connections, handed out one per operation (LIFO reuse).

    A caller waits up to ``timeout`` seconds for a free slot. A connection comes
    back to the idle list only when it is healthy and outside a transaction;
    a broken one is closed, and the next operation opens a fresh one. Nothing
    is retried here: a write whose outcome is unknown must not be replayed.
    """

    def __init__(self, connect: Callable[[], Any], size: int, timeout: float) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(size)
        self._mutex = threading.Lock()
        self._idle: list[Any] = []
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
            with self._mutex:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
            yield conn
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    def _give_back(self, conn: Any) -> None:
        from psycopg.pq import TransactionStatus

        healthy = not (conn.closed or conn.broken)
        if healthy and conn.info.transaction_status == TransactionStatus.IDLE:
            with self._mutex:
                if not self._closed:
                    self._idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._mutex:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
