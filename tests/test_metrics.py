"""Metrics: the scheduler's releases and runs as a Prometheus scrape sees them.

A Scheduler on the in-memory store is driven with explicit instants and a
FakeClock (no sleeping); the meter is an in-process Prometheus registry whose
text output is parsed back with ``prometheus_client``'s own parser.
"""

from __future__ import annotations

import importlib.util
import math
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ddeutil.workflow.app import metrics as app_metrics
from ddeutil.workflow.app.daemon import serve
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.records import RunEvent
from ddeutil.workflow.dispatch.run_meter import RunMeter
from ddeutil.workflow.errors import SettingsError, StoreError
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.metrics import NULL_METER
from ddeutil.workflow.prometheus import OTHER_PIPELINE, PrometheusMeter, serve_metrics
from ddeutil.workflow.result import Status
from ddeutil.workflow.scheduling.scheduler import Scheduler
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import MemoryRunStore
from test_scheduler import RecordingExecutor, pipeline_yaml

UTC = timezone.utc
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def at(hh: int, mm: int = 0, ss: float = 0) -> datetime:
    return datetime(2024, 1, 1, hh, mm, tzinfo=UTC) + timedelta(seconds=ss)


def scrape(meter: PrometheusMeter) -> Samples:
    """Every sample of one scrape, keyed by (name, labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(meter.render().decode()):
        for sample in family.samples:
            out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


@pytest.fixture
def store() -> Iterator[MemoryRunStore]:
    s = MemoryRunStore()
    yield s
    s.close()


class Rig:
    def __init__(self, scheduler: Scheduler, executor: RecordingExecutor, meter: PrometheusMeter):
        self.scheduler = scheduler
        self.executor = executor
        self.meter = meter


@pytest.fixture
def rig(settings: Settings, clock: FakeClock, store: MemoryRunStore) -> Callable[[datetime], Rig]:
    def _make(now: datetime) -> Rig:
        clock.set(now)
        meter = PrometheusMeter(clock=clock)
        executor = RecordingExecutor(store)
        scheduler = Scheduler(
            settings=settings,
            store=store,
            executor=executor,
            clock=clock,
            loader=Loader.from_settings(settings),
            owner="test",
            meter=meter,
        )
        executor.templates = scheduler.template
        scheduler.start()
        return Rig(scheduler, executor, meter)

    return _make


def test_scheduled_runs_count_by_status_with_start_lag_and_duration(
    rig: Callable[[datetime], Rig], clock: FakeClock, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("minutely"))
    r = rig(at(10, 0, 30))
    for minute, status in ((1, Status.SUCCESS), (2, Status.FAILED)):
        clock.set(at(10, minute))
        (run_id,) = r.scheduler.tick(at(10, minute)).dispatched
        clock.set(at(10, minute, 0.25))  # the worker started it 250 ms after the release
        r.executor.begin(run_id, clock.now())
        r.scheduler.process_events()
        clock.set(at(10, minute, 3.25))  # and it ran for 3 s
        r.executor.end(run_id, clock.now(), status)
        r.scheduler.process_events()
    samples = scrape(r.meter)
    assert value(samples, "workflow_releases_claimed_total", timing="on_time") == 2
    assert value(samples, "workflow_releases_claimed_total", timing="late") == 0
    assert value(samples, "workflow_runs_started_total") == 2
    finished = "workflow_runs_finished_total"
    assert value(samples, finished, status="SUCCESS", trigger="schedule") == 1
    assert value(samples, finished, status="FAILED", trigger="schedule") == 1
    assert value(samples, "workflow_release_start_lag_seconds_sum") == pytest.approx(0.5)
    assert value(samples, "workflow_release_start_lag_seconds_bucket", le="0.1") == 0
    assert value(samples, "workflow_release_start_lag_seconds_bucket", le="0.5") == 2
    assert value(samples, "workflow_run_duration_seconds_sum") == pytest.approx(6.0)
    assert value(samples, "workflow_run_duration_seconds_count") == 2
    by_pipeline = "workflow_pipeline_run_duration_seconds"
    assert value(samples, f"{by_pipeline}_count", pipeline="minutely") == 2
    assert value(samples, f"{by_pipeline}_sum", pipeline="minutely") == pytest.approx(6.0)
    assert value(samples, "workflow_runs_in_flight") == 0
    assert value(samples, "workflow_runs_waiting") == 0


def test_missed_releases_count_as_late_or_skipped_by_catchup(
    rig: Callable[[datetime], Rig], clock: FakeClock, write_conf: Callable[..., Path]
) -> None:
    write_conf(
        "p.yml",
        pipeline_yaml("none", "0 * * * *", extra="  catchup: none\n")
        + pipeline_yaml("latest", "0 * * * *", extra="  catchup: latest\n"),
    )
    r = rig(at(0, 30))
    clock.set(at(10, 30))  # ten hourly releases missed per pipeline
    r.scheduler.tick(at(10, 30))
    samples = scrape(r.meter)
    assert value(samples, "workflow_releases_skipped_total", reason="catchup") == 10 + 9
    assert value(samples, "workflow_releases_claimed_total", timing="late") == 1
    assert value(samples, "workflow_releases_claimed_total", timing="on_time") == 0
    assert value(samples, "workflow_runs_in_flight") == 1


def test_concurrency_skips_and_waiting_releases_are_counted(
    rig: Callable[[datetime], Rig], clock: FakeClock, write_conf: Callable[..., Path]
) -> None:
    write_conf(
        "p.yml",
        pipeline_yaml("skipper", extra="  concurrency: skip\n")
        + pipeline_yaml("queued", extra="  concurrency: queue\n"),
    )
    r = rig(at(10, 0, 30))
    clock.set(at(10, 1))
    for run_id in r.scheduler.tick(at(10, 1)).dispatched:
        r.executor.begin(run_id, at(10, 1))
    clock.set(at(10, 2))
    report = r.scheduler.tick(at(10, 2))
    assert len(report.skipped) == 1
    assert len(report.held) == 1
    samples = scrape(r.meter)
    assert value(samples, "workflow_releases_skipped_total", reason="concurrency") == 1
    assert value(samples, "workflow_releases_skipped_total", reason="paused") == 0
    assert value(samples, "workflow_runs_waiting") == 1
    assert value(samples, "workflow_runs_in_flight") == 2


def test_paused_releases_are_counted_as_skipped_paused(
    rig: Callable[[datetime], Rig],
    clock: FakeClock,
    store: MemoryRunStore,
    write_conf: Callable[..., Path],
) -> None:
    write_conf("p.yml", pipeline_yaml("resting"))
    r = rig(at(10, 0, 30))
    store.pause("resting", now=at(10, 0, 40))
    clock.set(at(10, 1))
    r.scheduler.tick(at(10, 1))
    assert value(scrape(r.meter), "workflow_releases_skipped_total", reason="paused") == 1


def test_heartbeat_age_is_computed_at_scrape_time(
    rig: Callable[[datetime], Rig], clock: FakeClock, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("minutely"))
    fresh = PrometheusMeter(clock=clock)
    assert math.isnan(value(scrape(fresh), "workflow_daemon_heartbeat_age_seconds"))
    r = rig(at(10, 0, 30))
    clock.set(at(10, 0, 40))  # joining the store wrote the first heartbeat
    assert value(scrape(r.meter), "workflow_daemon_heartbeat_age_seconds") == 10.0
    clock.set(at(10, 1))
    r.scheduler.tick(at(10, 1))
    clock.set(at(10, 1, 7))
    assert value(scrape(r.meter), "workflow_daemon_heartbeat_age_seconds") == 7.0
    clock.set(at(10, 2, 30))
    assert value(scrape(r.meter), "workflow_daemon_heartbeat_age_seconds") == 90.0


def test_a_store_that_does_not_answer_counts_store_errors(
    rig: Callable[[datetime], Rig],
    clock: FakeClock,
    store: MemoryRunStore,
    write_conf: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_conf("p.yml", pipeline_yaml("minutely"))
    r = rig(at(10, 0, 30))

    def down(**_: object) -> bool:
        raise StoreError("connection refused")

    monkeypatch.setattr(store, "heartbeat", down)
    for second in (10, 20):
        with pytest.raises(StoreError):
            r.scheduler.beat(at(10, 0, second))
    assert value(scrape(r.meter), "workflow_store_errors_total") == 2


def test_pipeline_label_values_are_capped() -> None:
    meter = PrometheusMeter(clock=FakeClock(at(10)), max_pipelines=2)
    for name in ("a", "b", "c", "d", "a"):
        meter.run_finished(name, status="SUCCESS", trigger="api", seconds=1.0)
    samples = scrape(meter)
    counts = {
        dict(labels)["pipeline"]: v
        for (name, labels), v in samples.items()
        if name == "workflow_pipeline_run_duration_seconds_count"
    }
    assert counts == {"a": 2, "b": 1, OTHER_PIPELINE: 2}


def test_a_pipeline_name_is_escaped_as_label_data() -> None:
    meter = PrometheusMeter(clock=FakeClock(at(10)))
    name = 'evil"} 1\nworkflow_fake 2'
    meter.run_finished(name, status="SUCCESS", trigger="api", seconds=1.0)
    samples = scrape(meter)
    assert value(samples, "workflow_pipeline_run_duration_seconds_count", pipeline=name) == 1
    assert not any(key[0] == "workflow_fake" for key in samples)


def test_the_run_meter_forgets_refused_runs_and_stays_bounded() -> None:
    clock = FakeClock(at(10))
    meter = PrometheusMeter(clock=clock)
    runs = RunMeter(meter, clock, limit=2)
    runs.submitted("r1", "p", trigger="api")
    runs.observe([RunEvent("finished", "r1", None, "not started (no longer PENDING)")])
    for run_id in ("r2", "r3", "r4"):  # r2 is forgotten: its end is not counted
        runs.submitted(run_id, "p", trigger="api")
    runs.observe([RunEvent("finished", r, Status.SUCCESS) for r in ("r2", "r3", "r4")])
    samples = scrape(meter)
    assert value(samples, "workflow_runs_finished_total", status="SUCCESS", trigger="api") == 2
    assert value(samples, "workflow_run_duration_seconds_count") == 0  # none had started


def test_metrics_port_settings(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().app_metrics_port is None
    assert make_settings(WORKFLOW_APP_METRICS_PORT="").app_metrics_port is None
    assert make_settings(WORKFLOW_APP_METRICS_PORT="0").app_metrics_port is None
    assert make_settings(WORKFLOW_APP_METRICS_PORT="9108").app_metrics_port == 9108
    assert make_settings().app_metrics_host == "127.0.0.1"
    for bad in ("x", "-1", "65536", "9108.5"):
        with pytest.raises(SettingsError, match=f"WORKFLOW_APP_METRICS_PORT={bad!r}"):
            make_settings(WORKFLOW_APP_METRICS_PORT=bad)
    with pytest.raises(SettingsError, match="WORKFLOW_APP_METRICS_HOST"):
        make_settings(WORKFLOW_APP_METRICS_HOST="a b")


def test_no_metrics_port_means_no_meter(make_settings: Callable[..., Settings]) -> None:
    assert app_metrics.start_metrics(make_settings(), FakeClock(at(10))) is None
    NULL_METER.run_started(lag=1.0)  # records nothing, never fails


def test_a_metrics_port_without_the_extra_exits_2(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "prometheus_client" else real(name, *a),
    )
    settings = make_settings(WORKFLOW_APP_METRICS_PORT="9108")
    assert serve(settings, masker=Masker()) == 2
    assert "pip install 'ddeutil-workflow[metrics]'" in capsys.readouterr().err


def test_a_metrics_port_in_use_exits_1(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings(WORKFLOW_APP_METRICS_PORT=str(port))
        assert serve(settings, masker=Masker()) == 1
    assert "cannot serve metrics on 127.0.0.1" in capsys.readouterr().err


def test_the_daemon_scheduler_and_executors_import_no_prometheus_client_when_off() -> None:
    modules = (
        "ddeutil.workflow.app.daemon",
        "ddeutil.workflow.scheduling.scheduler",
        "ddeutil.workflow.dispatch.processes",
        "ddeutil.workflow.dispatch.worker",
    )
    code = f"import sys, {', '.join(modules)}\nprint('prometheus_client' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "False"


def test_the_metrics_server_serves_the_registry_over_http_until_closed() -> None:
    meter = PrometheusMeter(clock=FakeClock(at(10)))
    meter.worker_restarted()
    server = serve_metrics(meter, host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
    finally:
        server.close()
    assert "workflow_worker_restarts_total 1.0" in text
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(url, timeout=5)
