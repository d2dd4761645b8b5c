"""A shell script run as a process group that its stage owns, from start to end.

:func:`run_script` is the bash stage's process handling. Policy:

* **Everything the script starts belongs to the stage.** ``bash`` leads a new
  session, so every process it starts (``cmd &``, ``nohup cmd &``, pipelines,
  subshells) is in its process group. When ``bash`` exits (success, failure,
  timeout or cancellation) what is left of the group gets SIGKILL: no
  background child outlives its stage, its run or the daemon. Only a process
  that starts a session of its own (``setsid``) leaves the group; it is not
  followed.
* **Output never holds up the end.** ``stdout`` and ``stderr`` are read as they
  come. Once ``bash`` has exited and its group is killed, reading stops at the
  end of both pipes or after :data:`DRAIN_WAIT` seconds, whichever comes first,
  so a background child that keeps a pipe open cannot block the stage.
* **Bounded output.** Each stream is collected in a
  :class:`~ddeutil.workflow.engine.capture.BoundedCapture` of ``limit`` bytes.
* **Stopping.** On timeout or cancellation the group gets SIGTERM; when ``bash``
  has exited, or ``grace`` seconds later, SIGKILL.
* **The process that runs the stage dies** (a daemon worker killed with
  SIGKILL, the OOM killer): the group dies with it. Each group holds a
  watchdog, a subshell blocked reading the process's watch pipe (one per
  process, never written, its write end held by that process alone); the
  kernel closes the pipe when the process dies, and every watchdog then kills
  its whole group (``kill -KILL 0``). A watchdog ignores SIGTERM and holds
  neither output pipe. (``PR_SET_PDEATHSIG`` would
  reach ``bash`` only, not its children, and needs a pre-exec hook, which is
  unsafe in a threaded process; it also fires when the *thread* that forked
  ends.)
* **No script file is left behind.** The script file is opened and deleted
  before ``bash`` starts; ``bash`` reads it through the inherited descriptor
  (so ``$0`` is ``/dev/fd/N``). A process killed while its script runs leaves
  no file.

Waiting costs nothing while nothing happens: one ``poll`` on the two pipes and
a pidfd of ``bash`` (three descriptors per running script), woken by output, by
``bash``'s exit or by the timeout; a stop request signals the group from the
requesting thread and a timer sends the SIGKILL. Where pidfds are missing
(not Linux) the loop also checks ``bash`` every :data:`_EXIT_CHECK` seconds.
Starting a script costs one fork more than running it directly (the watchdog,
started from a ``BASH_ENV`` prelude in the script's own ``bash``): about 1 ms.
The script sees ``BASH_ENV`` as it was (a ``BASH_ENV`` of its environment is
still read, after the prelude), and ``$!`` names the watchdog until the script
starts a background job of its own.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..capture import BoundedCapture, Captured

if TYPE_CHECKING:
    import subprocess

    from ...cancellation import CancelToken

__all__ = ["DRAIN_WAIT", "ShellOutcome", "run_script"]

DRAIN_WAIT = 0.5
"""Seconds output is still read after ``bash`` exited and its group was killed."""

_EXIT_CHECK = 0.05  # without pidfds: how often the loop checks whether bash exited
_CHUNK = 65536

# What ``bash`` reads through ``BASH_ENV`` before the script, in the script's own
# process (no second ``exec``): start the watchdog in the background (it keeps
# only the watch pipe; ``disown`` keeps a bare ``wait`` of the script from waiting
# for it), close the watch pipe and this file, then give the script the
# ``BASH_ENV`` it would have had. Plain descriptor numbers, no ``{var}``
# redirections: bash 3.2 (macOS) runs it too.
_PRELUDE = (
    '( trap "" TERM INT HUP; exec %(script)d<&- %(prelude)d<&-; read -r -u %(watch)d _; '
    "kill -KILL 0 ) </dev/null >/dev/null 2>&1 &\n"
    "disown $!\n"
    "exec %(watch)d<&- %(prelude)d<&-\n"
    'if [ -n "${%(saved)s+x}" ]; then BASH_ENV=$%(saved)s; unset %(saved)s; . "$BASH_ENV"; '
    "else unset BASH_ENV; fi\n"
)
_SAVED_BASH_ENV = "__WF_USER_BASH_ENV"


@dataclass(frozen=True)
class ShellOutcome:
    """How a script ended.

    Attributes:
        returncode: ``bash``'s exit status (negative: killed by that signal).
        stdout: What was kept of its standard output.
        stderr: What was kept of its standard error.
        stopped: Why it was stopped (``timed out after 5s``, ``cancelled:
            <reason>``); ``None`` when it ended by itself.
    """

    returncode: int
    stdout: Captured
    stderr: Captured
    stopped: str | None = None


def run_script(
    path: str,
    *,
    env: Mapping[str, str],
    token: CancelToken,
    timeout: float | None,
    limit: int,
    grace: float,
    on_start: Callable[[int], None] | None = None,
    on_output: Callable[[str, bytes], None] | None = None,
) -> ShellOutcome:
    """Run the script file ``path`` with ``bash`` as a group this call owns.

    The file is deleted once opened (see the module docstring for the policy).

    Args:
        path: The script file.
        env: The script's whole environment.
        token: Cancelling it stops the script.
        timeout: Seconds before the script is stopped; ``None``: no limit.
        limit: Bytes kept of each of ``stdout`` and ``stderr``.
        grace: Seconds between SIGTERM and SIGKILL when the script is stopped.
        on_start: Called with ``bash``'s pid once it started.
        on_output: Called with ``"stdout"`` or ``"stderr"`` and each chunk as it
            is read (on the calling thread), before the chunk is captured.

    Raises:
        OSError: ``bash`` could not be started.
    """

    script = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        Path(path).unlink(missing_ok=True)
        proc = _start(script, env)
    finally:
        os.close(script)
    if on_start is not None:
        on_start(proc.pid)
    return _Group(proc, limit=limit, grace=grace, on_output=on_output).run(token, timeout)


def _start(script: int, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``bash`` on the open script file, its watchdog started by the prelude."""
    import subprocess

    watch = _WATCH.reader()
    prelude, writer = os.pipe()
    try:
        try:
            fds = {"script": script, "watch": watch, "prelude": prelude, "saved": _SAVED_BASH_ENV}
            os.write(writer, (_PRELUDE % fds).encode())  # far below a pipe's buffer
        finally:
            os.close(writer)
        environ = dict(env)
        if "BASH_ENV" in environ:
            environ[_SAVED_BASH_ENV] = environ["BASH_ENV"]
        environ["BASH_ENV"] = f"/dev/fd/{prelude}"
        return subprocess.Popen(
            ["bash", f"/dev/fd/{script}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
            start_new_session=True,
            pass_fds=(script, watch, prelude),
        )
    finally:
        os.close(prelude)


class _WatchPipe:
    """This process's watch pipe: every watchdog reads it, only this process may write.

    Nothing is ever written: the pipe ends (and every watchdog kills its group)
    when the last holder of the write end, this process, dies. Made on first
    use; a forked child makes its own (the inherited one is its parent's).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fds: tuple[int, int] | None = None

    def reader(self) -> int:
        """The read end, handed to each script (created on the first call)."""
        with self._lock:
            if self._fds is None:
                self._fds = os.pipe()  # close-on-exec: no other child inherits it
            return self._fds[0]

    def forget(self) -> None:
        """In a forked child: drop the parent's pipe (a new one is made when needed)."""
        self._lock = threading.Lock()
        if self._fds is not None:
            for fd in self._fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fds = None


_WATCH = _WatchPipe()
os.register_at_fork(after_in_child=_WATCH.forget)


class _Group:
    """One running script: its pipes, how it is stopped and the loop that waits on it.

    Stop requests (cancellation from another thread, or the timeout) send SIGTERM
    to the group at once and SIGKILL ``grace`` seconds later from a timer; both
    signals are sent under a lock and never after the loop marked the group
    ended, so a group id is never signalled once ``bash`` may have been reaped.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        limit: int,
        grace: float,
        on_output: Callable[[str, bytes], None] | None = None,
    ) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._proc = proc
        self._grace = grace
        self._on_output = on_output
        self._names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
        self._streams = {
            proc.stdout.fileno(): BoundedCapture(limit),
            proc.stderr.fileno(): BoundedCapture(limit),
        }
        self._open = set(self._streams)
        self._lock = threading.Lock()
        self._stopped: str | None = None
        self._ended = False
        for fd in self._streams:
            os.set_blocking(fd, False)

    def request_stop(self, reason: str) -> None:
        """Stop the script: SIGTERM now, SIGKILL after the grace (any thread; never blocks)."""
        with self._lock:
            if self._ended or self._stopped is not None:
                return
            self._stopped = reason
            self._signal(signal.SIGTERM)
        timer = threading.Timer(self._grace, self._kill)
        timer.daemon = True
        timer.start()

    def run(self, token: CancelToken, timeout: float | None) -> ShellOutcome:
        proc = self._proc
        pidfd = _pidfd(proc.pid)
        poller = select.poll()
        for fd in self._streams:
            poller.register(fd, select.POLLIN)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        unregister = token.add_callback(lambda reason: self.request_stop(f"cancelled: {reason}"))
        try:
            while not self._wait(poller, pidfd, deadline):
                if deadline is not None and time.monotonic() >= deadline:
                    deadline = None
                    self.request_stop(f"timed out after {timeout:g}s")
            # bash has exited; unreaped, its pid still names the group
            self._end()
            if pidfd is not None:
                poller.unregister(pidfd)
            self._drain(poller)
        finally:
            unregister()
            self._end()  # an unexpected error while waiting: never leak the group
            proc.wait()
            if pidfd is not None:
                os.close(pidfd)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        out, err = (capture.result() for capture in self._streams.values())
        return ShellOutcome(proc.returncode, out, err, self._stopped)

    def _wait(self, poller: select.poll, pidfd: int | None, deadline: float | None) -> bool:
        """Wait for the next event and read the output; True once ``bash`` has exited."""
        wakes = [] if deadline is None else [deadline]
        if pidfd is None:
            wakes.append(time.monotonic() + _EXIT_CHECK)
        wait: int | None = None
        if wakes:
            wait = max(math.ceil((min(wakes) - time.monotonic()) * 1000), 0)
        exited = False
        for fd, _ in poller.poll(wait):
            if fd == pidfd:
                exited = True
            elif not self._read(fd):
                poller.unregister(fd)
        return exited or (pidfd is None and self._proc.poll() is not None)

    def _read(self, fd: int) -> bool:
        """Read what ``fd`` holds now; False at its end."""
        capture = self._streams[fd]
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except BlockingIOError:
                return True
            if not chunk:
                self._open.discard(fd)
                return False
            if self._on_output is not None:
                self._on_output(self._names[fd], chunk)
            capture.feed(chunk)

    def _drain(self, poller: select.poll) -> None:
        """Read what the killed group left in the pipes, for :data:`DRAIN_WAIT` at most."""
        deadline = time.monotonic() + DRAIN_WAIT
        while self._open:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for fd, _ in poller.poll(math.ceil(left * 1000)):
                if fd in self._open and not self._read(fd):
                    poller.unregister(fd)

    def _end(self) -> None:
        """Kill what is left of the group; no signal is sent to it afterwards."""
        with self._lock:
            if not self._ended:
                self._ended = True
                self._signal(signal.SIGKILL)

    def _kill(self) -> None:
        with self._lock:
            if not self._ended:
                self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signum)


def _pidfd(pid: int) -> int | None:
    """A pidfd of ``pid`` (readable once it exited), or ``None`` where there are none."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None
