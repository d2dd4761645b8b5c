"""A pipeline's ``notify:`` key and the defaults it falls back on.

```yaml
nightly:
  type: Pipeline
  notify:
    on: [failure, recovered, missed]      # default WORKFLOW_NOTIFY_ON
    webhook: https://hooks.example.com/x  # default WORKFLOW_NOTIFY_WEBHOOK_URL
    email: [ops@example.com]              # default WORKFLOW_NOTIFY_EMAIL_TO
    late_after: 600                       # default WORKFLOW_NOTIFY_LATE_AFTER
```

Every key is optional; a key left out takes its setting. ``on: []`` turns the
pipeline's notifications off. Events:

* ``failure``: a run ended FAILED.
* ``recovered``: a run ended SUCCESS and the pipeline's previous run that ended
  SUCCESS or FAILED had failed (decided by the store, atomically with the end).
* ``missed``: a scheduled release was not started ``late_after`` seconds past
  its time (the daemon looks at every beat; see :mod:`.late`).

A webhook URL must be ``http`` or ``https`` with a host (never a file or
another scheme); addresses must look like ``name@domain``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .settings import (
    MAX_NOTIFY_ADDRESSES,
    MAX_WEBHOOK_URL,
    NotifyEvent,
    check_address,
    check_webhook_url,
)

__all__ = ["NotifyRule", "Targets"]


class NotifyRule(BaseModel):
    """The ``notify:`` key of a pipeline (see the module); ``None`` fields take the settings."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    on: tuple[NotifyEvent, ...] | None = Field(
        default=None,
        description="events told: failure, recovered, missed (default WORKFLOW_NOTIFY_ON; "
        "[] turns them off)",
    )
    webhook: str | None = Field(
        default=None,
        description="http(s) URL each notice is POSTed to as JSON "
        "(default WORKFLOW_NOTIFY_WEBHOOK_URL)",
        json_schema_extra={"pattern": "^https?://", "maxLength": MAX_WEBHOOK_URL},
    )
    email: tuple[str, ...] | None = Field(
        default=None,
        max_length=MAX_NOTIFY_ADDRESSES,
        description="addresses each notice is mailed to (default WORKFLOW_NOTIFY_EMAIL_TO)",
    )
    late_after: float | None = Field(
        default=None,
        gt=0,
        description="seconds past its time after which a release not started is told "
        "as missed (default WORKFLOW_NOTIFY_LATE_AFTER)",
    )

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        return None if value is None else check_webhook_url(value)

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, str):
                    check_address(item)
        return value

    @classmethod
    def of_template(cls, data: Mapping[str, Any]) -> NotifyRule | None:
        """The rule in a raw pipeline template's ``notify:`` key; ``None`` when absent or invalid.

        Loading the pipeline refuses an invalid key with its location; here (a
        run's end) an invalid one is ignored and the defaults apply.
        """
        raw = data.get("notify")
        if not isinstance(raw, Mapping):
            return None
        try:
            return cls.model_validate(raw)
        except ValueError:
            return None


@dataclass(frozen=True)
class Targets:
    """Who is told what for one pipeline: its rule merged over the settings.

    Attributes:
        events: The events told.
        webhook: The URL notices are POSTed to, or ``None``.
        email: The addresses notices are mailed to (empty: no email).
        late_after: Seconds past its time after which a release not started is missed.
    """

    events: frozenset[NotifyEvent]
    webhook: str | None
    email: tuple[str, ...]
    late_after: float

    @classmethod
    def resolve(
        cls,
        rule: NotifyRule | None,
        *,
        events: Iterable[NotifyEvent],
        webhook: str | None,
        email: tuple[str, ...],
        late_after: float,
    ) -> Targets:
        """Merge ``rule`` (``None``: no ``notify:`` key) over the defaults given."""
        if rule is None:
            rule = NotifyRule()
        return cls(
            events=frozenset(events if rule.on is None else rule.on),
            webhook=webhook if rule.webhook is None else rule.webhook,
            email=email if rule.email is None else rule.email,
            late_after=late_after if rule.late_after is None else rule.late_after,
        )

    def wants(self, event: NotifyEvent) -> bool:
        """Whether ``event`` is told and there is somewhere to tell it."""
        return event in self.events and bool(self.webhook or self.email)
