"""The scheduler's catalog: every pipeline it schedules, in its last good version.

:class:`PipelineCatalog` reads the conf folder through a
:class:`~ddeutil.workflow.loader.Loader` and has a
:class:`~ddeutil.workflow.scheduling.validation.Validator` validate each pipeline
template once per conf version: in this process by default, in a helper process
for the daemon (whose parent process then never imports the engine). Policies:

* **Reload only on change.** :meth:`PipelineCatalog.reload` re-reads the conf
  folder when the loader's fingerprint changed (one directory walk and a
  ``stat`` per file otherwise), or always when forced (SIGHUP).
* **Last good version.** A pipeline whose new version no longer validates keeps
  the version that last did, and the error is logged with file, template and
  key; so does a pipeline whose file stopped loading at all. A template that
  never validated is logged and not scheduled. A broken template is never fatal.
* **Unschedulable pipelines.** A pipeline with schedules and a required param
  without a default (or defaults that do not validate) is kept but not planned;
  the reason is logged once per conf version.
* **Small entries.** The validated :class:`~ddeutil.workflow.pipeline.Pipeline`
  is not kept (its jobs and stages are the workers' business): the daemon stays
  small with thousands of pipelines. An entry keeps the raw template, its
  schedules and policies, its param defaults, and the template's
  :func:`~ddeutil.workflow.loader.template_version`, sent with each run so a
  worker reuses the pipeline it built for that version.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import ensure_utc
from ..errors import ConfigError, WorkflowError
from ..loader import Loader, RawTemplate, template_version
from ..registry import PIPELINE, SCHEDULE
from ..runs import ReleaseKey
from ..schedules.cron_schedule import CronSchedule
from ..schedules.jitter import jitter_offset
from ..schedules.planner import Catchup, PlannedSchedule
from ..settings import Settings
from .validation import Concurrency, InProcessValidator, PipelineFacts, Validator

__all__ = ["CatalogEntry", "Concurrency", "PipelineCatalog"]

logger = logging.getLogger(__name__)


_LOOK_AHEAD = timedelta(days=5 * 366)
"""How far :meth:`PipelineCatalog.next_releases` looks (a 29 February cron fires in it)."""


@dataclass(frozen=True)
class CatalogEntry:
    """What the scheduler keeps of one validated pipeline version.

    Attributes:
        template: The raw template that validated (what workers run).
        schedules: The pipeline's schedules (plain records, see :mod:`~ddeutil.workflow.schedules.cron_schedule`).
        concurrency: The overlap policy (a ``str`` enum: ``entry.concurrency == "skip"``).
        catchup: The catch-up policy.
        defaults: The param values of a scheduled run (the defaults, resolved).
        unschedulable: Why the pipeline has schedules but cannot be scheduled.
        version: The template's content digest (workers cache built pipelines by it).
    """

    template: RawTemplate
    schedules: tuple[CronSchedule, ...]
    concurrency: Concurrency
    catchup: Catchup
    defaults: Mapping[str, Any]
    unschedulable: str | None
    version: str

    @classmethod
    def of(cls, template: RawTemplate, facts: PipelineFacts) -> CatalogEntry:
        """The entry of ``template``, whose validation found ``facts``."""
        return cls(
            template=template,
            schedules=facts.schedules,
            concurrency=facts.concurrency,
            catchup=facts.catchup,
            defaults=facts.defaults,
            unschedulable=facts.unschedulable,
            version=template_version(template),
        )

    @property
    def name(self) -> str:
        return self.template.name

    def in_zone(self, schedule_key: str, instant: datetime) -> datetime:
        """``instant`` in the zone of the schedule ``schedule_key`` (as is if unknown)."""
        for on in self.schedules:
            if on.key == schedule_key:
                return ensure_utc(instant).astimezone(on.timezone)
        return instant

    def jitter_of(self, schedule_key: str) -> int:
        """The jitter in seconds of the schedule ``schedule_key`` (``0``: none, or unknown).

        Two schedules of a pipeline with one key are one release per slot (the
        planner keeps the first): so is their jitter.
        """
        for on in self.schedules:
            if on.key == schedule_key:
                return on.jitter
        return 0

    def offset_of(self, release: ReleaseKey) -> int:
        """How many seconds after its fire time ``release`` starts (its jitter offset)."""
        jitter = self.jitter_of(release.schedule)
        if not jitter:
            return 0
        return jitter_offset(release.pipeline, release.schedule, release.at, jitter)


class PipelineCatalog:
    """The pipelines of one conf folder, each in its last good version.

    Not thread-safe: the scheduler calls it under its own lock.

    Args:
        loader: The conf index; replaced by ``loader.refreshed()`` on changes.
        settings: Settings the pipelines are validated with.
        validator: Who validates the templates; default in this process. The
            catalog does not close it (its owner does).
    """

    def __init__(
        self, loader: Loader, settings: Settings, validator: Validator | None = None
    ) -> None:
        self._loader = loader
        self._settings = settings
        self._validator: Validator = validator or InProcessValidator()
        self._entries: dict[str, CatalogEntry] = {}
        self._planned: list[PlannedSchedule] | None = None
        self._by_pipeline: dict[str, list[PlannedSchedule]] | None = None
        self._loaded_once = False
        self._warned: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self._entries.values())

    def get(self, name: str) -> CatalogEntry | None:
        """The entry of pipeline ``name`` (``None`` when it is not loaded)."""
        return self._entries.get(name)

    @property
    def loader(self) -> Loader:
        """The loader of the last (re)load."""
        return self._loader

    def planned(self) -> list[PlannedSchedule]:
        """The schedules to plan, rebuilt only when the entries change."""
        if self._planned is None:
            planned: list[PlannedSchedule] = []
            for entry in self._entries.values():
                if entry.unschedulable:
                    continue
                planned.extend(
                    PlannedSchedule(pipeline=entry.name, schedule=on, catchup=entry.catchup)
                    for on in entry.schedules
                )
            self._planned = planned
        return self._planned

    def next_releases(self, after: datetime) -> list[tuple[datetime, str, str, int]]:
        """Each scheduled pipeline's next release after ``after``: ``(instant UTC,
        pipeline, schedule key, jitter offset in seconds)``, soonest first (what the
        daemon logs at start); a jittered release starts ``offset`` seconds late."""
        soonest: dict[str, tuple[datetime, str, str, int]] = {}
        for item in self.planned():
            fire = next(iter(item.schedule.fire_times(after, after + _LOOK_AHEAD)), None)
            if fire is None:
                continue
            key = item.schedule.key
            jitter = getattr(item.schedule, "jitter", 0)
            offset = jitter_offset(item.pipeline, key, fire, jitter) if jitter else 0
            found = (fire, item.pipeline, key, offset)
            if item.pipeline not in soonest or found < soonest[item.pipeline]:
                soonest[item.pipeline] = found
        return sorted(soonest.values())

    def planned_by_pipeline(self) -> dict[str, list[PlannedSchedule]]:
        """:meth:`planned`, grouped by pipeline (pipelines with schedules only)."""
        if self._by_pipeline is None:
            grouped: dict[str, list[PlannedSchedule]] = {}
            for item in self.planned():
                grouped.setdefault(item.pipeline, []).append(item)
            self._by_pipeline = grouped
        return self._by_pipeline

    def reload(self, *, force: bool) -> bool:
        """(Re)load the pipelines when the conf changed (always when ``force``).

        Returns:
            Whether the conf folder was read again.
        """
        if force:
            loader = self._loader.reread()
        elif not self._loaded_once:
            loader = self._loader
        else:
            loader = self._loader.refreshed()
            if loader is self._loader:
                return False
        first = not self._loaded_once
        self._loader = loader
        self._loaded_once = True
        for error in loader.errors:
            logger.error("conf error: %s", error, extra=_where(error))
        try:
            templates = loader.of_kind(PIPELINE)
        except WorkflowError as exc:
            logger.error("cannot list pipeline templates: %s; keeping the loaded ones", exc)
            return False
        outcomes = self._validator.validate(templates, loader, self._settings)
        fresh: dict[str, CatalogEntry] = {}
        for template, outcome in zip(templates, outcomes, strict=True):
            entry = self._entry(template, outcome)
            if entry is not None:
                fresh[template.name] = entry
        broken_files = {e.file for e in loader.errors if e.file}
        broken_names = {e.template for e in loader.errors if e.template}
        for name, old in self._entries.items():
            if name in fresh:
                continue
            if name in broken_names or str(old.template.file) in broken_files:
                logger.error(
                    "pipeline %s no longer loads: keeping its last good version",
                    name,
                    extra={"pipeline": name},
                )
                fresh[name] = old
            elif not any(t.name == name for t in templates):
                logger.info(
                    "pipeline %s removed from the conf folder: no longer scheduled",
                    name,
                    extra={"pipeline": name},
                )
        self._entries = fresh
        self._planned = None
        self._by_pipeline = None
        self.planned()
        _give_back_freed_memory()
        for entry in fresh.values():
            self._warn_unschedulable(entry)
        scheduled = [x for x in fresh.values() if not x.unschedulable and x.schedules]
        logger.info(
            "conf %s: %d pipeline(s) (%d scheduled, by %d schedule(s) in all), "
            "%d schedule template(s)",
            "loaded" if first else "reloaded",
            len(fresh),
            len(scheduled),
            sum(len(x.schedules) for x in scheduled),
            _schedule_templates(loader),
        )
        return True

    def _entry(
        self, template: RawTemplate, outcome: PipelineFacts | ConfigError
    ) -> CatalogEntry | None:
        name = template.name
        if isinstance(outcome, PipelineFacts):
            return CatalogEntry.of(template, outcome)
        error = outcome
        old = self._entries.get(name)
        if old is not None:
            logger.error(
                "pipeline %s: new version is invalid, keeping the last good version: %s",
                name,
                error,
                extra={**_where(error), "pipeline": name},
            )
            return old
        logger.error(
            "pipeline %s is invalid and is not scheduled: %s",
            name,
            error,
            extra={**_where(error), "pipeline": name},
        )
        return None

    def _warn_unschedulable(self, entry: CatalogEntry) -> None:
        name = entry.name
        if entry.unschedulable is None:
            self._warned.pop(name, None)
            return
        if self._warned.get(name) == entry.unschedulable:
            return
        self._warned[name] = entry.unschedulable
        logger.warning(
            "pipeline %s is not scheduled: %s",
            name,
            entry.unschedulable,
            extra={"pipeline": name},
        )


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None
    return trim


def _give_back_freed_memory() -> None:
    """Return the heap pages a (re)load freed to the OS (glibc; a no-op elsewhere).

    Reading, pickling and validating a conf folder allocates far more, for a moment,
    than the catalog keeps; glibc keeps the freed pages mapped (megabytes with
    1,000 pipelines) unless asked. Costs about a millisecond per reload.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _where(error: ConfigError) -> dict[str, Any]:
    """Where a conf error is, for a log line's fields: the ones it knows (no nulls)."""
    where = {"file": error.file, "template": error.template, "key": error.key}
    return {name: value for name, value in where.items() if value is not None}


def _schedule_templates(loader: Loader) -> int:
    """How many ``On`` templates the conf folder holds (``workflow list``'s schedules)."""
    try:
        return len(loader.of_kind(SCHEDULE))
    except WorkflowError:
        return 0
