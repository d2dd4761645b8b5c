"""What crosses the dispatch seam: run requests going out, run events coming back.

Both records are frozen and JSON-serialisable (:meth:`RunRequest.to_json` /
:meth:`RunRequest.from_json`, likewise :class:`RunEvent`), so an executor may
carry them over a pipe, a queue or a network (a Celery broker) alike; nothing
here assumes a shared machine. Policies:

* **A request names a template version, it does not carry the template.** The
  executor gets the template of ``(pipeline, version)`` from the template source
  it was given (the scheduler's catalog, the API's catalog), so a run executes
  exactly the version it was dispatched with, even if the file changed since.
* **Datetimes travel as ISO 8601 text**; an aware value in a named zone keeps
  its zone name, so ``release.logical_date`` reads the same on the other side.
* **Params are JSON values.** ``date`` and ``datetime`` values travel as ISO text
  (the pipeline parses params again, as the run store does); anything else that
  JSON cannot carry makes :meth:`RunRequest.to_json` raise ``TypeError``.
* **A rerun carries what it reuses** (``resume``): the JSON form of a
  :class:`~ddeutil.workflow.engine.rerun.Resume` (the earlier run's contexts,
  JSON already), read back by the executor; ``None`` for every other run.
* Every run an executor took ends with exactly one ``finished`` event; its status
  is ``None`` when the start handshake refused the run (it was no longer
  PENDING), so the caller can stop tracking it. A run that failed outside the
  engine (undeliverable, its worker died) ends ``finished`` with status FAILED
  and a one-line error.

This module is a leaf: it imports the standard library and light foundation
modules only (never the engine or a store).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ..result import Status
from ..runs import ReleaseKey, TriggerKind

__all__ = ["EventKind", "RunEvent", "RunRequest"]

EventKind = Literal["started", "finished"]


@dataclass(frozen=True)
class RunRequest:
    """Everything an executor needs to execute one stored (PENDING) run.

    Attributes:
        run_id: The PENDING run in the store that this request executes.
        pipeline: The pipeline (template) name.
        version: The template version to run (a digest of the raw template, as
            the scheduler's catalog computes it); ``None``: the source's current
            template of ``pipeline``.
        params: Param values of the run (the pipeline's defaults for a release).
        release: The release this run was claimed for; ``None`` for manual runs.
        logical_date: The release time in the schedule's zone
            (``${{ release.logical_date }}``); ``None`` for manual runs.
        trigger: What started the run.
        attempt: 1 for the first delivery of the run; more when it is sent again.
        owner: The daemon that holds the run (scheduled runs); the start
            handshake and the run's end are refused once another daemon took
            it over (the fence). ``None`` for runs without an owner.
        resume: For a rerun, what it takes over from the earlier run, as JSON
            values (``Resume.to_dict()``); ``None`` otherwise.
    """

    run_id: str
    pipeline: str
    version: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    release: ReleaseKey | None = None
    logical_date: datetime | None = None
    trigger: TriggerKind = TriggerKind.MANUAL
    attempt: int = 1
    owner: str | None = None
    resume: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The request as JSON values (see :meth:`to_json`)."""
        release = None
        if self.release is not None:
            release = {
                "pipeline": self.release.pipeline,
                "schedule": self.release.schedule,
                "at": self.release.at.isoformat(),
            }
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "version": self.version,
            "params": dict(self.params),
            "release": release,
            "logical_date": _instant(self.logical_date),
            "trigger": self.trigger.value,
            "attempt": self.attempt,
            "owner": self.owner,
            "resume": None if self.resume is None else dict(self.resume),
        }

    def to_json(self) -> str:
        """The request as JSON text.

        Raises:
            TypeError: a param value is not a JSON value (nor a date or datetime).
        """
        return json.dumps(self.to_dict(), default=_param_value, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRequest:
        """The request :meth:`to_dict` returned."""
        raw = data.get("release")
        release = None
        if raw is not None:
            release = ReleaseKey(
                pipeline=raw["pipeline"],
                schedule=raw["schedule"],
                at=datetime.fromisoformat(raw["at"]),
            )
        return cls(
            run_id=data["run_id"],
            pipeline=data["pipeline"],
            version=data.get("version"),
            params=dict(data.get("params") or {}),
            release=release,
            logical_date=_from_instant(data.get("logical_date")),
            trigger=TriggerKind(data.get("trigger", TriggerKind.MANUAL.value)),
            attempt=int(data.get("attempt", 1)),
            owner=data.get("owner"),
            resume=data.get("resume"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RunRequest:
        """The request :meth:`to_json` wrote."""
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class RunEvent:
    """Something that happened to a submitted run.

    Attributes:
        kind: ``started`` once the start handshake succeeded; ``finished`` when the
            run ended (or was refused by the handshake).
        run_id: The run.
        status: The terminal status of a ``finished`` event; ``None`` for
            ``started`` events and for runs the handshake refused.
        error: One-line reason of a run that did not succeed.
    """

    kind: EventKind
    run_id: str
    status: Status | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        """Whether this is the end of a run that failed."""
        return self.kind == "finished" and self.status is Status.FAILED

    def to_json(self) -> str:
        """The event as JSON text."""
        status = None if self.status is None else self.status.value
        return json.dumps(
            {"kind": self.kind, "run_id": self.run_id, "status": status, "error": self.error},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RunEvent:
        """The event :meth:`to_json` wrote."""
        data = json.loads(text)
        kind = data["kind"]
        if kind not in ("started", "finished"):
            raise ValueError(f"unknown run event kind {kind!r}")
        status = data.get("status")
        return cls(
            kind=kind,
            run_id=data["run_id"],
            status=None if status is None else Status(status),
            error=data.get("error"),
        )


def _instant(value: datetime | None) -> dict[str, str] | None:
    if value is None:
        return None
    zone = value.tzinfo.key if isinstance(value.tzinfo, ZoneInfo) else None
    return {"at": value.isoformat(), **({"zone": zone} if zone else {})}


def _from_instant(raw: Mapping[str, str] | None) -> datetime | None:
    if raw is None:
        return None
    value = datetime.fromisoformat(raw["at"])
    zone = raw.get("zone")
    return value.astimezone(ZoneInfo(zone)) if zone else value


def _param_value(value: object) -> str:
    if isinstance(value, date):  # datetime included
        return value.isoformat()
    raise TypeError(f"param value of type {type(value).__name__} is not JSON-serialisable")
