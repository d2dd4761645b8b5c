"""The process's stdout and stderr as a masking boundary for stage code.

Stage code (a ``run`` body, a hook) may ``print()`` a secret. What it prints
goes to the process output: the terminal, or the daemon's journal. So stages run
inside :func:`masked_output`, which makes sure ``sys.stdout`` and ``sys.stderr``
are :class:`MaskedStream` proxies (installed once, over whatever stream is
current) and registers the stage's masker for the calling thread.

Policy:

* **Writes of a stage's thread** are held until a line is complete, masked with
  that stage's masker, then written. A line is cut early only when it grows past
  :data:`PENDING_LIMIT` characters, never inside a secret or a possible start
  of one; what is still held when the stage ends is written then.
* **Writes of any other thread** (e.g. a thread started by stage code) while
  stages run are masked, write by write, with every running stage's masker.
* Without a running stage the proxies pass writes through unchanged (log
  handlers mask their own lines).
* Bytes written around ``sys.stdout`` (``sys.stdout.buffer``, ``os.write(1, ...)``,
  a child process inheriting the descriptor) are not seen here.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from .masking import Masker

__all__ = ["PENDING_LIMIT", "MaskedStream", "masked_output"]

PENDING_LIMIT = 65536
"""Characters a stage's unfinished line may hold before part of it is written."""


class _Scope:
    """One thread's stage: its masker and the unfinished text per stream."""

    __slots__ = ("masker", "pending")

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self.pending: dict[MaskedStream, str] = {}


_local = threading.local()
_guard = threading.Lock()
_scopes: dict[int, _Scope] = {}
"""Running scopes by thread id (for writes of threads without one)."""
_others: Masker | None = None
"""Every running scope's secrets together (``None``: no scope runs)."""


class MaskedStream:
    """A text stream that masks what stage code writes, then writes to ``raw``."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        scope: _Scope | None = getattr(_local, "scope", None)
        if scope is None:
            others = _others
            self.raw.write(others.text(text) if others is not None else text)
            return len(text)
        pending = scope.pending.get(self, "") + text
        cut = scope.masker.release_point(pending, PENDING_LIMIT)
        if cut:
            self.raw.write(scope.masker.text(pending[:cut]))
            pending = pending[cut:]
        scope.pending[self] = pending
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.raw.flush()

    def _drain(self, scope: _Scope) -> None:
        pending = scope.pending.pop(self, "")
        if pending:
            self.raw.write(scope.masker.text(pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def _install() -> tuple[MaskedStream, MaskedStream]:
    """Put proxies over ``sys.stdout``/``sys.stderr`` unless they already are (call locked)."""
    out, err = sys.stdout, sys.stderr
    if not isinstance(out, MaskedStream):
        out = sys.stdout = MaskedStream(out)
    if not isinstance(err, MaskedStream):
        err = sys.stderr = MaskedStream(err)
    return out, err


def _recompute_locked() -> None:
    global _others  # noqa: PLW0603 - one process-wide view of the running scopes
    combined: Masker | None = None
    for scope in _scopes.values():
        if scope.masker.active:
            combined = scope.masker if combined is None else combined.merged(scope.masker)
    _others = combined


@contextmanager
def masked_output(masker: Masker) -> Iterator[None]:
    """Mask what the calling thread prints with ``masker`` for the block.

    Nested blocks (a trigger stage running a child pipeline inline) use the
    innermost masker; the outer one is back when the inner block ends.
    """
    if not masker.active:
        yield
        return
    scope = _Scope(masker)
    ident = threading.get_ident()
    with _guard:
        streams = _install()
        outer: _Scope | None = getattr(_local, "scope", None)
        _local.scope = scope
        _scopes[ident] = scope
        _recompute_locked()
    try:
        yield
    finally:
        with _guard:
            _local.scope = outer
            if outer is None:
                del _scopes[ident]
            else:
                _scopes[ident] = outer
            _recompute_locked()
        for stream in (*streams, *list(scope.pending)):
            stream._drain(scope)
