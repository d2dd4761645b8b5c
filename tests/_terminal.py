"""Run a command on a pseudo-terminal, as a user at a shell would, and read what it shows."""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["run_on_terminal"]


def run_on_terminal(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 30
) -> tuple[int, str]:
    """Exit code and everything the command wrote to its terminal (stdout and stderr)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        list(argv), stdin=follower, stdout=follower, stderr=follower, env=dict(env), cwd=cwd
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout), b"".join(chunks).decode()
