"""execute_request: the start handshake, recording outcomes, masking, failures."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ddeutil.workflow.cancellation import CancelToken
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.base import log_extra
from ddeutil.workflow.dispatch.execute import error_summary, execute_request
from ddeutil.workflow.dispatch.records import RunRequest
from ddeutil.workflow.errors import StoreError
from ddeutil.workflow.loader import Loader, RawTemplate
from ddeutil.workflow.logs import RunLogRouter, run_log_path
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.result import ErrorRecord, Result, Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import MemoryRunStore
from ddeutil.workflow.store.base import Claim, ReleaseKey, TriggerKind

PIPELINES = """
    marker-pipe:
      type: ddeutil.workflow.pipeline.Pipeline
      params:
        target: str
        word:
          type: str
          default: hello
      jobs:
        main:
          stages:
            - name: write marker
              id: write
              bash: "echo ${{ params.word }} > '${{ params.target }}'; echo ${{ params.word }}"

    failing-pipe:
      type: ddeutil.workflow.pipeline.Pipeline
      jobs:
        main:
          stages:
            - name: boom
              id: boom
              bash: "echo broken >&2; exit 3"

    cancel-pipe:
      type: ddeutil.workflow.pipeline.Pipeline
      jobs:
        main:
          stages:
            - name: wait for cancel
              run: |
                if cancel_token.wait(30):
                    raise RuntimeError(cancel_token.reason)
"""


@dataclass
class Harness:
    """A memory store, the test conf folder and a fake clock, wired for execute_request."""

    store: MemoryRunStore
    settings: Settings
    loader: Loader
    clock: FakeClock

    def request(
        self,
        name: str,
        run_id: str,
        params: dict[str, str] | None = None,
        *,
        store: MemoryRunStore | None = None,
    ) -> RunRequest:
        """Record a PENDING run of ``name`` and return its request."""
        (store or self.store).create_run(
            run_id=run_id,
            pipeline=name,
            trigger=TriggerKind.MANUAL,
            params=params or {},
            now=self.clock.now(),
        )
        return RunRequest(run_id=run_id, pipeline=name, params=params or {})

    def run(
        self,
        request: RunRequest,
        *,
        template: RawTemplate | None = None,
        store: MemoryRunStore | None = None,
        masker: Masker | None = None,
        cancel: CancelToken | None = None,
        router: RunLogRouter | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> Result | None:
        return execute_request(
            request,
            template or self.loader.get(request.pipeline),
            store=store or self.store,
            settings=self.settings,
            masker=masker or Masker(),
            clock=self.clock,
            cancel=cancel or CancelToken(),
            loader=self.loader,
            router=router,
            on_start=on_start,
        )


@pytest.fixture
def h(
    settings: Settings, write_conf: Callable[[str, str], Path], clock: FakeClock
) -> Iterator[Harness]:
    write_conf("pipes.yml", PIPELINES)
    store = MemoryRunStore()
    yield Harness(store, settings, Loader.from_settings(settings), clock)
    store.close()


def test_success_is_recorded_with_context(h: Harness, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    request = h.request("marker-pipe", "r1", {"target": str(target)})
    started: list[str] = []

    result = h.run(
        request,
        on_start=lambda: started.append("yes"),
    )

    assert result is not None
    assert result.status is Status.SUCCESS
    assert started == ["yes"]
    assert target.read_text().strip() == "hello"
    record = h.store.get_run("r1")
    assert record is not None
    assert record.status is Status.SUCCESS
    assert record.started is not None
    assert record.ended is not None
    assert record.error is None
    assert "write" in json.dumps(record.context)


def test_a_scheduled_request_passes_param_values_as_data(h: Harness, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    marker = tmp_path / "owned"
    word = f"x'; touch {marker}; echo '$(touch {marker})"
    request = h.request("marker-pipe", "r1", {"target": str(target), "word": word})

    result = h.run(request)

    assert result is not None
    assert result.status is Status.SUCCESS, result.errors
    assert target.read_text() == f"{word}\n"
    assert not marker.exists()


def test_handshake_refused_never_executes(h: Harness, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    request = h.request("marker-pipe", "r1", {"target": str(target)})
    assert h.store.mark_running("r1", now=h.clock.now())  # someone else started it

    result = h.run(request)

    assert result is None
    assert not target.exists()
    record = h.store.get_run("r1")
    assert record is not None
    assert record.status is Status.RUNNING


def _claimed(h: Harness, run_id: str, owner: str) -> None:
    """A scheduled run claimed by daemon ``owner``."""
    at = h.clock.now()
    release = ReleaseKey("marker-pipe", "* * * * *", at)
    assert h.store.claim_many([Claim(release, run_id, {}, at)], now=at, owner=owner) == [True]


def test_a_worker_of_a_daemon_that_lost_the_run_never_executes_it(
    h: Harness, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    _claimed(h, "r1", owner="b")  # taken over by daemon b
    stale = RunRequest(
        run_id="r1", pipeline="marker-pipe", params={"target": str(target)}, owner="a"
    )
    assert h.run(stale) is None
    assert not target.exists()
    record = h.store.get_run("r1")
    assert record is not None
    assert record.status is Status.PENDING  # left for b


def test_the_owner_that_holds_the_run_executes_it_and_records_its_end(
    h: Harness, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    _claimed(h, "r1", owner="b")
    request = RunRequest(
        run_id="r1", pipeline="marker-pipe", params={"target": str(target)}, owner="b"
    )
    result = h.run(request)
    assert result is not None
    assert result.status is Status.SUCCESS
    record = h.store.get_run("r1")
    assert record is not None
    assert (record.status, record.owner) == (Status.SUCCESS, "b")


def test_finished_run_is_not_run_again(h: Harness, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    request = h.request("marker-pipe", "r1", {"target": str(target)})
    h.store.finish("r1", status=Status.FAILED, now=h.clock.now(), error="interrupted")

    assert h.run(request) is None
    assert not target.exists()
    record = h.store.get_run("r1")
    assert record is not None
    assert record.error == "interrupted"


def test_cancelled_before_start_stays_pending(h: Harness, tmp_path: Path) -> None:
    request = h.request("marker-pipe", "r1", {"target": str(tmp_path / "x")})
    token = CancelToken()
    token.cancel("stopping")

    assert h.run(request, cancel=token) is None
    record = h.store.get_run("r1")
    assert record is not None
    assert record.status is Status.PENDING


def test_failing_stage_records_failed_with_summary(h: Harness) -> None:
    request = h.request("failing-pipe", "r1")

    result = h.run(request)

    assert result is not None
    assert result.status is Status.FAILED
    record = h.store.get_run("r1")
    assert record is not None
    assert record.status is Status.FAILED
    assert record.error is not None
    assert "exited with code 3" in record.error
    assert record.errors
    assert record.errors[0].stage is not None


def test_pipeline_that_cannot_be_built_is_failed_with_cause(h: Harness) -> None:
    template = h.loader.get("marker-pipe")
    broken = type(template)(
        name=template.name,
        file=template.file,
        data={**template.data, "jobs": {"main": {"stages": [{"name": "x", "nonsense": 1}]}}},
        type=template.type,
    )
    h.store.create_run(
        run_id="r1",
        pipeline="marker-pipe",
        trigger=TriggerKind.MANUAL,
        params={},
        now=h.clock.now(),
    )
    request = RunRequest(run_id="r1", pipeline="marker-pipe")

    result = h.run(request, template=broken)

    assert result is not None
    assert result.status is Status.FAILED
    record = h.store.get_run("r1")
    assert record is not None
    assert record.status is Status.FAILED
    assert record.error is not None
    assert record.error.startswith("cannot build pipeline 'marker-pipe'")
    assert "nonsense" in record.error


def test_bad_params_are_failed_not_left_running(h: Harness) -> None:
    request = h.request("marker-pipe", "r1")  # required `target` missing

    result = h.run(request)

    assert result is not None
    assert result.status is Status.FAILED
    record = h.store.get_run("r1")
    assert record is not None
    assert record.status is Status.FAILED
    assert record.error is not None
    assert "ParamError" in record.error
    assert "target" in record.error


def test_handshake_error_records_failed(h: Harness, tmp_path: Path) -> None:
    class BrokenStart(MemoryRunStore):
        def mark_running(
            self, run_id: str, *, now: datetime, owner: str | None = None, runner: str | None = None
        ) -> bool:
            raise StoreError("database is locked")

    broken = BrokenStart()
    request = h.request("marker-pipe", "r1", {"target": str(tmp_path / "x")}, store=broken)

    result = h.run(request, store=broken)

    assert result is not None
    assert result.status is Status.FAILED
    record = broken.get_run("r1")
    assert record is not None
    assert record.status is Status.FAILED
    assert record.error is not None
    assert "database is locked" in record.error
    assert not (tmp_path / "x").exists()


def test_cancel_during_run_records_cancelled(h: Harness) -> None:
    import threading

    request = h.request("cancel-pipe", "r1")
    token = CancelToken()
    started = threading.Event()

    def on_start() -> None:
        started.set()

    def cancel_when_started() -> None:
        if started.wait(10):
            token.cancel("operator asked")

    helper = threading.Thread(target=cancel_when_started)
    helper.start()
    result = h.run(
        request,
        cancel=token,
        on_start=on_start,
    )
    helper.join(10)

    assert result is not None
    assert result.status is Status.CANCELLED
    record = h.store.get_run("r1")
    assert record is not None
    assert record.status is Status.CANCELLED


def test_secrets_are_masked_before_storing(h: Harness, tmp_path: Path) -> None:
    secret = "s3cr3t-value-42"
    masker = Masker.from_env({"API_TOKEN": secret})
    target = tmp_path / "out.txt"
    request = h.request("marker-pipe", "r1", {"target": str(target), "word": secret})

    result = h.run(request, masker=masker)

    assert result is not None
    assert result.status is Status.SUCCESS
    record = h.store.get_run("r1")
    assert record is not None
    stored = json.dumps(record.context)
    assert secret not in stored
    assert "***" in stored


def test_per_run_log_file_is_written(
    h: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    request = h.request("marker-pipe", "r1", {"target": str(tmp_path / "x")})
    log_dir = tmp_path / "logs"

    caplog.set_level(logging.DEBUG, logger="ddeutil.workflow")
    with RunLogRouter.installed(log_dir) as router:
        h.run(request, router=router)

    lines = run_log_path(log_dir, "r1").read_text().splitlines()
    assert lines
    records = [json.loads(line) for line in lines]
    assert all(r["run_id"] == "r1" for r in records)
    messages = [r["message"] for r in records]
    assert messages[0] == "run started"
    assert messages[-1] == "run finished: SUCCESS"


def test_request_pickles_and_carries_release(h: Harness) -> None:
    release = ReleaseKey("marker-pipe", "* * * * *@UTC", datetime(2024, 1, 1, tzinfo=timezone.utc))
    request = RunRequest(
        run_id="r1",
        pipeline="marker-pipe",
        version="v1",
        params={"target": "/tmp/x"},
        logical_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        release=release,
        trigger=TriggerKind.SCHEDULE,
    )

    assert pickle.loads(pickle.dumps(request)) == request
    assert log_extra(request) == {
        "run_id": "r1",
        "pipeline": "marker-pipe",
        "release": "2024-01-01T00:00:00+00:00",
    }


def test_error_summary_names_where_and_counts(h: Harness) -> None:
    now = h.clock.now()
    ok = Result(status=Status.SUCCESS, run_id="r", start=now, end=now)
    bad = Result(
        status=Status.FAILED,
        run_id="r",
        start=now,
        end=now,
        errors=(ErrorRecord("boom", job="j", stage="s"), ErrorRecord("again")),
    )
    assert error_summary(ok) is None
    assert error_summary(bad) == "j/s: boom (+1 more)"
