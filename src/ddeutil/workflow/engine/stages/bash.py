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
one process group that the stage owns (:mod:`.shell`): the file is deleted
before ``bash`` starts (it reads the script through an inherited descriptor),
and whatever is left of the group when ``bash`` exits is killed. ``env`` values
are rendered (``${VAR}`` included) and turned into strings; values of sensitive
names (``*TOKEN*``, ``*PASSWORD*``, ...) are masked in what the stage records.

Outputs: ``return_code``, ``stdout`` and ``stderr`` (decoded as UTF-8, trailing
newlines stripped, secrets masked). Each stream keeps at most
``WORKFLOW_CORE_STAGE_OUTPUT_LIMIT`` bytes, its start and its end around a
``... [truncated: N bytes] ...`` line (:mod:`~ddeutil.workflow.engine.capture`). A
non-zero exit code fails the stage with the code and the last line of stderr.
Each line of both streams is also logged as it is produced (masked, capped by
``WORKFLOW_CORE_STAGE_LOG_LINES``; see :mod:`~ddeutil.workflow.engine.stage_output`).

Stopping: on ``timeout`` or cancellation the group gets SIGTERM; whatever is
left of it when ``bash`` has exited, or after a grace of
:data:`KILL_GRACE` seconds, gets SIGKILL. No process of the script outlives the
stage, nor the process running the stage (unless it started a session of its
own).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from ...errors import StageCancelled, TemplateError
from ...masking import SENSITIVE_NAME, Masker
from ..capture import Captured
from ..context import RunContext
from ..stage_output import stage_output_log
from .base import BaseStage, StageCall, StagePlan, stage_error
from .bash_binding import bind_bash
from .shell import run_script

if TYPE_CHECKING:
    from ...registry import HookRegistry

__all__ = ["KILL_GRACE", "BashStage"]

logger = logging.getLogger(__name__)

KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL when a script is stopped."""


def _text(captured: Captured, masker: Masker) -> str:
    return captured.text(masker).rstrip("\n")


class BashStage(BaseStage):
    """``bash``: a script; ``env``: extra variables; ``timeout``: kills the group."""

    kind: ClassVar[str] = "bash"
    native_timeout: ClassVar[bool] = True
    logs_prints: ClassVar[bool] = False

    bash: str = Field(
        description="the script; each ${{ }} is passed as a variable, never as code; "
        "${VAR} is left to the shell"
    )
    env: dict[str, Any] = Field(default_factory=dict, description="extra environment variables")

    @field_validator("bash")
    @classmethod
    def _bind(cls, script: str) -> str:
        try:
            bind_bash(script)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return script

    def _kind_templates(self) -> dict[str, Any]:
        return {"env": self.env}

    def _body(self, hooks: HookRegistry) -> Any:
        return bind_bash(self.bash)

    def templated_values(self) -> list[tuple[str, Any, bool]]:
        return [*super().templated_values(), ("bash", self.bash, False), ("env", self.env, True)]

    def _run(
        self, plan: StagePlan, ctx: Mapping[str, Any], rc: RunContext, call: StageCall
    ) -> dict[str, Any]:
        body = plan.body
        extra = self.render(self.env, ctx, rc, call.label) if "env" in plan.templated else self.env
        env = {**rc.environ, **{str(k): "" if v is None else str(v) for k, v in extra.items()}}
        if body.values:
            env.update(body.environ(ctx, rc.filters, call.label, rc.masker.text))
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
        lines = stage_output_log(rc, call.label, masker)
        try:
            outcome = run_script(
                path,
                env=env,
                token=call.token,
                timeout=call.timeout,
                limit=rc.settings.stage_output_limit,
                grace=KILL_GRACE,
                on_start=lambda pid: rc.log(
                    logger, logging.DEBUG, "bash started (pid %d)", pid, stage=call.label
                ),
                on_output=None if lines is None else lines.feed_bytes,
            )
        finally:
            if lines is not None:
                lines.close()
        for name, captured in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
            if captured.dropped:
                rc.log(
                    logger,
                    logging.WARNING,
                    "bash %s truncated: %d of %d bytes dropped (WORKFLOW_CORE_STAGE_OUTPUT_LIMIT)",
                    name,
                    captured.dropped,
                    captured.total,
                    stage=call.label,
                )
        stdout, stderr = _text(outcome.stdout, masker), _text(outcome.stderr, masker)
        if outcome.stopped is not None:
            raise StageCancelled(
                f"bash {outcome.stopped}; process group killed", stage=call.label, job=rc.job
            )
        if outcome.returncode != 0:
            last = stderr.strip().splitlines()[-1] if stderr.strip() else "(no stderr)"
            raise stage_error(f"bash exited with code {outcome.returncode}: {last}", call, rc)
        return {"return_code": outcome.returncode, "stdout": stdout, "stderr": stderr}
