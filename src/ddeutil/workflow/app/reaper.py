"""Adopt and reap orphaned descendants, so the daemon leaves no zombies as PID 1.

Processes of a bash stage outlive their parent: the group's watchdog when
``bash`` exits, and whatever the stage's group held when it is killed, or when
its worker process dies (``kill -9``, a segfault) and the watchdog kills the
group (see :mod:`ddeutil.workflow.engine.stages.shell`). They are re-parented to the
nearest *subreaper*, which is PID 1 in a container. A process that is PID 1 (or
a subreaper) must ``wait()`` for them, or each one that exits stays a zombie.

The daemon marks itself a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``), so
it behaves the same as PID 1 in a container and under systemd, and calls
:func:`reap_orphans` when it receives ``SIGCHLD``. Only zombies that no one else
in this process waits for are reaped: children managed by :mod:`multiprocessing`
(worker processes, the fork server, the resource tracker) are left to it, since
reaping them behind its back would hide their exit status. ``docker run --init``
(tini) remains the recommended set-up; this is the safety net.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import sys
from pathlib import Path

__all__ = ["become_subreaper", "reap_orphans", "zombie_children"]

logger = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process (Linux). Returns success."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        ok = bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
    if not ok:
        logger.debug("prctl(PR_SET_CHILD_SUBREAPER) failed: errno %d", ctypes.get_errno())
    return ok


def zombie_children(parent: int | None = None) -> list[int]:
    """Pids of zombie processes whose parent is ``parent`` (default: this process)."""
    ppid = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 2 and fields[0] == "Z" and int(fields[1]) == ppid:
            found.append(int(entry.name))
    return found


def _managed_pids() -> set[int]:
    """Children that :mod:`multiprocessing` waits for itself."""
    pids = {p.pid for p in multiprocessing.active_children() if p.pid is not None}
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    tracker = getattr(multiprocessing.resource_tracker, "_resource_tracker", None)
    for owner, attr in ((server, "_forkserver_pid"), (tracker, "_pid")):
        pid = getattr(owner, attr, None)
        if isinstance(pid, int):
            pids.add(pid)
    return pids


def reap_orphans() -> list[int]:
    """Wait for every zombie child not managed by :mod:`multiprocessing`; return their pids.

    Zombies are found with ``waitid(WNOWAIT)``, without reading ``/proc``: every
    bash stage leaves one orphan to reap (its group's watchdog), so this runs
    often. Only when a zombie managed by :mod:`multiprocessing` comes first is
    ``/proc`` scanned for the others.
    """
    if not Path("/proc/self/stat").exists():
        return []
    reaped: list[int] = []
    managed = _managed_pids()
    while True:
        try:
            found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return reaped  # no children at all
        if found is None:
            return reaped  # no zombie
        if found.si_pid in managed:
            break
        _reap(found.si_pid, reaped)
    for pid in zombie_children():
        if pid not in managed:
            _reap(pid, reaped)
    return reaped


def _reap(pid: int, reaped: list[int]) -> None:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    if done:
        reaped.append(pid)
        logger.debug("reaped orphaned process %d (status %d)", pid, status)
