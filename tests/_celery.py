"""Support for the Celery executor tests: brokers, `workflow worker` processes, waits.

The brokers are real: the RabbitMQ server on loopback
(``amqp://guest:guest@127.0.0.1:5672//`` or ``WORKFLOW_TEST_AMQP_URL``), and a
``redis-server`` of each Redis test's own (Redis keeps the unacknowledged messages of
all queues in one place per database, which tests running side by side must not
share). A test skips with the reason when its broker is not there. Each test gets
queues of its own, deleted afterwards, so tests never take each other's messages.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pytest

AMQP_URL = os.environ.get("WORKFLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
WAIT = 30.0
"""Longest wait for anything a worker does (a bound, not an expected duration)."""

T = TypeVar("T")


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    port = parts.port or (5672 if parts.scheme.startswith("amqp") else 6379)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=2.0):
            return True
    except OSError:
        return False


def broker_or_skip(url: str) -> str:
    if not reachable(url):
        pytest.skip(f"no broker answers at {urlsplit(url).netloc.rpartition('@')[2]}")
    return url


def new_queue() -> str:
    return f"wf-test-{uuid.uuid4().hex[:10]}"


def delete_queues(url: str, queues: list[str]) -> None:
    """Delete the test's queues (and what is left in them) from the broker."""
    from kombu import Connection

    with Connection(url, connect_timeout=2) as conn:
        channel = conn.default_channel
        for name in queues:
            try:
                channel.queue_delete(name)
            except Exception:
                channel = conn.channel()  # a queue that was never declared closes the channel


def wait_for(what: str, check: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


class WorkerProcess:
    """A ``workflow worker`` process with its own stdout log file."""

    def __init__(
        self, env: Mapping[str, str], log: Path, *args: str, program: tuple[str, ...] = ()
    ) -> None:
        self.log = log
        self._out = log.open("wb")
        program = program or ("-m", "ddeutil.workflow")
        self.proc = subprocess.Popen(
            [sys.executable, *program, "--log-format", "json", "worker", *args],
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            return "worker ready" in self.text() or self.proc.poll() is not None

        wait_for(f"worker {self.pid} to consume", ready)
        if self.proc.poll() is not None:
            pytest.fail(f"worker exited with {self.proc.returncode}:\n{self.text()}")

    def stop(self, timeout: float = WAIT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            pytest.fail(f"worker {self.pid} did not stop within {timeout:g}s:\n{self.text()}")
        self._out.close()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._out.close()

    def close(self) -> None:
        self._out.close()


@contextmanager
def worker_process(
    env: Mapping[str, str], log: Path, *args: str, program: tuple[str, ...] = ()
) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(env, log, *args, program=program)
    try:
        worker.wait_ready()
        yield worker
    finally:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)
        worker.close()
