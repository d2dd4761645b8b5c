"""Cooperative cancellation of a run, its jobs and its stages.

A :class:`CancelToken` is handed down from :meth:`Pipeline.execute
<ddeutil.workflow.pipeline.Pipeline.execute>` to every job, matrix combination and
stage. Nothing is ever interrupted from outside a thread: work checks
:attr:`CancelToken.cancelled` at safe points (between stages, between retry
attempts) and waits with :meth:`CancelToken.wait` instead of ``time.sleep``, so a
cancel wakes it at once. Work that runs outside the interpreter registers a
callback: the bash stage kills its whole process group from one.

Tokens form a tree: :meth:`CancelToken.child` returns a token that is cancelled
when its parent is (a matrix combination, a stage timeout), while cancelling a
child leaves the parent alone.

What stops a whole process is not a cancellation: :func:`is_process_stop` tells
the few exceptions the engine lets through (see its docstring) from everything
else a stage may raise, which fails the stage.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

__all__ = ["CancelToken", "ProcessStopping", "is_process_stop"]

logger = logging.getLogger(__name__)

Callback = Callable[[str], None]


class CancelToken:
    """A thread-safe, one-way "please stop" flag with callbacks.

    Args:
        parent: When given, this token is cancelled together with ``parent``.
    """

    __slots__ = ("_callbacks", "_event", "_lock", "_reason")

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callback] = []
        self._reason: str | None = None
        if parent is not None:
            parent.add_callback(self.cancel)

    def __repr__(self) -> str:
        state = f"cancelled: {self._reason!r}" if self.cancelled else "active"
        return f"CancelToken({state})"

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called here or on an ancestor."""
        return self._event.is_set()

    @property
    def reason(self) -> str | None:
        """Why the token was cancelled (the first reason given), else ``None``."""
        return self._reason

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel this token and its children, and run the callbacks once.

        Idempotent: only the first call records its reason and runs callbacks.
        Callbacks run in the caller's thread; one that raises is logged and the
        others still run.
        """
        with self._lock:
            if self._event.is_set():
                return
            self._reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(reason)
            except Exception:
                logger.exception("cancel callback %r failed", callback)

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds or until cancelled.

        Use it instead of ``time.sleep`` for delays that must end on cancel.

        Returns:
            True when the token is cancelled (possibly before the call), False
            when the timeout passed first.
        """
        if timeout is not None and timeout <= 0:
            return self._event.is_set()
        return self._event.wait(timeout)

    def child(self) -> CancelToken:
        """A new token cancelled when this one is (not the other way round)."""
        return CancelToken(self)

    def add_callback(self, fn: Callback) -> Callable[[], None]:
        """Call ``fn(reason)`` on cancellation; at once if already cancelled.

        Returns:
            A function that unregisters ``fn`` (a no-op once it has run), so a
            stage can drop its callback when its process has ended.
        """
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(fn)
                return lambda: self._remove(fn)
        fn(self._reason or "cancelled")
        return _noop

    def _remove(self, fn: Callback) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._callbacks.remove(fn)


def _noop() -> None:
    return None


class ProcessStopping(BaseException):
    """Raised by this process's own stop machinery to unwind its main thread.

    A daemon worker process raises a subclass from its SIGTERM handler. It is a
    ``BaseException`` so that no ``except Exception`` swallows it, and the
    engine never records it as a stage failure (:func:`is_process_stop`).
    """


def is_process_stop(exc: BaseException) -> bool:
    """True when ``exc`` asks this process to stop, so the engine must let it through.

    That is a :class:`ProcessStopping`, or a ``KeyboardInterrupt`` on the main
    thread while Python's own Ctrl-C handler is installed (a script calling
    ``Pipeline.execute`` and its user pressing Ctrl-C). Every other
    ``BaseException`` a stage raises (``KeyboardInterrupt`` or ``SystemExit``
    from user code, ``asyncio.CancelledError`` leaking out of async code, a
    custom ``BaseException`` subclass) is the stage's failure: the CLI, the
    daemon's workers and the API turn Ctrl-C into a cancel token instead, and
    runs of the daemon and the API execute on threads no signal interrupts.
    """
    if isinstance(exc, ProcessStopping):
        return True
    if not isinstance(exc, KeyboardInterrupt):
        return False
    import signal  # only on this rare path

    return (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
