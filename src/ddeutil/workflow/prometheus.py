"""The Prometheus meter: :class:`PrometheusMeter` and the daemon's metrics HTTP server.

This module imports ``prometheus_client`` (extra ``metrics``; also in ``api``)
and is imported only by the entry points that switch metrics on: the daemon
with ``WORKFLOW_APP_METRICS_PORT`` and the API's ``GET /metrics``. Everything
else reports through the :class:`~ddeutil.workflow.metrics.Meter` seam.

Policies:

* **One registry per meter**, never the library's global one: an embedding
  application's own metrics are left alone, and two meters in one process (the
  tests' daemons and apps) do not collide.
* **Bounded cardinality.** Label values come from fixed sets (``status``,
  ``trigger``, ``reason``, ``timing``), except ``pipeline``, which only
  ``workflow_run_duration_seconds`` carries; the first
  :data:`~ddeutil.workflow.metrics.MAX_PIPELINE_LABELS` distinct pipelines get
  their own label value, any later one ``pipeline="other"``. A pipeline name
  is data: the exposition format escapes it.
* **Gauges of "now" are computed at scrape time** (the heartbeat age), from the
  injected clock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from .clock import Clock
from .metrics import MAX_PIPELINE_LABELS, SkipReason

__all__ = ["CONTENT_TYPE", "OTHER_PIPELINE", "MetricsServer", "PrometheusMeter", "serve_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` of ``GET /metrics``: the text format every Prometheus version reads."""
OTHER_PIPELINE = "other"
"""The ``pipeline`` label value of every pipeline beyond the cap."""

RUN_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
STAGE_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0)
_SKIP_REASONS: tuple[SkipReason, ...] = ("concurrency", "paused", "catchup")


class PrometheusMeter:
    """A :class:`~ddeutil.workflow.metrics.Meter` kept in a Prometheus registry of its own.

    Args:
        clock: The clock of the heartbeat age (read at scrape time): seconds
            since the last :meth:`heartbeat` call (the daemon's own), unless
            :meth:`track_heartbeat_age` gives another source.
        max_pipelines: Most distinct ``pipeline`` label values.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        max_pipelines: int = MAX_PIPELINE_LABELS,
    ) -> None:
        self._clock = clock
        self._last_beat: datetime | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self._claimed = Counter(
            "workflow_releases_claimed",
            "Due releases claimed by this daemon; timing=late: missed ones run by the catch-up policy.",
            ["timing"],
            registry=r,
        )
        self._skipped = Counter(
            "workflow_releases_skipped",
            "Due releases that did not run: reason=concurrency (concurrency: skip), paused, "
            "catchup (missed and skipped by the catch-up policy; a long run of skipped "
            "releases counts once).",
            ["reason"],
            registry=r,
        )
        self._started = Counter(
            "workflow_runs_started", "Runs that passed the start handshake.", registry=r
        )
        self._finished = Counter(
            "workflow_runs_finished",
            "Runs ended, by status and trigger.",
            ["status", "trigger"],
            registry=r,
        )
        self._duration = Histogram(
            "workflow_run_duration_seconds",
            "Run duration from start to end.",
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self._by_pipeline = _PipelineDurations(max_pipelines)
        r.register(self._by_pipeline)
        self._stage = Histogram(
            "workflow_stage_duration_seconds",
            "Stage duration: stages run by this daemon's worker processes or this API's run pool.",
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self._lag = Histogram(
            "workflow_release_start_lag_seconds",
            "Seconds from a release instant to the start of its run.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self._in_flight = Gauge(
            "workflow_runs_in_flight", "Runs dispatched and not finished.", registry=r
        )
        self._waiting = Gauge(
            "workflow_runs_waiting",
            "Claimed releases waiting for a free slot of their pipeline (queue depth).",
            registry=r,
        )
        self._restarts = Counter(
            "workflow_worker_restarts", "Worker processes that died and were replaced.", registry=r
        )
        self._store_errors = Counter(
            "workflow_store_errors", "Run store calls that failed.", registry=r
        )
        age = Gauge(
            "workflow_daemon_heartbeat_age_seconds",
            "Seconds since the newest scheduler heartbeat, at scrape time (NaN: none yet).",
            registry=r,
        )
        self._age_source: Callable[[], float | None] = self._own_age
        age.set_function(lambda: _or_nan(self._age_source()))
        for timing in ("on_time", "late"):
            self._claimed.labels(timing)
        for reason in _SKIP_REASONS:
            self._skipped.labels(reason)

    # -- the Meter protocol ---------------------------------------------------------

    def release_claimed(self, *, late: bool) -> None:
        self._claimed.labels("late" if late else "on_time").inc()

    def release_skipped(self, reason: SkipReason, count: int = 1) -> None:
        self._skipped.labels(reason).inc(count)

    def run_started(self, *, lag: float | None) -> None:
        self._started.inc()
        if lag is not None:
            self._lag.observe(max(lag, 0.0))

    def run_finished(
        self, pipeline: str, *, status: str, trigger: str, seconds: float | None
    ) -> None:
        self._finished.labels(status, trigger).inc()
        if seconds is not None:
            seconds = max(seconds, 0.0)
            self._duration.observe(seconds)
            self._by_pipeline.observe(pipeline, seconds)

    def stage_finished(self, seconds: float) -> None:
        self._stage.observe(max(seconds, 0.0))

    def worker_restarted(self) -> None:
        self._restarts.inc()

    def store_error(self) -> None:
        self._store_errors.inc()

    def heartbeat(self, at: datetime) -> None:
        self._last_beat = at

    def load(self, *, in_flight: int, waiting: int) -> None:
        self._in_flight.set(in_flight)
        self._waiting.set(waiting)

    # -- exposition -----------------------------------------------------------------

    def track_in_flight(self, count: Callable[[], int]) -> None:
        """Compute ``workflow_runs_in_flight`` at scrape time from ``count`` instead."""
        self._in_flight.set_function(lambda: float(count()))

    def track_heartbeat_age(self, age: Callable[[], float | None]) -> None:
        """Compute ``workflow_daemon_heartbeat_age_seconds`` at scrape time from ``age``
        (``None``: no heartbeat known, exposed as NaN); the API reads the run store."""
        self._age_source = age

    def render(self) -> bytes:
        """The registry in the text exposition format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def _own_age(self) -> float | None:
        last = self._last_beat
        if last is None:
            return None
        return max((self._clock.now() - last).total_seconds(), 0.0)  # a beat ahead of a boundary


class _PipelineDurations(Collector):
    """``workflow_pipeline_run_duration_seconds{pipeline}``: count and sum of run durations.

    A summary without quantiles (two series per pipeline, rendered from a plain
    dict: a scrape with 1,000 pipelines stays cheap). The first ``cap``
    pipelines get their own label value, later ones share :data:`OTHER_PIPELINE`.
    """

    NAME = "workflow_pipeline_run_duration_seconds"

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._lock = threading.Lock()
        self._totals: dict[str, list[float]] = {}  # pipeline -> [count, sum]

    def observe(self, pipeline: str, seconds: float) -> None:
        with self._lock:
            total = self._totals.get(pipeline)
            if total is None:
                if len(self._totals) >= self._cap:
                    pipeline = OTHER_PIPELINE
                total = self._totals.setdefault(pipeline, [0.0, 0.0])
            total[0] += 1
            total[1] += seconds

    def collect(self) -> Iterable[Metric]:
        family = SummaryMetricFamily(
            self.NAME,
            f"Run duration by pipeline: count and sum (at most {self._cap} pipeline values, "
            f'then pipeline="{OTHER_PIPELINE}").',
            labels=["pipeline"],
        )
        with self._lock:
            totals = [(name, count, total) for name, (count, total) in self._totals.items()]
        for name, count, total in totals:
            family.add_metric([name], int(count), total)
        yield family


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


class MetricsServer:
    """The daemon's metrics HTTP server (a thread of ``prometheus_client``); :meth:`close` stops it."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


def serve_metrics(meter: PrometheusMeter, *, host: str, port: int) -> MetricsServer:
    """Serve ``meter`` on ``http://host:port/`` (any path) from a daemon thread.

    Raises:
        OSError: the address cannot be bound (in use, not local).
    """
    server, thread = start_http_server(port, addr=host, registry=meter.registry)
    return MetricsServer(server, thread)
