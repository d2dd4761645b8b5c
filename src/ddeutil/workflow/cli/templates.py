"""CLI verbs over the conf folder: ``validate``, ``list`` and ``next``.

Templates are built the way the daemon builds them: the loader resolves each
``type`` to a class and calls its ``from_template(template, loader=, settings=)``.
Nothing here knows the template classes; it relies on small duck-typed hooks:

* ``obj.warnings() -> list[str]`` (optional): problems that do not make the template
  invalid, e.g. a scheduled pipeline with a required param lacking a default. They
  are printed as warnings and never change the exit code.
* a schedule has ``fire_times(after)`` (an iterator of aware datetimes strictly
  after ``after``, increasing) and ``timezone``;
  ``cronjob``, ``name`` and ``written`` (the text as written when it had ``H``
  items) are shown when present.
* a pipeline has ``on``: a sequence of schedules.

Every verb accepts ``--json`` for machine-readable output. Exit codes: 0 ok, 1
``validate`` found an error, 2 bad input (unknown name, a template that is not a
schedule).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from itertools import islice
from typing import TYPE_CHECKING, Any

from ..clock import Clock, SystemClock, ensure_utc
from ..errors import ConfigError, WorkflowError
from ..loader import Loader, RawTemplate
from ..schedules.hashed import cron_label
from ..schedules.jitter import format_seconds, jitter_offset
from ..startup import conf_path_problem
from . import positive_int
from .pause import paused_pipelines

if TYPE_CHECKING:
    from ..settings import Settings
    from . import CliContext

__all__ = ["Built", "build_all", "build_template", "default_clock", "register"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

KINDS = ("pipeline", "on", "other")


def default_clock() -> Clock:
    """The clock ``list`` and ``next`` read "now" from (tests replace this function)."""
    return SystemClock()


# ------------------------------------------------------------------------- building


@dataclass(frozen=True)
class Built:
    """The outcome of building one template."""

    template: RawTemplate
    kind: str
    obj: Any = None
    error: ConfigError | None = None
    warnings: tuple[str, ...] = field(default=())


def template_kind(cls: type) -> str:
    """``pipeline``, ``on`` or ``other``, by the class (or a base) named Pipeline / On."""
    names = {c.__name__ for c in cls.__mro__}
    if "Pipeline" in names:
        return "pipeline"
    if "On" in names:
        return "on"
    return "other"


def _kind_of_name(type_name: str) -> str:
    """The kind a ``type`` string suggests, for templates whose class does not resolve."""
    last = type_name.rpartition(".")[2].strip()
    return {"Pipeline": "pipeline", "On": "on"}.get(last, "other")


def build_template(template: RawTemplate, *, loader: Loader, settings: Settings) -> Built:
    """Build one template through its class's ``from_template``; never raises.

    Any failure becomes a ConfigError located at the template: ConfigErrors keep
    their key, other library errors keep their message, and an unexpected exception
    (a bug in a template class) is reported with its type so ``validate`` still
    reports every other template.
    """
    kind = _kind_of_name(template.type or "")
    try:
        cls = loader.resolve_class(template)
        kind = template_kind(cls)
        builder = getattr(cls, "from_template", None)
        if not callable(builder):
            raise template.error(
                f"type {template.type!r} resolves to {cls.__module__}.{cls.__qualname__}, "
                "which cannot be built from a template (it has no from_template())",
                key="type",
            )
        obj = builder(template, loader=loader, settings=settings)
        raw_warnings = getattr(obj, "warnings", None)
        found = tuple(str(w) for w in raw_warnings()) if callable(raw_warnings) else ()
    except ConfigError as exc:
        error = exc.located(file=str(template.file), template=template.name)
        return Built(template, kind, error=error)
    except WorkflowError as exc:
        return Built(template, kind, error=template.error(str(exc)))
    except Exception as exc:
        logger.debug("building template %s failed", template.name, exc_info=True)
        message = f"unexpected {type(exc).__name__} while building the template: {exc}"
        return Built(template, kind, error=template.error(message))
    return Built(template, kind, obj=obj, warnings=found)


def build_all(loader: Loader, settings: Settings) -> list[Built]:
    """Build every usable template of ``loader``, sorted by name."""
    return [build_template(t, loader=loader, settings=settings) for t in loader]


# -------------------------------------------------------------------------- helpers


def _schedules(obj: Any) -> list[Any] | None:
    """The schedules of a built object: itself, its ``on`` list, or None."""
    if callable(getattr(obj, "fire_times", None)):
        return [obj]
    on = getattr(obj, "on", None)
    if on is None or isinstance(on, (str, bytes)):
        return None
    return list(on)


def _zone(schedule: Any) -> tzinfo:
    zone = getattr(schedule, "timezone", None)
    return zone if isinstance(zone, tzinfo) else timezone.utc


def _zone_name(schedule: Any) -> str:
    zone = _zone(schedule)
    return str(getattr(zone, "key", None) or zone)


def _describe(schedule: Any) -> dict[str, Any]:
    cron = getattr(schedule, "cronjob", None)
    return {
        "name": getattr(schedule, "name", None),
        "cron": None if cron is None else str(cron),
        "written": getattr(schedule, "written", None),
        "timezone": _zone_name(schedule),
    }


def _cron_text(info: dict[str, Any]) -> str:
    """The expression of a described schedule, with what its ``H`` items resolved to."""
    cron = info.get("cron")
    return "?" if cron is None else cron_label(cron, info.get("written"))


def _fire_times(schedule: Any, after: datetime, count: int) -> list[datetime]:
    return [ensure_utc(at) for at in islice(schedule.fire_times(after), count)]


def _local(instant: datetime, schedule: Any) -> str:
    return instant.astimezone(_zone(schedule)).isoformat(sep=" ", timespec="seconds")


def _utc(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _error_json(error: ConfigError) -> dict[str, Any]:
    return {
        "file": error.file,
        "template": error.template,
        "key": error.key,
        "message": error.message,
        "error": type(error).__name__,
    }


class _Out:
    """Masked output to the context's stream (text lines or one JSON document)."""

    def __init__(self, ctx: CliContext) -> None:
        self._ctx = ctx

    def line(self, text: str = "") -> None:
        print(self._ctx.masker.text(text), file=self._ctx.out)

    def json(self, payload: Any) -> None:
        data = self._ctx.masker.data(payload)
        print(json.dumps(data, indent=2, default=str), file=self._ctx.out)


def _usage_error(message: str) -> int:
    print(f"workflow: error: {message}", file=sys.stderr)
    return EXIT_USAGE


# ------------------------------------------------------------------------- validate


def _cmd_validate(args: argparse.Namespace, ctx: CliContext) -> int:
    problem = conf_path_problem(ctx.settings)
    if problem is not None:
        return _usage_error(problem)
    loader = Loader.from_settings(ctx.settings)
    built = build_all(loader, ctx.settings)
    errors = [*loader.errors, *(b.error for b in built if b.error is not None)]
    ok = [b for b in built if b.error is None]
    out = _Out(ctx)
    if args.as_json:
        out.json(
            {
                "ok": not errors,
                "templates_ok": len(ok),
                "errors": [_error_json(e) for e in errors],
                "warnings": [
                    {"file": str(b.template.file), "template": b.template.name, "message": w}
                    for b in ok
                    for w in b.warnings
                ],
                "templates": [
                    {
                        "name": b.template.name,
                        "file": str(b.template.file),
                        "type": b.template.type,
                        "kind": b.kind,
                        "valid": b.error is None,
                    }
                    for b in built
                ],
            }
        )
    else:
        for error in errors:
            out.line(f"error: {error}")
        for b in ok:
            for warning in b.warnings:
                out.line(f"warning: {b.template.file}: template {b.template.name!r}: {warning}")
        summary = f"{len(ok)} templates OK"
        if errors:
            summary += f", {len(errors)} error{'s' if len(errors) != 1 else ''}"
        out.line(summary)
    return EXIT_FAILED if errors else EXIT_OK


# ----------------------------------------------------------------------------- list


def _next_of(built: Built, now: datetime) -> tuple[datetime, Any] | None:
    schedules = _schedules(built.obj) or []
    upcoming = [(ensure_utc(next(iter(s.fire_times(now)))), s) for s in schedules]
    return min(upcoming, key=lambda pair: pair[0]) if upcoming else None


def _cmd_list(args: argparse.Namespace, ctx: CliContext) -> int:
    problem = conf_path_problem(ctx.settings)
    if problem is not None:
        return _usage_error(problem)
    loader = Loader.from_settings(ctx.settings)
    built = build_all(loader, ctx.settings)
    now = ensure_utc(default_clock().now())
    paused = paused_pipelines(ctx.settings)
    rows: list[dict[str, Any]] = []
    for b in built:
        row: dict[str, Any] = {
            "name": b.template.name,
            "kind": b.kind,
            "type": b.template.type,
            "file": str(b.template.file),
            "valid": b.error is None,
            "error": None if b.error is None else b.error.message,
        }
        if b.kind == "on" and b.obj is not None:
            row.update(_describe(b.obj))
        if b.kind == "pipeline" and paused is not None:
            since = paused.get(b.template.name)
            row["paused"] = since is not None
            row["paused_at"] = None if since is None else since.isoformat()
        if b.kind in {"pipeline", "on"} and b.obj is not None:
            upcoming = _next_of(b, now)
            row["next"] = None if upcoming is None else upcoming[0].isoformat()
            row["next_local"] = None if upcoming is None else _local(*upcoming)
        rows.append(row)
    out = _Out(ctx)
    if args.as_json:
        out.json(
            {
                "now": now.isoformat(),
                "templates": rows,
                "errors": [_error_json(e) for e in loader.errors],
            }
        )
        return EXIT_OK
    headings = {"pipeline": "pipelines", "on": "schedules", "other": "other templates"}
    width = max((len(r["name"]) for r in rows), default=0)
    for kind in KINDS:
        group = [r for r in rows if r["kind"] == kind]
        if not group:
            continue
        out.line(f"{headings[kind]} ({len(group)}):")
        for row in group:
            out.line(f"  {row['name']:<{width}}  {_list_detail(row)}")
    invalid = sum(1 for r in rows if not r["valid"]) + len(loader.errors)
    if not rows:
        out.line(f"no templates in {loader.conf_path}")
    if invalid:
        out.line(f"{invalid} problem(s) in the conf folder; run `workflow validate` for details")
    return EXIT_OK


def _list_detail(row: dict[str, Any]) -> str:
    if not row["valid"]:
        return f"INVALID: {row['error']}"
    parts = []
    if row["kind"] == "on":
        parts.append(f"{_cron_text(row)} ({row.get('timezone')})")
    elif row["kind"] == "other":
        parts.append(f"type {row['type']}")
    if row.get("paused"):
        parts.append(f"PAUSED since {_utc(datetime.fromisoformat(row['paused_at']))}")
    if row["kind"] in {"pipeline", "on"}:
        nxt = row.get("next")
        if nxt is None:
            parts.append("not scheduled")
        else:
            parts.append(f"next {row['next_local']} ({_utc(datetime.fromisoformat(nxt))})")
    return "  ".join(parts)


# ----------------------------------------------------------------------------- next


def _cmd_next(args: argparse.Namespace, ctx: CliContext) -> int:
    loader = Loader.from_settings(ctx.settings)
    template = loader.get(args.name)  # TemplateNotFound -> exit 2 with the name
    built = build_template(template, loader=loader, settings=ctx.settings)
    if built.error is not None:
        raise built.error
    schedules = _schedules(built.obj)
    if schedules is None:
        return _usage_error(
            f"template {args.name!r} (type {template.type}) is neither a schedule nor a "
            "pipeline with `on`"
        )
    if not schedules:
        return _usage_error(f"pipeline {args.name!r} has no schedule (its `on` is empty)")
    after = args.after if args.after is not None else ensure_utc(default_clock().now())
    pipeline = args.name if built.kind == "pipeline" else None
    report = []
    for schedule in schedules:
        info = _describe(schedule)
        start = _in_zone(after, schedule)
        info["after"] = start.isoformat()
        info["jitter"] = getattr(schedule, "jitter", 0)
        times = _fire_times(schedule, start, args.count)
        offsets = [_offset(pipeline, schedule, t) for t in times]
        info["fire_times"] = [
            {"utc": t.isoformat(), "local": t.astimezone(_zone(schedule)).isoformat()}
            | _start_fields(t, offset if info["jitter"] else None)
            for t, offset in zip(times, offsets, strict=True)
        ]
        report.append((schedule, info, list(zip(times, offsets, strict=True))))
    out = _Out(ctx)
    if args.as_json:
        out.json(
            {
                "name": args.name,
                "kind": built.kind,
                "after": after.isoformat(),
                "schedules": [info for _, info, _ in report],
            }
        )
        return EXIT_OK
    for schedule, info, slots in report:
        label = info["name"] or "inline schedule"
        jitter = f", jitter {format_seconds(info['jitter'])}" if info["jitter"] else ""
        out.line(f"{label}: {_cron_text(info)} ({info['timezone']}{jitter})")
        for t, offset in slots:
            late = "" if offset is None or not offset else f" (+{format_seconds(offset)})"
            out.line(f"  {_local(t, schedule)}{late}  =  {_utc(t)}")
        if jitter and pipeline is None:
            out.line("  each pipeline on it starts up to the jitter late: `workflow next PIPELINE`")
    return EXIT_OK


def _offset(pipeline: str | None, schedule: Any, at: datetime) -> int | None:
    """The jitter offset of a release (``None``: a schedule seen without its pipeline)."""
    jitter = getattr(schedule, "jitter", 0)
    if not jitter:
        return 0
    if pipeline is None:
        return None
    return jitter_offset(pipeline, schedule.key, at, jitter)


def _start_fields(at: datetime, offset: int | None) -> dict[str, Any]:
    """The start of a jittered release, for a fire time's JSON (``None``: nothing to add)."""
    if offset is None:
        return {}
    return {"offset": offset, "start": (at + timedelta(seconds=offset)).isoformat()}


# ------------------------------------------------------------------------- register


def _in_zone(after: datetime, schedule: Any) -> datetime:
    """``after`` made aware: a naive ``--after`` is a wall-clock time in the schedule's
    zone (as ``On.generate`` and ``fire_times`` read it), an aware one stays as given."""
    if after.tzinfo is None or after.utcoffset() is None:
        return after.replace(tzinfo=_zone(schedule))
    return after


def _instant(raw: str) -> datetime:
    """An ISO ``--after``: aware UTC with an offset or ``Z``; naive without (read per
    schedule in its own zone by :func:`_in_zone`)."""
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO date-time such as 2025-01-01T00:00Z, got {raw!r}"
        ) from None
    return when if when.tzinfo is None or when.utcoffset() is None else ensure_utc(when)


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", dest="as_json", action="store_true", help="print one JSON document"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``validate``, ``list`` and ``next`` to the parser."""
    p = sub.add_parser(
        "validate",
        help="load and check every template",
        description="Build every template in the conf folder; print each error with its file, "
        "template and key. Exit 1 when any template is invalid.",
    )
    _add_json(p)
    p.set_defaults(handler=_cmd_validate)

    p = sub.add_parser(
        "list",
        help="list templates by type, with the next fire time of schedules and pipelines",
    )
    _add_json(p)
    p.set_defaults(handler=_cmd_list)

    p = sub.add_parser(
        "next",
        help="show the next fire times of a schedule or a pipeline",
        description="Print the next N fire times of an On template, or of every schedule of a "
        "pipeline, in the schedule's timezone and in UTC.",
    )
    p.add_argument("name", help="an On template or a pipeline")
    p.add_argument("-n", dest="count", type=positive_int, default=5, help="how many (default 5)")
    p.add_argument(
        "--after",
        type=_instant,
        default=None,
        help="start from this ISO time instead of now; without an offset it is a wall-clock "
        "time in each schedule's own timezone (2025-03-09T06:58Z is UTC)",
    )
    _add_json(p)
    p.set_defaults(handler=_cmd_next)
