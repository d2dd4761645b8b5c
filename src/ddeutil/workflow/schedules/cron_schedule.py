"""The scheduler's own schedule record: a cron expression in a zone, without pydantic.

:class:`~ddeutil.workflow.schedules.on.On` is a pydantic model: it validates a
schedule template and reports every problem with its key. Once a template has
validated, the scheduler only needs the fire times, and importing pydantic costs
the daemon's parent process about as much memory as everything else it loads.
:class:`CronSchedule` holds the same values (``cronjob``, ``timezone``,
``name``, ``jitter``) as a frozen dataclass and computes the same fire times with the same
:class:`~ddeutil.workflow.schedules.dst.ZonedCron` (the daylight-saving policy of
:mod:`~ddeutil.workflow.schedules.dst`); it implements the planner's
:class:`~ddeutil.workflow.schedules.planner.Schedule` protocol. Schedules with the
same expression and zone share one compiled ``ZonedCron``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .cron import CronExpression
from .dst import ZonedCron, zoned_cron

if TYPE_CHECKING:
    from .on import On

__all__ = ["CronSchedule"]


@dataclass(frozen=True)
class CronSchedule:
    """A validated schedule: the fire times of ``cronjob`` read in ``timezone``.

    Attributes:
        cronjob: The expression; ``str(cronjob)`` is the expression as written.
        timezone: The zone whose wall clock the fields match.
        name: The schedule template's name, when it came from one.
        jitter: Seconds a release may start after its fire time (``0``: none;
            see :mod:`~ddeutil.workflow.schedules.jitter`). Not part of :attr:`key`.
    """

    cronjob: CronExpression
    timezone: ZoneInfo
    name: str | None = None
    jitter: int = 0
    _cron: ZonedCron = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cron", zoned_cron(self.cronjob, self.timezone))

    def __reduce__(self) -> tuple[Any, ...]:
        return (CronSchedule, (self.cronjob, self.timezone, self.name, self.jitter))

    @classmethod
    def of(cls, on: On) -> CronSchedule:
        """The record of a validated :class:`~ddeutil.workflow.schedules.on.On`."""
        return cls(on.cronjob, on.timezone, on.name, on.jitter)

    @classmethod
    def parse(cls, cron: str, zone: str, name: str | None = None, jitter: int = 0) -> CronSchedule:
        """A record from the text of a validated schedule (``str(cronjob)``, zone key, jitter).

        Raises:
            ScheduleError: the expression is invalid.
            ZoneInfoNotFoundError: the zone is unknown.
        """
        return cls(CronExpression.parse(cron), ZoneInfo(zone), name, jitter)

    @property
    def key(self) -> str:
        """Stable identity of the fire times, for release claims: ``"<cron>@<zone>"``."""
        return f"{self.cronjob}@{self.timezone.key}"

    def fire_times(
        self, after: datetime, until: datetime | None = None, *, newest_first: bool = False
    ) -> Iterator[datetime]:
        """Fire times in ``(after, until]`` as aware UTC, like :meth:`On.fire_times
        <ddeutil.workflow.schedules.on.On.fire_times>` (datetime bounds only)."""
        high = None if until is None else self._aware(until)
        return self._cron.fire_times(self._aware(after), high, newest_first=newest_first)

    def _aware(self, when: datetime) -> datetime:
        """A naive ``when`` is a wall-clock time in the schedule's zone."""
        if not isinstance(when, datetime):
            raise TypeError(f"expected a datetime, got {type(when).__name__}")
        if when.tzinfo is None or when.utcoffset() is None:
            return when.replace(tzinfo=self.timezone)
        return when
