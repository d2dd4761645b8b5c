"""A fake ``On``: fires every ``every`` minutes since the epoch, in UTC arithmetic."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ddeutil.workflow.errors import ConfigError

NOT_A_CLASS = 5
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class On:
    """Minimal schedule with the attributes the CLI reads."""

    def __init__(self, every: int, timezone: ZoneInfo, name: str | None = None) -> None:
        self.every = every
        self.timezone = timezone
        self.name = name

    @property
    def cronjob(self) -> str:
        return f"*/{self.every} * * * *"

    @property
    def key(self) -> str:
        return f"{self.cronjob}@{self.timezone.key}"

    def fire_times(self, after: datetime) -> Iterator[datetime]:
        minutes = (after - _EPOCH) // timedelta(minutes=1)
        step = (minutes // self.every + 1) * self.every
        while True:
            yield _EPOCH + timedelta(minutes=step)
            step += self.every

    @classmethod
    def from_data(cls, data: Any, *, name: str | None, settings: Any, key: str = "") -> On:
        every = data.get("every")
        if not isinstance(every, int) or every < 1:
            raise ConfigError(
                f"`every` must be a positive number of minutes, got {every!r}", key=f"{key}every"
            )
        zone = data.get("timezone", settings.timezone.key)
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown timezone {zone!r}", key=f"{key}timezone") from None
        return cls(every, tz, name)

    @classmethod
    def from_template(cls, template: Any, *, loader: Any, settings: Any) -> On:
        return cls.from_data(template.data, name=template.name, settings=settings)
