"""Schedules: the ``On`` template and its fire times (:meth:`On.fire_times`).

A schedule is a cron expression read in one IANA time zone::

    on_every_5_min:
      type: on.On
      cron: "*/5 * * * *"        # or `cronjob:` (not both), or the interval shorthand
      timezone: "Asia/Bangkok"    # optional; default WORKFLOW_CORE_TIMEZONE

    on_daily_0130:
      type: on.On
      interval: daily             # daily | weekly | monthly
      time: "01:30"               # "HH:MM", default "00:00" -> cron "30 1 * * *"
      jitter: 30s                 # optional; start each release 0-29 s late (see .jitter)

``interval: weekly`` takes ``day:`` as a name (``MON``, ``Monday``) or a number 0-6
(0 = Sunday), default Monday; ``interval: monthly`` takes ``day:`` 1-31, default 1
(months without that day are skipped, as in cron). ``type`` is accepted and ignored;
any other key is an error, so a misspelt ``timezone`` is not silently dropped.

Time rules:

* Fire times follow the daylight-saving policy documented in :mod:`.dst`.
* Every naive datetime given to a schedule (a ``fire_times`` bound), and a bound
  string without an offset, is a wall-clock time in the *schedule's* zone, never the
  machine's. An ambiguous or non-existent naive
  time is read as Python reads it (``fold=0``: the first of two, or the offset
  before the gap).
* Fire times are whole-second instants; ``after`` / ``until`` bounds with
  microseconds compare exactly.

Every problem is a :class:`~ddeutil.workflow.errors.ScheduleError` (a ``ConfigError``)
whose ``key`` names the offending key (``cron``, ``cronjob``, ``timezone``,
``interval``, ``time``, ``day``, ``jitter``); pydantic's ``ValidationError`` never escapes.

``H`` items (``H H * * *``, ``H/15``, ``H(1-4)``; :mod:`.hashed`) are resolved to
plain numbers while validating, seeded by the pipeline's name when a pipeline builds
the schedule (``seed=``), else by the template's name, else by the expression itself.
``cronjob`` (and so ``key``) is the resolved expression; ``written`` keeps the text
as written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import Self

from ..errors import ConfigError, ScheduleError
from .cron import CronExpression
from .dst import ZonedCron, zoned_cron
from .hashed import cron_label, resolve_hashes
from .jitter import parse_jitter

if TYPE_CHECKING:
    from ..loader import Loader, RawTemplate
    from ..settings import Settings

__all__ = ["On"]

UTC = timezone.utc
_INTERVALS = ("daily", "weekly", "monthly")
_WEEKDAYS = {
    name: number
    for number, full in enumerate(
        ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
    )
    for name in (full, full[:3])
}


class On(BaseModel):
    """A schedule: a cron expression read in one time zone.

    Build one with :meth:`from_loader` / :meth:`from_template` (templates on disk),
    :meth:`from_value` (a pipeline's ``on`` entry) or :meth:`parse` (a mapping). A
    mapping validated directly (``On.model_validate(data, context={"default_tz": zone})``)
    takes the zone from ``default_tz``, else from the documented default of
    ``WORKFLOW_CORE_TIMEZONE``.

    Attributes:
        cronjob: The expression; ``str(on.cronjob)`` is the expression as written,
            with any ``H`` item resolved to numbers.
        timezone: The zone whose wall clock the fields match (serialised as its key).
        name: The template name when loaded from a template.
        written: The expression as written when it had ``H`` items, else None (not
            part of ``key``, never dumped); :attr:`label` shows both.
        jitter: Seconds each release may start after its fire time (``0``: none;
            the offsets are in :mod:`.jitter`). Not part of :attr:`key`.
        zoned_cron: ``cronjob`` read in ``timezone``, derived when the schedule is
            validated (never given, never dumped). A field rather than a pydantic
            private attribute: the scheduler reads it once per schedule and tick,
            and a private attribute read costs about 1.9 us of a 3.3 us quiet tick.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    cronjob: CronExpression
    timezone: ZoneInfo
    name: str | None = None
    written: SkipJsonSchema[str | None] = Field(default=None, exclude=True)
    jitter: int = 0
    zoned_cron: SkipJsonSchema[ZonedCron] = Field(exclude=True, repr=False)

    _KEYS: ClassVar[frozenset[str]] = frozenset(
        {"type", "cron", "cronjob", "timezone", "interval", "time", "day", "name", "jitter"}
    )

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any, info: ValidationInfo) -> Any:
        """Turn the YAML shape into the three fields; every problem is a ScheduleError."""
        if not isinstance(data, Mapping):
            raise ScheduleError(
                "a schedule must be a mapping with `cron` (or `cronjob`) and an optional "
                f"`timezone`, got {type(data).__name__}"
            )
        context = info.context or {}
        unknown = sorted(str(key) for key in data if key not in cls._KEYS)
        if unknown:
            raise ScheduleError(
                f"unknown key {unknown[0]!r}; a schedule takes cron (or cronjob), timezone, "
                "or interval with time and day, and jitter",
                key=unknown[0],
            )
        name = data.get("name", context.get("name"))
        if name is not None and not isinstance(name, str):
            raise ScheduleError(f"name must be a string, got {name!r}", key="name")
        written, cronjob = _read_cron(data, context.get("seed") or name)
        zone = _read_zone(data.get("timezone"), context.get("default_tz"))
        return {
            "cronjob": cronjob,
            "timezone": zone,
            "name": name,
            "written": written,
            "jitter": parse_jitter(data.get("jitter")),
            "zoned_cron": zoned_cron(cronjob, zone),
        }

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; with ``update`` the result is validated again (and recompiled)."""
        if not update:
            return super().model_copy(deep=deep)
        fields = {
            "cronjob": self.cronjob,
            "timezone": self.timezone,
            "name": self.name,
            "jitter": self.jitter,
        }
        copy = type(self).parse({**fields, **update})
        if self.written is None or "cron" in update or "cronjob" in update:
            return copy
        return super(On, copy).model_copy(update={"written": self.written})

    # ---------------------------------------------------------------- builders

    @classmethod
    def parse(
        cls,
        data: Mapping[str, Any],
        *,
        default_tz: ZoneInfo | str | None = None,
        name: str | None = None,
        seed: str | None = None,
    ) -> Self:
        """Validate one schedule mapping.

        Args:
            data: ``cron`` or ``cronjob`` (or ``interval``/``time``/``day``), optional
                ``timezone`` and ``jitter``; ``type`` is ignored.
            default_tz: Zone used when ``data`` names none (normally
                ``settings.timezone``).
            name: Template name to record when ``data`` has no ``name``.
            seed: What ``H`` items are stable for (a pipeline's name); default the
                schedule's name, else the expression.

        Raises:
            ScheduleError: with ``key`` naming the bad key.
        """
        context = {"default_tz": default_tz, "name": name, "seed": seed}
        try:
            return cls.model_validate(data, context=context)
        except ValidationError as exc:
            raise _from_validation(exc) from exc

    @classmethod
    def from_template(
        cls,
        template: RawTemplate,
        *,
        loader: Loader,
        settings: Settings,
        seed: str | None = None,
    ) -> Self:
        """Build the schedule a template describes; zone default ``settings.timezone``.

        ``H`` items are seeded by ``seed``, default the template's name.

        Raises:
            ScheduleError: located at the template's file, name and key.
        """
        try:
            return cls.parse(
                template.data, default_tz=settings.timezone, name=template.name, seed=seed
            )
        except ConfigError as exc:
            raise exc.located(file=str(template.file), template=template.name) from exc

    @classmethod
    def from_loader(
        cls,
        name: str,
        externals: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
        loader: Loader | None = None,
    ) -> Self:
        """Load the schedule template ``name`` from the conf folder.

        Args:
            name: Template name.
            externals: Keys shallow-merged over the template's top-level keys before
                validation (e.g. ``{"timezone": "UTC"}``).
            settings: Default ``Settings.from_env()`` (reads the environment).
            loader: Default ``Loader.from_settings(settings)``.

        Raises:
            TemplateNotFound: no usable template has that name.
            ConfigError: the template is not a schedule, or is invalid.
        """
        if settings is None:
            from ..settings import Settings

            settings = Settings.from_env()
        if loader is None:
            from ..loader import Loader

            loader = Loader.from_settings(settings)
        template = _schedule_template(loader, name)
        if externals:
            template = dataclasses.replace(template, data={**template.data, **externals})
        return cls.from_template(template, loader=loader, settings=settings)

    @classmethod
    def from_value(
        cls,
        value: str | Mapping[str, Any],
        *,
        loader: Loader,
        settings: Settings,
        seed: str | None = None,
    ) -> Self:
        """Build a pipeline's ``on`` entry: a template name or an inline mapping.

        ``seed`` is the pipeline's name: ``H`` items resolve per pipeline, so one
        template shared by several pipelines spreads them out.

        Raises:
            TemplateNotFound: a name that names no template.
            ConfigError: the named template is not a schedule.
            ScheduleError: the schedule is invalid (inline: ``key`` relative to it).
        """
        if isinstance(value, str):
            return cls.from_template(
                _schedule_template(loader, value), loader=loader, settings=settings, seed=seed
            )
        if isinstance(value, Mapping):
            return cls.parse(value, default_tz=settings.timezone, seed=seed)
        raise ScheduleError(
            "a schedule must be a template name or a mapping with `cron`, "
            f"got {type(value).__name__}"
        )

    # ------------------------------------------------------------------- times

    @property
    def key(self) -> str:
        """Stable identity of the fire times, for release claims: ``"<cron>@<zone>"``."""
        return f"{self.cronjob}@{self.timezone.key}"

    @property
    def label(self) -> str:
        """The expression for people: ``"H H(1-4) * * * (= 37 2 * * *)"`` with ``H``."""
        return cron_label(str(self.cronjob), self.written)

    def fire_times(
        self,
        after: datetime | str,
        until: datetime | str | None = None,
        *,
        newest_first: bool = False,
    ) -> Iterator[datetime]:
        """The fire times in ``(after, until]``, as aware UTC datetimes, computed lazily.

        Oldest first, and without ``until`` for ever: ``next(on.fire_times(t))`` is
        the first fire time strictly after ``t``. With ``newest_first`` they are
        walked backwards from ``until`` (required then), so the newest few of a long
        span cost a few steps. Naive bounds, and strings (ISO date-times) without an
        offset, are read in the schedule's zone. Convert a result with
        ``.astimezone(on.timezone)`` to see it on the schedule's wall clock.

        Raises:
            ValueError: a bound is a string that is not an ISO date-time, or
                ``newest_first`` without ``until``.
            TypeError: a bound is neither a datetime nor a string.
        """
        high = None if until is None else self._aware(until)
        return self.zoned_cron.fire_times(self._aware(after), high, newest_first=newest_first)

    def _aware(self, when: datetime | str) -> datetime:
        if isinstance(when, datetime):
            if when.tzinfo is not None and when.utcoffset() is not None:
                return when
            return when.replace(tzinfo=self.timezone)
        if isinstance(when, str):
            return self._aware(_parse_start(when))
        raise TypeError(f"expected a datetime, got {type(when).__name__}")


@lru_cache(maxsize=1)
def _fallback_zone() -> ZoneInfo:
    """The documented default of WORKFLOW_CORE_TIMEZONE (not the process environment)."""
    from ..settings import env_table

    default = next(d for var, d, _ in env_table() if var == "WORKFLOW_CORE_TIMEZONE")
    return ZoneInfo(default)


def _parse_start(text: str) -> datetime:
    raw = text.strip()
    if raw[-1:] in ("Z", "z"):
        raw = raw[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"invalid start {text!r}: expected an ISO date-time such as '2022-01-01 00:00:00'"
        ) from None


def _schedule_template(loader: Loader, name: str) -> RawTemplate:
    template = loader.get(name)
    resolved = loader.resolve_class(template)
    if not issubclass(resolved, On):
        raise template.error(
            f"template {name!r} has type {template.type!r}, which is not a schedule (on.On)",
            key="type",
        )
    return template


def _read_zone(value: Any, default: Any) -> ZoneInfo:
    if value is None:
        if default is None:
            return _fallback_zone()
        value = default
    if isinstance(value, ZoneInfo):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ScheduleError(
            f"timezone must be an IANA zone name such as 'Asia/Bangkok', got {value!r}",
            key="timezone",
        )
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(
            f"unknown timezone {value!r}; use an IANA zone name such as 'Asia/Bangkok' or 'UTC'",
            key="timezone",
        ) from None


def _read_cron(data: Mapping[str, Any], seed: str | None) -> tuple[str | None, CronExpression]:
    """``(text as written when it had H, else None; the expression)``."""
    given = [key for key in ("cron", "cronjob") if key in data]
    shorthand = [key for key in ("interval", "time", "day") if key in data]
    if len(given) == 2:
        raise ScheduleError("give either `cron` or `cronjob`, not both", key="cron")
    if given:
        key = given[0]
        if shorthand:
            raise ScheduleError(
                f"`{key}` cannot be combined with the interval shorthand (`{shorthand[0]}`)",
                key=shorthand[0],
            )
        value = data[key]
        if isinstance(value, CronExpression):
            return None, value
        try:
            resolved = resolve_hashes(value, seed or " ".join(str(value).split()))
            written = None if resolved is value else " ".join(value.split())
            return written, CronExpression.parse(resolved)
        except ScheduleError as exc:
            raise ScheduleError(exc.message, key=key) from exc
    if "interval" in data:
        return None, _interval_cron(data)
    if shorthand:
        raise ScheduleError(
            f"`{shorthand[0]}` needs `interval: daily|weekly|monthly`", key="interval"
        )
    raise ScheduleError("missing `cron` (or `cronjob`, or the `interval` shorthand)", key="cron")


def _interval_cron(data: Mapping[str, Any]) -> CronExpression:
    """``interval`` + ``time`` + ``day`` as the cron expression they stand for."""
    raw = data["interval"]
    interval = raw.strip().lower() if isinstance(raw, str) else None
    if interval not in _INTERVALS:
        raise ScheduleError(
            f"interval must be daily, weekly or monthly, got {raw!r}", key="interval"
        )
    hour, minute = _read_time(data.get("time", "00:00"))
    day = data.get("day")
    if interval == "daily":
        if day is not None:
            raise ScheduleError("`day` does not apply to a daily interval", key="day")
        return CronExpression.parse(f"{minute} {hour} * * *")
    if interval == "weekly":
        return CronExpression.parse(f"{minute} {hour} * * {_read_weekday(day)}")
    return CronExpression.parse(f"{minute} {hour} {_read_monthday(day)} * *")


def _read_time(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        hh, sep, mm = value.strip().partition(":")
        if sep and hh.isdigit() and mm.isdigit() and len(hh) <= 2 and len(mm) == 2:
            hour, minute = int(hh), int(mm)
            if hour < 24 and minute < 60:
                return hour, minute
    hint = (
        " (quote it: YAML 1.1 reads an unquoted 01:30 as a number)"
        if isinstance(value, int)
        else ""
    )
    raise ScheduleError(f'time must be "HH:MM" (00:00-23:59), got {value!r}{hint}', key="time")


def _read_weekday(value: Any) -> int:
    if value is None:
        return 1
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip().lower()
        number = int(text) if text.isdigit() else _WEEKDAYS.get(text)
    if number is not None and 0 <= number <= 6:
        return number
    raise ScheduleError(
        f"a weekly `day` must be a day name (MON, Monday) or 0-6 (0 = Sunday), got {value!r}",
        key="day",
    )


def _read_monthday(value: Any) -> int:
    if value is None:
        return 1
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is not None and 1 <= number <= 31:
        return number
    raise ScheduleError(f"a monthly `day` must be 1-31, got {value!r}", key="day")


def _from_validation(exc: ValidationError) -> ScheduleError:
    """The first problem of a pydantic error as a ScheduleError with its key path."""
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or None
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ScheduleError(f"{first['msg']}{more}", key=key)
