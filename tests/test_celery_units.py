"""The Celery executor's settings, CLI, conf key and pieces that need no broker."""

from __future__ import annotations

import json
import logging
import shutil
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ddeutil.workflow.cli import main
from ddeutil.workflow.dispatch.celery_app import celery_app, safe_broker_url
from ddeutil.workflow.dispatch.celery_executor import CeleryExecutor
from ddeutil.workflow.dispatch.records import RunRequest
from ddeutil.workflow.dispatch.worker_templates import WorkerTemplates
from ddeutil.workflow.errors import ConfigError, SettingsError
from ddeutil.workflow.loader import Loader, RawTemplate, template_version
from ddeutil.workflow.pipeline import Pipeline
from ddeutil.workflow.result import Status
from ddeutil.workflow.runs import TriggerKind
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store.memory import MemoryRunStore

PIPE = """
wf-a:
  type: Pipeline
  jobs:
    j:
      stages:
        - name: Echo
          echo: NUMBER
"""


def test_celery_needs_a_broker_url(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError, match=r"WORKFLOW_CELERY_BROKER_URL.*required"):
        make_settings(WORKFLOW_APP_EXECUTOR="celery")
    settings = make_settings(
        WORKFLOW_APP_EXECUTOR="Celery", WORKFLOW_CELERY_BROKER_URL="redis://127.0.0.1:6379/0"
    )
    assert settings.app_executor == "celery"
    assert make_settings().app_executor == "local"


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("WORKFLOW_APP_EXECUTOR", "kubernetes", "expected local or celery"),
        ("WORKFLOW_CELERY_BROKER_URL", "http://broker", "expected amqp://"),
        ("WORKFLOW_CELERY_QUEUE", "bad queue", "expected a queue name"),
        ("WORKFLOW_CELERY_VISIBILITY_TIMEOUT", "0", "positive"),
        ("WORKFLOW_CELERY_MAX_RETRIES", "-1", "at least 1"),
    ],
)
def test_bad_celery_settings_name_the_variable(
    make_settings: Callable[..., Settings], name: str, value: str, reason: str
) -> None:
    with pytest.raises(SettingsError, match=reason) as caught:
        make_settings(**{name: value})
    assert caught.value.variable == name


def test_the_broker_password_is_hidden() -> None:
    assert safe_broker_url("amqp://user:s3cret@rabbit:5672//") == "amqp://***@rabbit:5672//"
    assert safe_broker_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    settings = Settings.from_env({"WORKFLOW_CELERY_BROKER_URL": "amqp://u:s3cret@h//"})
    assert "s3cret" not in repr(settings)


def test_the_app_takes_json_only_and_acks_late(make_settings: Callable[..., Settings]) -> None:
    app = celery_app(make_settings(WORKFLOW_CELERY_BROKER_URL="redis://127.0.0.1:1/0"))
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_transport_options["visibility_timeout"] == 86400
    assert app.conf.task_ignore_result is True


def test_a_pipeline_queue_must_be_a_queue_name(
    write_conf: Callable[[str, str], Path], settings: Settings
) -> None:
    write_conf(
        "p.yml",
        """
        wf-q:
          type: Pipeline
          queue: "etl; rm -rf /"
        wf-ok:
          type: Pipeline
          queue: etl.big-1
        """,
    )
    loader = Loader.from_settings(settings)
    with pytest.raises(ConfigError) as caught:
        Pipeline.from_loader("wf-q", loader=loader, settings=settings)
    assert caught.value.key is not None
    assert "queue" in caught.value.key
    assert Pipeline.from_loader("wf-ok", loader=loader, settings=settings).queue == "etl.big-1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["worker", "--queues", "a,b c"], "queue 'b c'"),
        (["worker", "--concurrency", "0"], "at least 1"),
    ],
)
def test_worker_cli_rejects_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_worker_cli_needs_a_broker(
    monkeypatch: pytest.MonkeyPatch, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.delenv("WORKFLOW_CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("WORKFLOW_APP_EXECUTOR", raising=False)
    assert main(["worker"]) == 2
    assert "WORKFLOW_CELERY_BROKER_URL is not set" in capsys.readouterr().err


def test_a_version_does_not_depend_on_the_conf_folder_path(tmp_path: Path) -> None:
    data = {"type": "Pipeline", "jobs": {}}
    here = RawTemplate("wf", tmp_path / "a" / "p.yml", data, "Pipeline")
    there = RawTemplate("wf", Path("/srv/elsewhere/conf/p.yml"), data, "Pipeline")
    assert template_version(here) == template_version(there)
    renamed = RawTemplate("wf", tmp_path / "a" / "other.yml", data, "Pipeline")
    assert template_version(renamed) != template_version(here)


def test_worker_templates_keep_versions_they_saw(
    write_conf: Callable[[str, str], Path], settings: Settings
) -> None:
    write_conf("p.yml", PIPE.replace("NUMBER", "one"))
    templates = WorkerTemplates(Loader.from_settings(settings))
    first = templates.get("wf-a", None)
    v1 = template_version(first)
    write_conf("p.yml", PIPE.replace("NUMBER", "two-two"))  # another size: a new fingerprint
    with pytest.raises(LookupError, match="the run was dispatched with version nope"):
        templates.get("wf-a", "nope")
    current = templates.get("wf-a", None)
    assert template_version(current) != v1
    assert templates.get("wf-a", v1) is first  # the last good version still runs
    with pytest.raises(LookupError, match="not in this worker's conf folder"):
        templates.get("wf-missing", None)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unknown_version_ends_the_run_at_once_and_a_dead_broker_drops_nothing(
    make_settings: Callable[..., Settings],
    write_conf: Callable[[str, str], Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_conf("p.yml", PIPE.replace("NUMBER", "one"))
    settings = make_settings(
        WORKFLOW_APP_EXECUTOR="celery",
        WORKFLOW_CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{_closed_port()}//",
    )
    loader = Loader.from_settings(settings)
    store = MemoryRunStore()
    now = datetime.now(timezone.utc)
    for run_id in ("r-known", "r-unknown"):
        store.create_run(
            run_id=run_id, pipeline="wf-a", trigger=TriggerKind.API, params={}, now=now
        )

    def templates(pipeline: str, version: str | None) -> RawTemplate | None:
        template = loader.get(pipeline)
        return template if version in (None, template_version(template)) else None

    executor = CeleryExecutor(settings=settings, templates=templates, store=store)
    caplog.set_level(logging.ERROR, "ddeutil.workflow")
    try:
        executor.submit(RunRequest("r-unknown", "wf-a", version="nope", trigger=TriggerKind.API))
        executor.submit(RunRequest("r-known", "wf-a", trigger=TriggerKind.API))
        events = executor.drain_events()
        assert [(e.run_id, e.status) for e in events] == [("r-unknown", Status.FAILED)]
        record = store.get_run("r-unknown")
        assert record is not None
        assert record.error is not None
        assert "version nope" in record.error
        assert executor.in_flight() == 1
        executor.wait_event(0.0)
    finally:
        executor.shutdown(0.0)
    known = store.get_run("r-known")
    assert known is not None
    assert known.status is Status.PENDING


def test_redis_server_is_available_for_the_restart_test() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    assert shutil.which("redis-server")


def test_health_lists_workers_apart_and_never_counts_them_as_daemons(
    monkeypatch: pytest.MonkeyPatch, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ddeutil.workflow.store import open_store

    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(root)})
    store = open_store(settings.api_db_url)
    now = datetime.now(timezone.utc)
    try:
        assert store.join("w:1:a", now=now, host="w", pid=1, kind="worker")
        assert main(["health", "--json"]) == 1  # a worker alone is no scheduler
        report = json.loads(capsys.readouterr().out)
        assert report["schedulers"] == []
        assert [w["owner"] for w in report["workers"]] == ["w:1:a"]
        assert store.join("d:2:b", now=now, host="d", pid=2)
        assert main(["health"]) == 0
        text = capsys.readouterr().out
        assert "daemons (" in text
        assert "workers (" in text
        assert text.index("d:2:b") < text.index("workers (") < text.index("w:1:a")
    finally:
        store.close()


def test_api_health_lists_workers_apart(make_settings: Callable[..., Settings]) -> None:
    from _apitest import TestClient
    from ddeutil.workflow.api import create_app

    store = MemoryRunStore()
    now = datetime.now(timezone.utc)
    assert store.join("w:1:a", now=now, host="w", pid=1, kind="worker")
    app = create_app(settings=make_settings(WORKFLOW_API_TOKEN="t0ken"), store=store)
    with TestClient(app) as client:
        body = client.get("/health").json()
    assert body["schedulers"] == []
    assert [w["owner"] for w in body["workers"]] == ["w:1:a"]
    assert body["scheduler"] is None


def test_a_stopping_worker_records_a_run_that_ignores_the_cancel_cancelled(
    make_settings: Callable[..., Settings], write_conf: Callable[[str, str], Path]
) -> None:
    import threading

    from ddeutil.workflow.dispatch.celery_worker import WorkerRuntime
    from ddeutil.workflow.masking import Masker

    write_conf(
        "p.yml",
        """
        wf-stubborn:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: Ignore the cancel
                  run: |
                    import threading
                    threading.Event().wait(3)
        """,
    )
    settings = make_settings(WORKFLOW_LOG_ENABLE_WRITE="false")
    store = MemoryRunStore()
    now = datetime.now(timezone.utc)
    store.create_run(
        run_id="r-1", pipeline="wf-stubborn", trigger=TriggerKind.API, params={}, now=now
    )
    runtime = WorkerRuntime(settings, Masker(), store=store, cancel_grace=0.2)
    runtime.start()
    done = threading.Event()

    def run() -> None:
        runtime.handle(
            RunRequest("r-1", "wf-stubborn", trigger=TriggerKind.API).to_dict(), retry=print
        )
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = datetime.now(timezone.utc).timestamp() + 10
        while (record := store.get_run("r-1")) is None or record.status is not Status.RUNNING:
            assert datetime.now(timezone.utc).timestamp() < deadline
            done.wait(0.01)
        runtime.drain(0.1)
        record = store.get_run("r-1")
        assert record is not None
        assert record.status is Status.CANCELLED
        assert "ignored the cancel" in (record.error or "")
        assert not done.is_set()  # still running: left behind, recorded
    finally:
        thread.join(timeout=10)
        runtime.close()
    final = store.get_run("r-1")
    assert final is not None
    assert final.status is Status.CANCELLED  # its late end was refused


def test_the_daemon_without_the_celery_extra_says_how_to_install_it(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib.util

    from ddeutil.workflow.app.daemon import serve
    from ddeutil.workflow.masking import Masker

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "celery" else real(name, *a)
    )
    settings = make_settings(
        WORKFLOW_APP_EXECUTOR="celery", WORKFLOW_CELERY_BROKER_URL="redis://127.0.0.1:1/0"
    )
    assert serve(settings, masker=Masker(), once=True) == 2
    assert "pip install 'ddeutil-workflow[celery]'" in capsys.readouterr().err
