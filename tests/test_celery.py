"""The Celery executor end to end: real brokers, real ``workflow worker`` processes.

Runs are sent by the daemon's scheduler core and by the API, executed by worker
processes, and followed in the shared SQLite run store. Each test has queues of
its own. Tests skip with the reason when a broker does not answer.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from _celery import (
    AMQP_URL,
    WAIT,
    broker_or_skip,
    delete_queues,
    new_queue,
    wait_for,
    worker_process,
)
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.celery_app import RUN_TASK, celery_app
from ddeutil.workflow.dispatch.celery_executor import CeleryExecutor
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.loader import Loader, RawTemplate, template_version
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.result import Status
from ddeutil.workflow.runs import TriggerKind
from ddeutil.workflow.scheduling.scheduler import Scheduler
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import RunStore
from ddeutil.workflow.store.cancel import ask_cancel
from ddeutil.workflow.store.records import RunRecord

pytestmark = pytest.mark.timeout(120)

CONF = """
wf-echo:
  type: Pipeline
  params: {name: {type: str, default: world}}
  jobs:
    first:
      stages:
        - name: Mark
          id: mark
          bash: |
            echo "${{ params.name }}" >> "$MARKS/${{ params.name }}"
            echo "hello ${{ params.name }}"
wf-sleep:
  type: Pipeline
  params: {name: str, seconds: {type: str, default: "30"}}
  jobs:
    first:
      stages:
        - name: Sleep
          bash: |
            echo "${{ params.name }}" >> "$MARKS/${{ params.name }}"
            sleep ${{ params.seconds }}
wf-routed:
  type: Pipeline
  queue: QUEUE_B
  jobs:
    first:
      stages:
        - name: Where
          bash: echo routed
"""

SCHEDULED = """
wf-every-minute:
  type: Pipeline
  on: [{cronjob: "* * * * *", timezone: UTC}]
  jobs:
    first:
      stages:
        - name: Mark
          bash: echo tick >> "$MARKS/scheduled"
"""


class Setup:
    """One test's world: conf, store, queues, env of the worker processes."""

    def __init__(self, root: Path, broker: str, **env: str) -> None:
        self.root = root
        self.broker = broker
        self.queue = new_queue()
        self.queue_b = new_queue()
        self.marks = root / "marks"
        self.marks.mkdir()
        (root / "conf").mkdir(exist_ok=True)
        (root / "conf" / "pipelines.yml").write_text(
            CONF.replace("QUEUE_B", self.queue_b), encoding="utf-8"
        )
        self.env = {
            "WORKFLOW_ROOT_PATH": str(root),
            "WORKFLOW_CORE_TIMEZONE": "UTC",
            "WORKFLOW_APP_EXECUTOR": "celery",
            "WORKFLOW_CELERY_BROKER_URL": broker,
            "WORKFLOW_CELERY_QUEUE": self.queue,
            "WORKFLOW_APP_LEASE_SECONDS": "1.5",
            "WORKFLOW_APP_STOP_TIMEOUT": "10",
            "MARKS": str(self.marks),
            **env,
        }
        self.settings = Settings.from_env(self.env)
        self.store: RunStore = open_store(self.settings.api_db_url)
        self.loader = Loader.from_settings(self.settings)

    def template(self, pipeline: str, version: str | None) -> RawTemplate | None:
        template = self.loader.get(pipeline)
        if version is not None and template_version(template) != version:
            return None
        return template

    def executor(self, **kwargs: Any) -> CeleryExecutor:
        return CeleryExecutor(
            settings=self.settings, templates=self.template, store=self.store, **kwargs
        )

    def request(self, pipeline: str, **params: Any) -> RunRequest:
        """A PENDING API run of ``pipeline`` in the store, as a request."""
        run_id = f"r-{uuid.uuid4().hex[:12]}"
        self.store.create_run(
            run_id=run_id,
            pipeline=pipeline,
            trigger=TriggerKind.API,
            params=params,
            now=datetime.now(timezone.utc),
        )
        version = template_version(self.loader.get(pipeline))
        return RunRequest(
            run_id=run_id,
            pipeline=pipeline,
            version=version,
            params=params,
            trigger=TriggerKind.API,
        )

    def worker(self, name: str, *args: str, **env: str) -> Any:
        return worker_process({**self.env, **env}, self.root / f"{name}.log", *args)

    def run(self, run_id: str) -> RunRecord:
        record = self.store.get_run(run_id)
        assert record is not None
        return record

    def ended(self, run_id: str, timeout: float = WAIT) -> RunRecord:
        def terminal() -> RunRecord | None:
            record = self.store.get_run(run_id)
            return record if record is not None and record.status.is_terminal else None

        return wait_for(f"run {run_id} to end", terminal, timeout)

    def send(self, payload: dict[str, Any], task_id: str, **options: Any) -> None:
        """Publish a run message the way a daemon would (or, with ``options``, otherwise)."""
        app = celery_app(self.settings)
        app.conf.accept_content = ["json", "pickle"]
        try:
            with app.connection_for_write() as connection:
                app.send_task(
                    RUN_TASK,
                    args=[payload],
                    task_id=task_id,
                    queue=self.queue,
                    connection=connection,
                    **options,
                )
        finally:
            app.close()

    def marks_of(self, name: str) -> list[str]:
        path = self.marks / name
        return path.read_text().split() if path.exists() else []

    def close(self) -> None:
        self.store.close()
        delete_queues(self.broker, [self.queue, self.queue_b])


class PrivateRedis:
    """A Redis server of one test's own, keeping nothing on disk (as the shared one)."""

    def __init__(self, binary: str, folder: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self._argv += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
        self._proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self._argv, stdout=subprocess.DEVNULL)
        wait_for("redis to answer", lambda: _answers(self.port), timeout=10)
        return proc

    def restart(self) -> None:
        """Stop the server and start it again: what it held is gone."""
        self._proc.send_signal(signal.SIGTERM)
        self._proc.wait(timeout=10)
        self._proc = self._start()

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """Each Redis test has a server of its own: Redis keeps the unacknowledged messages
    of every queue in one place per database, which tests must not share."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(binary, folder)
    yield server
    server.close()


@pytest.fixture(params=["rabbitmq", "redis"])
def broker(request: pytest.FixtureRequest) -> str:
    if request.param == "rabbitmq":
        return broker_or_skip(AMQP_URL)
    server: PrivateRedis = request.getfixturevalue("private_redis")
    return server.url


@pytest.fixture
def rabbit() -> str:
    return broker_or_skip(AMQP_URL)


@pytest.fixture
def make_setup(tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    made: list[Setup] = []

    def _make(broker: str, **env: str) -> Setup:
        setup = Setup(tmp_path, broker, **env)
        made.append(setup)
        return setup

    yield _make
    for setup in made:
        setup.close()


def _drain_until_finished(executor: CeleryExecutor, run_ids: set[str]) -> list[RunEvent]:
    events: list[RunEvent] = []

    def done() -> bool:
        executor.wait_event(0.2)
        events.extend(executor.drain_events())
        return run_ids <= {e.run_id for e in events if e.kind == "finished"}

    wait_for("finished events", done)
    return events


def test_api_run_executes_on_a_worker_and_is_visible_everywhere(
    broker: str, make_setup: Callable[..., Setup]
) -> None:
    setup = make_setup(broker)
    # The worker writes its log files elsewhere, as on another machine: the API and
    # `workflow logs` read the log the worker kept in the run store.
    elsewhere = str(setup.root / "worker-machine-logs")
    with setup.worker("w1", "--concurrency", "2", WORKFLOW_LOG_PATH=elsewhere):
        from _apitest import TestClient
        from ddeutil.workflow.api import create_app

        app = create_app(settings=setup.settings.evolve(api_token="t0ken"), masker=Masker())
        with TestClient(app, headers={"Authorization": "Bearer t0ken"}) as client:
            answer = client.post("/api/v1/pipelines/wf-echo/runs", json={"params": {"name": "api"}})
            assert answer.status_code == 202, answer.text
            run_id = answer.json()["run_id"]
            record = setup.ended(run_id)
            assert record.status is Status.SUCCESS, record.error
            owners = {o.owner: o for o in setup.store.owners()}
            assert owners[record.owner or ""].kind == "worker"
            body = client.get(f"/api/v1/runs/{run_id}").json()
            assert body["status"] == "SUCCESS"
            assert "hello api" in json.dumps(body)  # the stage's output
            logs = client.get(f"/api/v1/runs/{run_id}/logs").json()
            assert any("stage 'Mark' SUCCESS" in line["message"] for line in logs["lines"])
    assert (Path(elsewhere) / f"{run_id}.log").is_file()
    assert not (setup.settings.log_path / f"{run_id}.log").exists()
    assert setup.marks_of("api") == ["api"]
    env = {**os.environ, **setup.env}
    runs = _cli(env, "runs", "--json")
    assert run_id in runs.stdout
    logs_cli = _cli(env, "logs", run_id)
    assert "stage 'Mark' SUCCESS" in logs_cli.stdout


def _cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "ddeutil.workflow", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_scheduled_release_executes_on_a_worker_once(
    rabbit: str, make_setup: Callable[..., Setup]
) -> None:
    setup = make_setup(rabbit)
    (setup.root / "conf" / "scheduled.yml").write_text(SCHEDULED, encoding="utf-8")
    setup.loader = Loader.from_settings(setup.settings)
    boundary = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    clock = FakeClock(boundary - timedelta(minutes=1))
    executor = setup.executor()
    scheduler = Scheduler(
        settings=setup.settings,
        store=setup.store,
        executor=executor,
        clock=clock,
        loader=setup.loader,
        masker=Masker(),
    )
    with setup.worker("w1"):
        scheduler.start()
        try:
            scheduler.tick(boundary - timedelta(minutes=1))
            report = scheduler.tick(boundary)
            dispatched = list(report.dispatched)
            assert len(dispatched) == 1
            record = setup.ended(dispatched[0])
            assert record.status is Status.SUCCESS, record.error
            assert record.release is not None
            assert record.release.at == boundary
            events = _drain_until_finished(executor, set(dispatched))
            assert [e.status for e in events if e.kind == "finished"] == [Status.SUCCESS]
        finally:
            scheduler.stop(5.0)
    assert setup.marks_of("scheduled") == ["tick"]


def test_the_daemon_process_sends_a_due_release_to_a_worker_process(
    broker: str, make_setup: Callable[..., Setup]
) -> None:
    setup = make_setup(broker)
    (setup.root / "conf" / "scheduled.yml").write_text(SCHEDULED, encoding="utf-8")
    boundary = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    setup.store.set_watermark(boundary - timedelta(seconds=1))  # as if it ticked before it
    with setup.worker("w1") as worker:
        daemon = subprocess.run(
            [sys.executable, "-m", "ddeutil.workflow.app", "--once", "--log-format", "json"],
            env={**os.environ, **setup.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert daemon.returncode == 0, daemon.stderr
        runs = setup.store.list_runs()  # the daemon exited: its claims are all made
        assert 1 <= len(runs) <= 2  # two if it ticked just past the next boundary
        records = [setup.ended(run.run_id) for run in runs]
        assert "pipeline 'wf-every-minute' started" in worker.text()
    assert [r.status for r in records] == [Status.SUCCESS] * len(runs)
    assert min(r.release.at for r in records if r.release) == boundary
    owners = {o.owner: o for o in setup.store.owners()}
    assert {owners[r.owner or ""].kind for r in records} == {"worker"}
    assert setup.marks_of("scheduled") == ["tick"] * len(runs)


def test_the_same_message_delivered_twice_runs_once(
    broker: str, make_setup: Callable[..., Setup]
) -> None:
    setup = make_setup(broker)
    request = setup.request("wf-echo", name="twice")
    setup.send(request.to_dict(), request.run_id)
    setup.send(request.to_dict(), request.run_id)
    with setup.worker("w1", "--concurrency", "2") as worker:
        assert setup.ended(request.run_id).status is Status.SUCCESS
        wait_for("the second delivery", lambda: _refused(worker.text()))
    assert setup.marks_of("twice") == ["twice"]


def test_a_killed_worker_gives_one_failed_run_and_no_second_copy(
    broker: str, make_setup: Callable[..., Setup]
) -> None:
    setup = make_setup(broker)
    executor = setup.executor()
    request = setup.request("wf-sleep", name="killed", seconds="60")
    executor.submit(request)
    try:
        with setup.worker("w1") as first:
            wait_for("the run's stage to begin", lambda: setup.marks_of("killed"))
            first.kill()
        clock_now = datetime.now(timezone.utc) + timedelta(seconds=5)  # past the 1.5 s lease
        scheduler = Scheduler(
            settings=setup.settings,
            store=setup.store,
            executor=setup.executor(),
            clock=FakeClock(clock_now),
            loader=setup.loader,
            masker=Masker(),
        )
        with setup.worker("w2"):  # the message comes back to a worker: it must not run again
            scheduler.start()
            try:
                scheduler.beat(clock_now)
                record = setup.run(request.run_id)
                assert record.status is Status.FAILED
                assert record.error is not None
                assert record.error.startswith("worker lost")
                scheduler.beat(clock_now + timedelta(seconds=5))  # nothing more to take over
                again = setup.run(request.run_id)
                assert (again.status, again.error, again.ended) == (
                    record.status,
                    record.error,
                    record.ended,
                )
                events = _drain_until_finished(executor, {request.run_id})
            finally:
                scheduler.stop(1.0)
            if broker.startswith("amqp"):  # RabbitMQ redelivers at once: refused, acked
                wait_for("the redelivery", lambda: _refused(_logs(setup, "w2")))
        assert [e.status for e in events if e.kind == "finished"] == [Status.FAILED]
        assert setup.marks_of("killed") == ["killed"]
    finally:
        executor.shutdown(0.0)


def _refused(log: str) -> bool:
    """Whether a worker's log shows a delivery it did not run (a duplicate)."""
    return "no longer PENDING" in log or "duplicate delivery" in log


def _logs(setup: Setup, name: str) -> str:
    return (setup.root / f"{name}.log").read_text(errors="replace")


def test_cancel_reaches_a_run_on_a_worker(rabbit: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(rabbit)
    executor = setup.executor()
    running = setup.request("wf-sleep", name="cancel", seconds="60")
    with setup.worker("w1", "--concurrency", "1"):
        executor.submit(running)
        waiting = setup.request("wf-sleep", name="waiting", seconds="60")
        executor.submit(waiting)  # no free thread: it waits in the queue
        wait_for("the run to start", lambda: setup.run(running.run_id).status is Status.RUNNING)
        assert executor.cancel(waiting.run_id, "not needed")
        assert executor.cancel(running.run_id, "operator asked")
        record = setup.ended(running.run_id)
        assert record.status is Status.CANCELLED
        assert setup.run(waiting.run_id).status is Status.CANCELLED
        executor.shutdown(0.0)
    assert setup.marks_of("waiting") == []


def test_the_daemons_stop_timeout_reaches_its_runs_on_workers(
    rabbit: str, make_setup: Callable[..., Setup]
) -> None:
    setup = make_setup(rabbit)
    executor = setup.executor()
    request = setup.request("wf-sleep", name="stopped", seconds="60")
    with setup.worker("w1"):
        executor.submit(request)
        wait_for("the run to start", lambda: setup.run(request.run_id).status is Status.RUNNING)
        started = time.monotonic()
        executor.shutdown(0.5)  # the daemon's WORKFLOW_APP_STOP_TIMEOUT
        record = setup.ended(request.run_id)
        assert time.monotonic() - started < 15
    assert record.status is Status.CANCELLED
    assert record.error is not None
    assert "not finished within 0.5s" in record.error


def test_worker_sigterm_drains_then_cancels(rabbit: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(rabbit, WORKFLOW_APP_STOP_TIMEOUT="1")
    executor = setup.executor()
    short = setup.request("wf-sleep", name="short", seconds="0.2")
    long = setup.request("wf-sleep", name="long", seconds="60")
    try:
        with setup.worker("w1", "--concurrency", "2") as worker:
            executor.submit(long)
            wait_for("the run to start", lambda: setup.run(long.run_id).status is Status.RUNNING)
            started = time.monotonic()
            assert worker.stop() == 0
            assert time.monotonic() - started < 20
        record = setup.run(long.run_id)
        assert record.status is Status.CANCELLED
        assert record.error is not None
        assert "worker stopping" in record.error
        owners = {o.owner: o for o in setup.store.owners()}
        assert owners[record.owner or ""].state.value == "stopped"
        executor.submit(short)  # nobody consumes: stays PENDING, in the queue
        with setup.worker("w2"):
            assert setup.ended(short.run_id).status is Status.SUCCESS
    finally:
        executor.shutdown(0.0)


def test_routing_by_queue(rabbit: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(rabbit)
    executor = setup.executor()
    routed = setup.request("wf-routed")
    default = setup.request("wf-echo", name="default")
    try:
        with setup.worker("wa") as wa, setup.worker("wb", "--queues", setup.queue_b) as wb:
            executor.submit(routed)
            executor.submit(default)
            first, second = setup.ended(routed.run_id), setup.ended(default.run_id)
            assert first.status is second.status is Status.SUCCESS
            by_pid = {o.owner: o.pid for o in setup.store.owners()}
            assert by_pid[first.owner or ""] == wb.pid
            assert by_pid[second.owner or ""] == wa.pid
    finally:
        executor.shutdown(0.0)


def test_a_version_the_worker_does_not_have_fails_the_run_clearly(
    rabbit: str, make_setup: Callable[..., Setup]
) -> None:
    setup = make_setup(rabbit)
    request = setup.request("wf-echo", name="other")
    stale = RunRequest(**{**request.__dict__, "version": "0" * 32})
    setup.send(stale.to_dict(), stale.run_id)
    with setup.worker("w1"):
        record = setup.ended(request.run_id)
    assert record.status is Status.FAILED
    assert record.error is not None
    assert f"version {'0' * 32}" in record.error
    assert "deploy the same conf folder" in record.error
    assert setup.marks_of("other") == []


def test_a_run_longer_than_the_visibility_timeout_is_not_duplicated(
    private_redis: PrivateRedis, make_setup: Callable[..., Setup]
) -> None:
    setup = make_setup(private_redis.url, WORKFLOW_CELERY_VISIBILITY_TIMEOUT="1")
    executor = setup.executor()
    request = setup.request("wf-sleep", name="slow", seconds="3")
    try:
        with setup.worker("w1") as w1, setup.worker("w2") as w2:
            executor.submit(request)
            wait_for("the run to start", lambda: setup.run(request.run_id).status is Status.RUNNING)
            # What Redis does once the visibility timeout passed: the unacknowledged
            # message goes back to the queue (restored now rather than in a while).
            assert _restore_unacked(setup.broker) == 1
            wait_for("the redelivery", lambda: _refused(w1.text() + w2.text()))
            record = setup.ended(request.run_id)
        assert record.status is Status.SUCCESS
        assert setup.marks_of("slow") == ["slow"]
    finally:
        executor.shutdown(0.0)


def _restore_unacked(url: str) -> int:
    """Put every message Redis holds unacknowledged back in its queue; return how many."""
    from kombu import Connection

    with Connection(url, transport_options={"visibility_timeout": 0}) as conn:
        channel = conn.default_channel
        count = int(channel.client.zcard(channel.unacked_index_key))
        channel.qos.restore_visible(num=100)
        return count


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_a_broker_restart_loses_no_run(
    private_redis: PrivateRedis, make_setup: Callable[..., Setup]
) -> None:
    url = private_redis.url
    setup = make_setup(url, WORKFLOW_CELERY_RESEND_SECONDS="1")
    executor = setup.executor()
    requests = [setup.request("wf-echo", name=f"n{i}") for i in range(5)]
    try:
        for request in requests:
            executor.submit(request)
        wait_for("the messages to be queued", lambda: _queued(url, setup.queue) == len(requests))
        private_redis.restart()  # keeps nothing: the queued messages are gone
        assert _queued(url, setup.queue) == 0
        with setup.worker("w1"):
            for request in requests:
                assert setup.ended(request.run_id).status is Status.SUCCESS
        for i in range(5):
            assert setup.marks_of(f"n{i}") == [f"n{i}"]
    finally:
        executor.shutdown(0.0)


def _queued(url: str, queue: str) -> int:
    from kombu import Connection

    with Connection(url, connect_timeout=2) as conn:
        try:
            return int(conn.default_channel.client.llen(queue))
        except Exception:
            return -1


def test_a_poison_run_stops_at_its_retry_cap(rabbit: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(rabbit, WORKFLOW_CELERY_MAX_RETRIES="2")
    request = setup.request("wf-echo", name="poison")
    good = setup.request("wf-echo", name="good")
    count = setup.root / "refused-starts"
    setup.env.update(POISON_RUN_ID=request.run_id, POISON_COUNT=str(count))
    program = (str(Path(__file__).parent / "_poison_worker.py"),)
    setup.send(request.to_dict(), request.run_id)
    setup.send(good.to_dict(), good.run_id)
    with worker_process(setup.env, setup.root / "w1.log", program=program) as worker:
        assert setup.ended(good.run_id).status is Status.SUCCESS  # the worker goes on
        wait_for("the message to be given up", lambda: "given up" in worker.text())
        record = setup.ended(request.run_id)
    assert record.status is Status.FAILED
    assert record.error is not None
    assert "gave up after 3 deliveries" in record.error
    assert count.read_text().splitlines() == ["start refused"] * 3
    assert setup.marks_of("poison") == []


def test_a_pickled_message_is_refused(rabbit: str, make_setup: Callable[..., Setup]) -> None:
    setup = make_setup(rabbit)
    request = setup.request("wf-echo", name="pickled")
    good = setup.request("wf-echo", name="json")
    setup.send(request.to_dict(), request.run_id, serializer="pickle")
    setup.send(good.to_dict(), good.run_id)
    with setup.worker("w1", "--concurrency", "1"):
        assert setup.ended(good.run_id).status is Status.SUCCESS
    assert setup.run(request.run_id).status is Status.PENDING
    assert setup.marks_of("pickled") == []


def test_a_stopping_executor_still_sends_what_was_submitted(
    rabbit: str, make_setup: Callable[..., Setup]
) -> None:
    setup = make_setup(rabbit)
    executor = setup.executor()
    requests = [setup.request("wf-echo", name=f"s{i}") for i in range(3)]
    for request in requests:
        executor.submit(request)
    executor.shutdown(10.0)  # at once: the sender has not even connected yet
    assert _messages(rabbit, setup.queue) == 3
    with setup.worker("w1"):
        for request in requests:
            assert setup.ended(request.run_id).status is Status.SUCCESS


def _messages(url: str, queue: str) -> int:
    from kombu import Connection

    with Connection(url, connect_timeout=2) as conn:
        return int(conn.default_channel.queue_declare(queue, passive=True).message_count)


def test_runs_waiting_behind_a_queue_are_not_sent_again(
    rabbit: str, make_setup: Callable[..., Setup], caplog: pytest.LogCaptureFixture
) -> None:
    setup = make_setup(rabbit, WORKFLOW_CELERY_RESEND_SECONDS="0.2")
    executor = setup.executor()
    requests = [setup.request("wf-echo", name=f"q{i}") for i in range(3)]
    caplog.set_level(logging.INFO, "ddeutil.workflow.dispatch.celery_executor")
    try:
        for request in requests:
            executor.submit(request)
        wait_for(
            "the resend check to find the queue busy",
            lambda: any("not sent again" in r.getMessage() for r in caplog.records),
        )
        assert _messages(rabbit, setup.queue) == 3  # no second copies
        with setup.worker("w1"):
            for request in requests:
                assert setup.ended(request.run_id).status is Status.SUCCESS
        for i in range(3):
            assert setup.marks_of(f"q{i}") == [f"q{i}"]
    finally:
        executor.shutdown(0.0)


def test_a_cancel_asked_through_the_store_reaches_a_run_on_a_worker(
    rabbit: str, make_setup: Callable[..., Setup]
) -> None:
    """``workflow cancel`` writes to the store only: the worker's cancel watch acts on it."""
    setup = make_setup(rabbit)
    executor = setup.executor()
    running = setup.request("wf-sleep", name="store-cancel", seconds="60")
    with setup.worker("w1", "--concurrency", "1"):
        executor.submit(running)
        wait_for("the run to start", lambda: setup.run(running.run_id).status is Status.RUNNING)
        outcome = ask_cancel(setup.store, running.run_id, now=datetime.now(timezone.utc))
        assert outcome is not None
        assert outcome.what == "asked"
        assert outcome.owner == setup.run(running.run_id).owner  # the worker holds it
        record = setup.ended(running.run_id)
        assert record.status is Status.CANCELLED
        assert "cancel requested through the run store" in (record.error or "")
        executor.shutdown(0.0)
