"""The bash stage: run a shell script in its own process group.

```yaml
- name: "Land the file"
  id: land
  env:                                     # merged over the process environment
    TARGET: /data/raw/${{ params.table }}
  timeout: 600                             # seconds; kills the whole process group
  bash: |
    mkdir -p "$TARGET"
    cp input.csv "$TARGET/"
```

A ``${{ }}`` in the script is never spliced into it as text: each one becomes a
reference to an environment variable that holds its value (see
:mod:`.bash_binding`), so a value is data whatever it holds; ``${VAR}`` is left
to the shell. The script is written to a temporary file and run with
``bash`` as the leader of a new session, so it and every process it starts share
one process group. ``env`` values are rendered (``${VAR}`` included) and turned
into strings; values of sensitive names (``*TOKEN*``, ``*PASSWORD*``, ...) are
masked in what the stage records.

Outputs: ``return_code``, ``stdout`` and ``stderr`` (decoded as UTF-8, trailing
newlines stripped, secrets masked). A non-zero exit code fails the stage with
the code and the last line of stderr.

Stopping: on ``timeout`` or cancellation the group gets SIGTERM; whatever is
left of it when ``bash`` has exited, or after a grace of
:data:`KILL_GRACE` seconds, gets SIGKILL. No process of the script outlives the
stage (unless it started a session of its own).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from ..context import RunContext, stash
from ..errors import StageCancelled, TemplateError
from ..masking import SENSITIVE_NAME
from .base import BaseStage, StageCall, needs_render, stage_error
from .bash_binding import bind_bash

if TYPE_CHECKING:
    import subprocess

__all__ = ["KILL_GRACE", "BashStage", "kill_group"]

logger = logging.getLogger(__name__)

KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL when a script is stopped."""


def kill_group(proc: subprocess.Popen[bytes], grace: float | None = None) -> None:
    """Stop ``proc``'s process group: SIGTERM, wait for the leader, then SIGKILL.

    Args:
        proc: The group leader (started with ``start_new_session=True``).
        grace: Seconds to wait for the leader after SIGTERM; default
            :data:`KILL_GRACE`.
    """
    import subprocess

    grace = KILL_GRACE if grace is None else grace
    pgid = proc.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace").rstrip("\n")


class BashStage(BaseStage):
    """``bash``: a script; ``env``: extra variables; ``timeout``: kills the group."""

    kind: ClassVar[str] = "bash"
    native_timeout: ClassVar[bool] = True

    bash: str = Field(
        description="the script; each ${{ }} is passed as a variable, never as code; "
        "${VAR} is left to the shell"
    )
    env: dict[str, Any] = Field(default_factory=dict, description="extra environment variables")

    _env_tpl: ClassVar[bool] = False

    @field_validator("bash")
    @classmethod
    def _bind(cls, script: str) -> str:
        try:
            bind_bash(script)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return script

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        stash(self, _env_tpl=needs_render(self.env, env=True))

    def templated_values(self) -> list[tuple[str, Any, bool]]:
        return [*super().templated_values(), ("bash", self.bash, False), ("env", self.env, True)]

    def _run(self, ctx: Mapping[str, Any], rc: RunContext, call: StageCall) -> dict[str, Any]:
        body = bind_bash(self.bash)  # cached: scanned when the pipeline loaded
        extra = self.render(self.env, ctx, rc, call.label) if self._env_tpl else self.env
        env = {**rc.environ, **{str(k): "" if v is None else str(v) for k, v in extra.items()}}
        if body.values:
            env.update(body.environ(ctx, rc.filters, call.label))
        masker = rc.masker
        secrets = [v for k, v in env.items() if k in extra and SENSITIVE_NAME.search(k) and v]
        if secrets:
            masker = masker.with_values(*secrets)
        if call.token.cancelled:
            raise StageCancelled(f"cancelled: {call.token.reason}", stage=call.label, job=rc.job)
        # subprocess and tempfile are imported only when a script runs: a pipeline
        # without bash stages never loads them (pinned by a test)
        import tempfile

        fd, path = tempfile.mkstemp(prefix="workflow-", suffix=".sh")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body.script)
            return self._spawn(path, env, call, rc, masker)
        finally:
            Path(path).unlink(missing_ok=True)

    def _spawn(
        self, path: str, env: dict[str, str], call: StageCall, rc: RunContext, masker: Any
    ) -> dict[str, Any]:
        import subprocess

        proc = subprocess.Popen(
            ["bash", path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        rc.log(logger, logging.DEBUG, "bash started (pid %d)", proc.pid, stage=call.label)
        stopped: list[str] = []

        def on_cancel(reason: str) -> None:
            # Runs in the canceller's thread: escalate in the background so that
            # cancelling many runs never waits out one grace period after another.
            stopped.append(f"cancelled: {reason}")
            threading.Thread(target=kill_group, args=(proc,), name="bash-kill", daemon=True).start()

        unregister = call.token.add_callback(on_cancel)
        try:
            try:
                out, err = proc.communicate(timeout=call.timeout)
            except subprocess.TimeoutExpired:
                stopped.append(f"timed out after {call.timeout:g}s")
                kill_group(proc)
                out, err = proc.communicate()
        finally:
            unregister()
            if proc.poll() is None:  # an unexpected error while waiting: never leak the group
                kill_group(proc)
                proc.wait()
        stdout, stderr = masker.text(_text(out)), masker.text(_text(err))
        if stopped:
            raise StageCancelled(
                f"bash {stopped[0]}; process group killed", stage=call.label, job=rc.job
            )
        if proc.returncode != 0:
            last = stderr.strip().splitlines()[-1] if stderr.strip() else "(no stderr)"
            raise stage_error(f"bash exited with code {proc.returncode}: {last}", call, rc)
        return {"return_code": proc.returncode, "stdout": stdout, "stderr": stderr}
