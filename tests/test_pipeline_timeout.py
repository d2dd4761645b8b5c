"""A pipeline's ``timeout:`` (and ``WORKFLOW_CORE_PIPELINE_TIMEOUT``): past it the run is
cancelled (shell children killed) and ends FAILED with the timeout as its first error."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ddeutil.workflow.cancellation import CancelToken
from ddeutil.workflow.clock import SystemClock
from ddeutil.workflow.dispatch.execute import execute_request
from ddeutil.workflow.dispatch.records import RunRequest
from ddeutil.workflow.errors import ConfigError, SettingsError
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.pipeline import Pipeline
from ddeutil.workflow.result import Status
from ddeutil.workflow.runs import TriggerKind
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store.memory import MemoryRunStore

SLEEPER = """
wf-sleeper:
  type: Pipeline
  TIMEOUT
  params: {seconds: {type: str, default: "30"}}
  jobs:
    j:
      stages:
        - name: Sleep
          bash: |
            echo $$ > "PIDFILE"
            sleep ${{ params.seconds }}
"""


def _conf(write_conf: Callable[[str, str], Path], root: Path, timeout: str = "") -> Path:
    pidfile = root / "bash.pid"
    text = SLEEPER.replace("TIMEOUT", timeout or "desc: no timeout key").replace(
        "PIDFILE", str(pidfile)
    )
    write_conf("p.yml", text)
    return pidfile


def _alive(pid: int) -> bool:
    try:
        with Path(f"/proc/{pid}/stat").open() as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_run_past_its_timeout_is_cancelled_and_fails_with_the_timeout_first(
    write_conf: Callable[[str, str], Path], root: Path, settings: Settings
) -> None:
    pidfile = _conf(write_conf, root, "timeout: 0.3")
    pipeline = Pipeline.from_loader("wf-sleeper", loader=Loader.from_settings(settings))
    began = time.monotonic()
    result = pipeline.execute({}, settings=settings)
    assert time.monotonic() - began < 10
    assert result.status is Status.FAILED
    assert result.errors[0].kind == "Timeout"
    assert result.errors[0].message == "timeout: the run took longer than 0.3s"
    assert not _alive(int(pidfile.read_text()))  # the shell child was killed


def test_the_setting_is_the_default_and_the_key_wins(
    write_conf: Callable[[str, str], Path],
    root: Path,
    make_settings: Callable[..., Settings],
) -> None:
    _conf(write_conf, root)
    short = make_settings(WORKFLOW_CORE_PIPELINE_TIMEOUT="0.3")
    pipeline = Pipeline.from_loader("wf-sleeper", loader=Loader.from_settings(short))
    assert pipeline.execute({}, settings=short).errors[0].kind == "Timeout"
    _conf(write_conf, root, "timeout: 30")
    pipeline = Pipeline.from_loader("wf-sleeper", loader=Loader.from_settings(short))
    assert pipeline.execute({"seconds": "0.5"}, settings=short).status is Status.SUCCESS


def test_a_cancel_before_the_timeout_stays_a_cancel(
    write_conf: Callable[[str, str], Path], root: Path, settings: Settings
) -> None:
    _conf(write_conf, root, "timeout: 30")
    pipeline = Pipeline.from_loader("wf-sleeper", loader=Loader.from_settings(settings))
    token = CancelToken()
    token.cancel("operator asked")
    result = pipeline.execute({}, settings=settings, cancel=token)
    assert result.status is Status.CANCELLED
    assert all(e.kind != "Timeout" for e in result.errors)


def test_a_stored_run_past_its_timeout_is_recorded_failed_timeout(
    write_conf: Callable[[str, str], Path], root: Path, settings: Settings
) -> None:
    _conf(write_conf, root, "timeout: 0.3")
    loader = Loader.from_settings(settings)
    store = MemoryRunStore()
    now = datetime.now(timezone.utc)
    store.create_run(
        run_id="r-1", pipeline="wf-sleeper", trigger=TriggerKind.API, params={}, now=now
    )
    execute_request(
        RunRequest("r-1", "wf-sleeper", trigger=TriggerKind.API),
        loader.get("wf-sleeper"),
        store=store,
        settings=settings,
        masker=Masker(),
        clock=SystemClock(),
        cancel=CancelToken(),
        loader=loader,
    )
    record = store.get_run("r-1")
    assert record is not None
    assert record.status is Status.FAILED
    assert record.error == "timeout: the run took longer than 0.3s (+1 more)"


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_bad_timeout_key_names_the_key(
    write_conf: Callable[[str, str], Path], root: Path, settings: Settings, value: str
) -> None:
    _conf(write_conf, root, f"timeout: {value}")
    with pytest.raises(ConfigError) as caught:
        Pipeline.from_loader("wf-sleeper", loader=Loader.from_settings(settings))
    assert caught.value.key is not None
    assert "timeout" in caught.value.key


def test_the_setting_reads_seconds_and_zero_means_no_limit(
    make_settings: Callable[..., Settings],
) -> None:
    assert make_settings().pipeline_timeout is None
    assert make_settings(WORKFLOW_CORE_PIPELINE_TIMEOUT="0").pipeline_timeout is None
    assert make_settings(WORKFLOW_CORE_PIPELINE_TIMEOUT="90").pipeline_timeout == 90.0
    with pytest.raises(SettingsError, match="WORKFLOW_CORE_PIPELINE_TIMEOUT"):
        make_settings(WORKFLOW_CORE_PIPELINE_TIMEOUT="-1")
