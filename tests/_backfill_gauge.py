"""A concurrency gauge that backfill test pipelines call from a python stage.

``meet()`` counts the runs inside it, keeps the highest count, and waits on a
barrier of ``PARTIES`` runs (bounded by ``TIMEOUT``): with ``--parallel N`` and
``PARTIES = N`` the runs meet in groups of N, so the gauge reads exactly N,
more if the backfill ran too many at once, and the barrier breaks (a failed
stage) if it ran fewer.
"""

from __future__ import annotations

import threading

PARTIES = 1
TIMEOUT = 20.0
_lock = threading.Lock()
inside = 0
highest = 0
order: list[str] = []
_barrier = threading.Barrier(1)


def reset(parties: int) -> None:
    global PARTIES, inside, highest, _barrier
    with _lock:
        PARTIES, inside, highest = parties, 0, 0
        order.clear()
        _barrier = threading.Barrier(parties)


def meet(when: str) -> None:
    global inside, highest
    with _lock:
        inside += 1
        highest = max(highest, inside)
        order.append(when)
        barrier = _barrier
    try:
        barrier.wait(TIMEOUT)
    finally:
        with _lock:
            inside -= 1
