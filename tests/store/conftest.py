"""Fixtures for the run store contract suite: one store per implementation.

PostgreSQL tests use the ``postgres_url`` fixture of ``tests/conftest.py`` (a
fresh schema per test; skipped with the reason when no server answers).
"""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ddeutil.workflow.store import RunStore, open_store

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
PROC_SCRIPT = Path(__file__).with_name("_store_proc.py")


def _url_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite-memory":
        return "sqlite://:memory:"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'runs.db'}"
    if kind == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    raise AssertionError(kind)


@pytest.fixture(params=["memory", "sqlite-memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of each store implementation (a fresh store per test)."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of each store that several processes (and reopens) can share."""
    return _url_for(request.param, request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[RunStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


class Proc:
    """A helper process running ``_store_proc.py``, driven line by line."""

    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(PROC_SCRIPT), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,  # unbuffered: select() on the pipe sees every line
        )

    def readline(self, timeout: float = 30.0) -> str:
        """Return the next stdout line, failing the test after ``timeout``."""
        assert self.popen.stdout is not None
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            self.kill()
            pytest.fail(f"helper process gave no output within {timeout}s")
        line = self.popen.stdout.readline()
        if not line:
            _, err = self.popen.communicate(timeout=timeout)
            pytest.fail(f"helper process exited early: {err.decode()}")
        return line.decode().strip()

    def send(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line.encode() + b"\n")

    def finish(self, timeout: float = 30.0) -> str:
        """Close stdin, wait for exit (bounded) and return the rest of stdout."""
        out, err = self.popen.communicate(timeout=timeout)
        assert self.popen.returncode == 0, err.decode()
        return out.decode()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.communicate(timeout=30)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Proc]]:
    """Start helper processes; any still alive at teardown are killed."""
    procs: list[Proc] = []

    def _spawn(*args: str) -> Proc:
        proc = Proc(*args)
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        if proc.popen.poll() is None:
            proc.kill()
        for stream in (proc.popen.stdin, proc.popen.stdout, proc.popen.stderr):
            if stream is not None and not stream.closed:
                stream.close()
