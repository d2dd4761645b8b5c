"""Form values to API values: the trigger form's params and the history filters.

Policies:

* **The service validates.** A trigger form is turned into the same ``params``
  mapping a JSON trigger sends and handed to
  :meth:`~ddeutil.workflow.api.service.ApiService.trigger`, which resolves it
  strictly; this module only undoes what HTML forms do to values: an empty field
  is "not given" (the declared default applies), a ``bool`` checkbox is sent as
  ``true``/``false``, and ``list``/``map`` fields hold JSON (bad JSON is a problem
  of that param, reported with the others).
* **Filters are lenient.** An empty or unknown filter value is ignored and named
  in the page's notice rather than answered with an error page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ...clock import ensure_utc
from ...result import Status
from ...store.base import TriggerKind
from ..models import ParamInfo
from ..security import MAX_NAME_LENGTH, NAME_PATTERN

__all__ = ["PAGE_SIZE", "HistoryFilter", "form_params", "history_filter"]

PAGE_SIZE = 50
MAX_OFFSET = 1_000_000_000
FIELD_PREFIX = "param."


def form_params(
    declared: Sequence[ParamInfo], form: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The params of a trigger form, and the problems found reading it (by param)."""
    params: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for info in declared:
        key = FIELD_PREFIX + info.name
        if info.type == "bool":
            params[info.name] = form.get(key) in ("true", "on", "1")
            continue
        raw = form.get(key, "")
        if raw.strip() == "":
            continue
        if info.type in ("list", "map"):
            try:
                params[info.name] = json.loads(raw)
            except ValueError as exc:
                problems[info.name] = f"not JSON: {exc}"
            continue
        params[info.name] = raw
    return params, problems


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What the history page's query string asks for, once read."""

    pipeline: str | None = None
    status: tuple[Status, ...] = ()
    trigger: TriggerKind | None = None
    since: datetime | None = None
    until: datetime | None = None
    offset: int = 0
    ignored: tuple[str, ...] = field(default=())

    def query(self, offset: int | None = None) -> list[tuple[str, str]]:
        """The query string pairs of this filter (at ``offset``, default its own)."""
        pairs: list[tuple[str, str]] = []
        if self.pipeline:
            pairs.append(("pipeline", self.pipeline))
        pairs += [("status", s.value) for s in self.status]
        if self.trigger is not None:
            pairs.append(("trigger", self.trigger.value))
        if self.since is not None:
            pairs.append(("since", self.since.strftime("%Y-%m-%dT%H:%M")))
        if self.until is not None:
            pairs.append(("until", self.until.strftime("%Y-%m-%dT%H:%M")))
        at = self.offset if offset is None else offset
        if at:
            pairs.append(("offset", str(at)))
        return pairs


def _time(raw: str | None, name: str, ignored: list[str]) -> datetime | None:
    if not raw:
        return None
    try:
        return ensure_utc(datetime.fromisoformat(raw))
    except (ValueError, OverflowError):
        ignored.append(name)
        return None


def history_filter(
    *,
    pipeline: str | None,
    status: Sequence[str],
    trigger: str | None,
    since: str | None,
    until: str | None,
    offset: str | None,
) -> HistoryFilter:
    """Read the history page's query string (see the module docstring)."""
    ignored: list[str] = []
    name = pipeline or None
    if name is not None and (len(name) > MAX_NAME_LENGTH or not re.fullmatch(NAME_PATTERN, name)):
        ignored.append("pipeline")
        name = None
    statuses: list[Status] = []
    for value in status:
        if not value:
            continue
        try:
            statuses.append(Status(value))
        except ValueError:
            ignored.append("status")
    kind = None
    if trigger:
        try:
            kind = TriggerKind(trigger)
        except ValueError:
            ignored.append("trigger")
    at = 0
    if offset:
        try:
            at = min(max(int(offset), 0), MAX_OFFSET)
        except ValueError:
            ignored.append("offset")
    return HistoryFilter(
        pipeline=name,
        status=tuple(dict.fromkeys(statuses)),
        trigger=kind,
        since=_time(since, "since", ignored),
        until=_time(until, "until", ignored),
        offset=at - at % PAGE_SIZE,
        ignored=tuple(ignored),
    )
