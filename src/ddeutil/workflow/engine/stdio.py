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
* **Into the run's log**: a block given a ``sink`` (the stage's
  :class:`~ddeutil.workflow.engine.stage_output.StageOutputLog`, when logging
  listens) hands its thread's writes to the sink instead, which logs them as
  masked lines; they are not written to the process output as well.
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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from ..masking import Masker

__all__ = ["PENDING_LIMIT", "MaskedStream", "masked_output"]

PENDING_LIMIT = 65536
"""Characters a stage's unfinished line may hold before part of it is written."""


class _Scope:
    """One thread's stage: its masker and the unfinished text per stream."""

    __slots__ = ("masker", "pending", "sink")

    def __init__(self, masker: Masker, sink: Callable[[str, str], None] | None = None) -> None:
        self.masker = masker
        self.pending: dict[MaskedStream, str] = {}
        self.sink = sink


_local = threading.local()
_guard = threading.Lock()
_running: dict[Masker, int] = {}
"""How many running scopes use each masker (for writes of threads without one)."""
_others: Masker | None = None
"""The secrets of every running scope together (``None``: no scope runs)."""


class MaskedStream:
    """A text stream that masks what stage code writes, then writes to ``raw``.

    Log handlers write beneath it (see ``masks_stage_output``): a log line written
    from a stage's thread is not that stage's output.
    """

    masks_stage_output = True
    """Marks the proxy for code that must write to the stream under it."""

    def __init__(self, raw: TextIO, name: str = "stdout") -> None:
        self.raw = raw
        self.stream_name = name

    def write(self, text: str) -> int:
        scope: _Scope | None = getattr(_local, "scope", None)
        if scope is None:
            others = _others
            self.raw.write(others.text(text) if others is not None else text)
            return len(text)
        if scope.sink is not None:
            scope.sink(self.stream_name, text)
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


def _install() -> list[MaskedStream]:
    """Put proxies over ``sys.stdout``/``sys.stderr`` unless they already are (call locked).

    A missing stream (``None``, e.g. ``pythonw``) stays missing.
    """
    out, err = sys.stdout, sys.stderr
    if out is not None and not isinstance(out, MaskedStream):
        out = sys.stdout = MaskedStream(out, "stdout")
    if err is not None and not isinstance(err, MaskedStream):
        err = sys.stderr = MaskedStream(err, "stderr")
    return [s for s in (out, err) if isinstance(s, MaskedStream)]


def _count_locked(masker: Masker, delta: int) -> None:
    """Count a scope of ``masker`` in or out; rebuild :data:`_others` when the set changes."""
    global _others  # noqa: PLW0603 - one process-wide view of the running scopes
    count = _running.get(masker, 0) + delta
    if count > 0:
        _running[masker] = count
        if count > 1 or delta < 0:
            return
    else:
        del _running[masker]
    combined: Masker | None = None
    for each in _running:
        combined = each if combined is None else combined.merged(each)
    _others = combined


@contextmanager
def masked_output(masker: Masker, sink: Callable[[str, str], None] | None = None) -> Iterator[None]:
    """Mask what the calling thread prints with ``masker`` for the block.

    With ``sink``, the thread's writes go to ``sink(stream_name, text)`` instead
    (the sink masks them).

    Nested blocks (a trigger stage running a child pipeline inline) use the
    innermost masker; the outer one is back when the inner block ends.
    """
    if not masker.active and sink is None:
        yield
        return
    scope = _Scope(masker, sink)
    outer: _Scope | None = getattr(_local, "scope", None)
    with _guard:
        streams = _install()
        _count_locked(masker, 1)
    _local.scope = scope
    try:
        yield
    finally:
        _local.scope = outer
        with _guard:
            _count_locked(masker, -1)
        for stream in (*streams, *list(scope.pending)):
            stream._drain(scope)
