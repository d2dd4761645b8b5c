"""``workflow run`` writes its run to the run store when one is configured.

Configured means ``WORKFLOW_API_DB_URL`` set, or the default SQLite store
existing under the root. The record is a daemon run's twin: trigger
``manual``, held by a client owner, masked params and context, a per-run log
file; ``workflow cancel`` and Ctrl-C end it CANCELLED with its bash process
group killed. ``--no-record`` and an unconfigured machine write (and import)
nothing.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _procs import wait_group_gone
from ddeutil.workflow.cli import main
from ddeutil.workflow.result import Status
from ddeutil.workflow.store import RunStore, TriggerKind, open_store

WAIT = 30.0
SECRET = "sekrit-value-0123456789"

CONF = """
sleeper:
  type: Pipeline
  params:
    seconds: {type: str, default: "0"}
    note: {type: str, default: "-"}
  jobs:
    main:
      stages:
        - name: Sleep
          id: sleep
          bash: |
            echo $$ > "$PID_FILE"
            echo "note ${{ params.note }}"
            sleep ${{ params.seconds }}
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "p.yml").write_text(textwrap.dedent(CONF), encoding="utf-8")
    return tmp_path


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, root: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{root / 'db' / 'runs.db'}"


@pytest.fixture
def store(store_url: str) -> Iterator[RunStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def env(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The test's environment, set in this process too (for in-process ``main``)."""
    values = {
        "WORKFLOW_ROOT_PATH": str(root),
        "WORKFLOW_CORE_TIMEZONE": "UTC",
        "PID_FILE": str(root / "bash.pid"),
        "DDW_RECORD_TEST_TOKEN": SECRET,
    }
    for name in [k for k in os.environ if k.startswith("WORKFLOW_")]:
        monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--log-format", "text", *argv], out=out)
    return code, out.getvalue()


def _wait_for(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def test_a_recorded_run_is_in_the_history_as_a_manual_run(
    env: dict[str, str], store_url: str, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOW_API_DB_URL", store_url)
    code, out = cli("run", "sleeper", "-p", f"note={SECRET}")
    assert code == 0, out
    [record] = store.list_runs()
    assert (record.pipeline, record.trigger, record.status) == (
        "sleeper",
        TriggerKind.MANUAL,
        Status.SUCCESS,
    )
    assert f"(run {record.run_id})" in out
    owners = {o.owner: o for o in store.owners()}
    assert record.owner is not None
    assert owners[record.owner].kind == "client"
    assert owners[record.owner].state.value == "stopped"  # left the store at the end
    stored = json.dumps([record.params, record.context], default=str)
    assert SECRET not in stored
    assert record.params["note"] == "***"
    log = Path(env["WORKFLOW_ROOT_PATH"]) / ".workflow" / "logs" / f"{record.run_id}.log"
    assert log.is_file()
    assert SECRET not in log.read_text()

    code, listing = cli("runs")
    assert code == 0
    line = next(line for line in listing.splitlines() if line.startswith(record.run_id))
    assert "manual" in line.split()
    assert "SUCCESS" in line.split()


def test_bad_params_record_nothing(
    env: dict[str, str], store_url: str, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOW_API_DB_URL", store_url)
    assert cli("run", "sleeper", "-p", "nonsense")[0] == 2
    assert store.list_runs() == []


def test_no_record_writes_nothing(
    env: dict[str, str], root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = root / "db" / "runs.db"
    monkeypatch.setenv("WORKFLOW_API_DB_URL", f"sqlite:///{db}")
    code, out = cli("run", "sleeper", "--no-record")
    assert code == 0, out
    assert not db.exists()


def test_the_default_store_is_used_once_it_exists(env: dict[str, str], root: Path) -> None:
    default = root / ".workflow" / "runs.db"
    open_store(f"sqlite:///{default}").close()  # a daemon or the API ran here
    assert cli("run", "sleeper")[0] == 0
    store = open_store(f"sqlite:///{default}")
    try:
        assert [r.trigger for r in store.list_runs()] == [TriggerKind.MANUAL]
    finally:
        store.close()


PROBE = """
import sys
from ddeutil.workflow.cli import main

code = main()
print("STORE", any(m.startswith("ddeutil.workflow.store") for m in sys.modules))
sys.exit(code)
"""


def test_without_a_store_nothing_is_created_nor_imported(env: dict[str, str], root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "run", "sleeper"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}, **env},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "STORE False" in done.stdout
    assert not (root / ".workflow" / "runs.db").exists()


def test_a_store_that_does_not_answer_exits_2_and_runs_nothing(
    env: dict[str, str],
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("WORKFLOW_API_DB_URL", "postgresql://someone:pw@127.0.0.1:1/none")
    code, _ = cli("run", "sleeper")
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot record the run in the run store postgresql://***@127.0.0.1:1/none" in err
    assert "--no-record" in err
    assert "pw" not in err.replace("postgresql", "")
    assert not (root / "bash.pid").exists()


def _start_run(env: dict[str, str], store_url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ddeutil.workflow",
            "--log-format",
            "text",
            "run",
            "sleeper",
            "-p",
            "seconds=120",
            *extra,
        ],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")},
            **env,
            "WORKFLOW_API_DB_URL": store_url,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.timeout(120)
def test_workflow_cancel_from_another_shell_cancels_a_recorded_run(
    env: dict[str, str],
    root: Path,
    store_url: str,
    store: RunStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc = _start_run(env, store_url)
    try:
        pgid = os.getpgid(_wait_for("the bash pid", lambda: _pid(root / "bash.pid")))
        [record] = store.list_runs()
        assert record.status is Status.RUNNING
        monkeypatch.setenv("WORKFLOW_API_DB_URL", store_url)
        code, out = cli("cancel", record.run_id, "--wait", str(WAIT))
        assert code == 0, out
        assert f"cancel asked of owner {record.owner}" in out
        assert f"run {record.run_id} ended CANCELLED" in out
        output, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 1, output
    assert "CANCELLED" in output
    wait_group_gone(pgid, WAIT)
    ended = store.get_run(record.run_id)
    assert ended is not None
    assert ended.status is Status.CANCELLED


@pytest.mark.timeout(120)
def test_ctrl_c_records_the_run_cancelled(
    env: dict[str, str], root: Path, store_url: str, store: RunStore
) -> None:
    proc = _start_run(env, store_url)
    try:
        pgid = os.getpgid(_wait_for("the bash pid", lambda: _pid(root / "bash.pid")))
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 1, output
    wait_group_gone(pgid, WAIT)
    [record] = store.list_runs()
    assert record.status is Status.CANCELLED
    assert record.trigger is TriggerKind.MANUAL
    owners = {o.owner: o for o in store.owners()}
    assert owners[record.owner or ""].state.value == "stopped"
