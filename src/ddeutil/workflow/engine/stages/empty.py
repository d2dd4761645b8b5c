"""The empty stage: log a message and/or wait; no outputs.

```yaml
- name: "Announce"
  echo: "Hello ${{ params.author-run }}"   # logged at INFO, templates rendered
  sleep: 5                                  # seconds; ends early on cancel
```
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from ...errors import StageCancelled
from ..context import RunContext
from .base import BaseStage, StageCall, StagePlan, stage_error

__all__ = ["EmptyStage"]

logger = logging.getLogger(__name__)


class EmptyStage(BaseStage):
    """A stage with no kind key: ``echo`` is logged, ``sleep`` waits (interruptibly)."""

    kind: ClassVar[str] = "empty"

    echo: str | None = Field(default=None, description="message to log; templates rendered")
    sleep: float | str | None = Field(
        default=None, description="seconds to wait (a number or a template); cancel ends it"
    )

    def _kind_templates(self) -> dict[str, Any]:
        return {"echo": self.echo}

    def templated_values(self) -> list[tuple[str, Any, bool]]:
        return [*super().templated_values(), ("echo", self.echo, True), ("sleep", self.sleep, True)]

    def _run(
        self, plan: StagePlan, ctx: Mapping[str, Any], rc: RunContext, call: StageCall
    ) -> dict[str, Any]:
        if self.echo is not None:
            message = (
                self.render(self.echo, ctx, rc, call.label)
                if "echo" in plan.templated
                else self.echo
            )
            rc.log(logger, logging.INFO, "%s", message, stage=call.label)
        if self.sleep is not None:
            seconds = self.sleep
            if isinstance(seconds, str):
                seconds = self.render(seconds, ctx, rc, call.label)
            try:
                value = float(seconds)
            except (TypeError, ValueError):
                raise stage_error(
                    f"sleep must be a number of seconds, got {seconds!r}", call, rc
                ) from None
            if value < 0:
                raise stage_error(f"sleep must not be negative, got {value:g}", call, rc)
            if value > 0 and call.token.wait(value):
                raise StageCancelled(
                    f"sleep interrupted: {call.token.reason}", stage=call.label, job=rc.job
                )
        return {}
