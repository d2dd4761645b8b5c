"""The outbox rows (:class:`~ddeutil.workflow.store.outbox.Notice`) an event makes.

:class:`Notifier` holds what every notice of a process needs (the settings
and the :class:`~ddeutil.workflow.masking.Masker`) and turns a run's end or a
late release into notices, one per channel the pipeline's targets name
(:class:`~ddeutil.workflow.notify_rule.Targets`):

* A run ended FAILED: ``failure``. A run ended SUCCESS: ``recovered``, marked
  ``after_failure`` (the store keeps it only if the previous run failed).
  Other ends tell nothing.
* A scheduled release not started ``late_after`` past its time: ``missed``.

The payload (JSON, the same for the webhook body and the email text)::

    {"id": "<run id>:failure:webhook", "event": "failure", "pipeline": "nightly",
     "run_id": "...", "status": "FAILED", "error": "stage 'load' failed: ...",
     "release": {"schedule": "0 1 * * *@UTC", "at": "2024-01-01T01:00:00+00:00"},
     "at": "<when it happened>", "link": "<WORKFLOW_API_PUBLIC_URL>/ui/runs/<run id>"}

``id`` is the dedupe key (also the ``Idempotency-Key`` header): a receiver
that sees it twice got the same notice twice. Every value goes through the
masker, and every text is clipped (:data:`MAX_TEXT`, the error
:data:`MAX_ERROR`), so a payload never exceeds :data:`MAX_PAYLOAD` bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ..masking import Masker
from ..notify_rule import NotifyRule, Targets
from ..result import Status
from ..runs import ReleaseKey
from ..settings import NotifyEvent, Settings
from ..store.outbox import Channel, Notice

__all__ = ["MAX_ERROR", "MAX_PAYLOAD", "MAX_TEXT", "Fact", "Notifier"]

MAX_TEXT = 512
"""Characters kept of each text value of a payload but the error."""
MAX_ERROR = 4000
"""Characters kept of a run's error summary."""
MAX_PAYLOAD = 32 * 1024
"""Bytes a payload never exceeds (the error is shortened to fit; the rest always does)."""


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class Fact:
    """What one notice tells (the payload's fields before masking)."""

    event: NotifyEvent
    pipeline: str
    run_id: str
    release: ReleaseKey | None
    at: datetime
    status: str
    error: str | None


@dataclass(frozen=True)
class Notifier:
    """Makes the notices of one process's events (see the module).

    Args:
        settings: The defaults of pipelines without a ``notify:`` key, the
            public URL of links, whether an SMTP server is set.
        masker: Masks every payload value.
    """

    settings: Settings
    masker: Masker

    def targets(self, rule: NotifyRule | None) -> Targets:
        """The targets of a pipeline whose ``notify:`` key is ``rule`` (``None``: none)."""
        s = self.settings
        return Targets.resolve(
            rule,
            events=s.notify_on,
            webhook=s.notify_webhook_url,
            email=s.notify_email_to or (),
            late_after=s.notify_late_after,
        )

    def run_end(
        self,
        rule: NotifyRule | None,
        *,
        run_id: str,
        pipeline: str,
        status: Status,
        error: str | None,
        release: ReleaseKey | None,
        ended: datetime,
    ) -> tuple[Notice, ...]:
        """The notices of a run ending ``status`` (none for SKIPPED and CANCELLED)."""
        event: NotifyEvent
        if status is Status.FAILED:
            event = "failure"
        elif status is Status.SUCCESS:
            event = "recovered"
        else:
            return ()
        fact = Fact(event, pipeline, run_id, release, ended, status.value, error)
        return self.notices(self.targets(rule), fact)

    def missed(
        self,
        targets: Targets,
        *,
        run_id: str,
        pipeline: str,
        release: ReleaseKey,
        now: datetime,
    ) -> tuple[Notice, ...]:
        """The notices of a release still not started at ``now`` (its run ``run_id``)."""
        late = (now - release.at).total_seconds()
        error = (
            f"not started {late:.0f}s after its release time (late after {targets.late_after:g}s)"
        )
        fact = Fact("missed", pipeline, run_id, release, now, Status.PENDING.value, error)
        return self.notices(targets, fact)

    def notices(self, targets: Targets, fact: Fact) -> tuple[Notice, ...]:
        """The notices of ``fact`` for ``targets``: one per channel, none if its event is not told."""
        if not targets.wants(fact.event):
            return ()
        channels: list[tuple[Channel, str]] = []
        if targets.webhook:
            channels.append(("webhook", targets.webhook))
        if targets.email and self.settings.notify_smtp_url:
            channels.append(("email", ",".join(targets.email)))
        return tuple(
            Notice(
                key=(key := f"{fact.run_id}:{fact.event}:{channel}"),
                pipeline=fact.pipeline,
                event=fact.event,
                channel=channel,
                target=target,
                payload=self.payload(key, fact),
                run_id=fact.run_id,
                after_failure=fact.event == "recovered",
            )
            for channel, target in channels
        )

    def payload(self, key: str, fact: Fact) -> str:
        """The JSON text of one notice: masked, every value clipped (see the module)."""
        release = fact.release
        data: dict[str, Any] = {
            "id": clip(key, MAX_TEXT),
            "event": fact.event,
            "pipeline": clip(fact.pipeline, MAX_TEXT),
            "run_id": clip(fact.run_id, MAX_TEXT),
            "status": fact.status,
            "error": None if fact.error is None else clip(self.masker.text(fact.error), MAX_ERROR),
            "release": None
            if release is None
            else {"schedule": clip(release.schedule, MAX_TEXT), "at": release.at.isoformat()},
            "at": fact.at.isoformat(),
            "link": self.link(fact.run_id),
        }
        text = json.dumps(self.masker.data(data), ensure_ascii=True)
        # ASCII escapes can make a clipped text up to 12 times longer: the error
        # is halved until the whole fits (the other fields alone always do).
        while len(text) > MAX_PAYLOAD and data["error"]:
            data["error"] = clip(data["error"], len(data["error"]) // 2)
            text = json.dumps(self.masker.data(data), ensure_ascii=True)
        return text

    def link(self, run_id: str) -> str | None:
        """The dashboard page of ``run_id``, when ``WORKFLOW_API_PUBLIC_URL`` is set."""
        base = self.settings.api_public_url
        if not base:
            return None
        return clip(f"{base.rstrip('/')}/ui/runs/{quote(run_id, safe='')}", MAX_TEXT * 4)
