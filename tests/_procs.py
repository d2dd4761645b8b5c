"""Process groups in tests: is any process of a group still alive (zombies are dead)?

A killed process stays a zombie until its parent reaps it, and an orphan's new
parent (PID 1 of a container) may never do so: ``os.killpg(pgid, 0)`` still
finds it. These helpers read ``/proc`` and count only processes that are not
zombies.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["group_alive", "wait_group_gone"]


def group_alive(pgid: int) -> bool:
    """True while a non-zombie process of group ``pgid`` exists."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Wait (bounded) until no live process of group ``pgid`` is left; fail otherwise.

    A killed process needs a moment to die: the kill is delivered, not awaited.
    """
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        assert time.monotonic() < deadline, f"process group {pgid} still alive after {timeout}s"
        time.sleep(0.02)
