"""The bash stage: outputs, env, exit codes, process groups, timeout and cancellation."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.cancellation import CancelToken
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.result import Result, Status
from ddeutil.workflow.settings import Settings
from hooks_pkg.engine import Engine, wait_dead


def _bash(
    engine: Engine,
    script: str,
    *,
    env: dict[str, Any] | None = None,
    timeout: float | None = None,
    params: dict[str, Any] | None = None,
    declare: dict[str, Any] | None = None,
    **execute: Any,
) -> Result:
    stage: dict[str, Any] = {"name": "sh", "bash": script}
    if env is not None:
        stage["env"] = env
    if timeout is not None:
        stage["timeout"] = timeout
    pipe = engine.load_data(
        {"sh": {"type": "Pipeline", "params": declare or {}, "jobs": {"j": {"stages": [stage]}}}}
    )
    return pipe.execute(params, settings=engine.settings, **execute)


def _outputs(result: Result) -> dict[str, Any]:
    outputs: dict[str, Any] = result.context["jobs"]["j"]["stages"]["sh"]["outputs"]
    return outputs


def test_outputs_return_code_stdout_and_stderr_without_trailing_newlines(engine: Engine) -> None:
    result = _bash(engine, "echo hello\nprintf 'two\\n\\n'\necho oops >&2")
    assert result.status is Status.SUCCESS
    assert _outputs(result) == {"return_code": 0, "stdout": "hello\ntwo", "stderr": "oops"}


def test_env_is_rendered_and_merged_over_the_process_environment(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WF_INHERITED", "inherited")
    result = _bash(
        engine,
        'echo "$GREETING|$FROM_ENV|$WF_INHERITED|$NUMBER"',
        env={"GREETING": "hi ${{ params.who }}", "FROM_ENV": "${WF_INHERITED}", "NUMBER": 5},
        params={"who": "me"},
        declare={"who": "str"},
    )
    assert _outputs(result)["stdout"] == "hi me|inherited|inherited|5"


def test_the_body_is_left_to_the_shell_for_variables(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("X", "from-process-env")
    result = _bash(
        engine, 'X=local\necho "${X} ${{ params.n }}"', params={"n": 3}, declare={"n": "int"}
    )
    assert _outputs(result)["stdout"] == "local 3"


def test_a_non_zero_exit_fails_the_stage_naming_the_code(engine: Engine) -> None:
    result = _bash(engine, "echo first >&2\necho 'last words' >&2\nexit 3")
    assert result.status is Status.FAILED
    error = result.errors[0]
    assert (error.job, error.stage) == ("j", "sh")
    assert error.message == "bash exited with code 3: last words"


def test_secrets_are_masked_in_outputs(engine: Engine) -> None:
    result = _bash(
        engine,
        'echo "token=$API_TOKEN other=$DB_PASS"',
        env={"API_TOKEN": "tok-123456", "DB_PASS": "not-sensitive-name"},
        masker=Masker(frozenset({"not-sensitive-name"})),
    )
    assert _outputs(result)["stdout"] == "token=*** other=***"


def test_the_script_leads_its_own_process_group(engine: Engine) -> None:
    result = _bash(engine, "echo $$\ncut -d' ' -f5 /proc/$$/stat")
    pid, pgid = _outputs(result)["stdout"].split()
    assert pid == pgid
    assert int(pgid) != os.getpgid(0)


def test_timeout_kills_the_whole_process_group_quickly(engine: Engine, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.perf_counter()
    result = _bash(engine, f"sleep 30 &\necho $! > {pidfile}\nwait", timeout=0.2)
    elapsed = time.perf_counter() - started
    assert result.status is Status.FAILED
    assert result.errors[0].kind == "StageCancelled"
    assert "timed out after 0.2s; process group killed" in result.errors[0].message
    assert elapsed < 5
    assert wait_dead(int(pidfile.read_text()))


def test_a_script_that_ignores_sigterm_is_killed_after_the_grace(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ddeutil.workflow.engine.stages import bash

    monkeypatch.setattr(bash, "KILL_GRACE", 0.3)
    pidfile = tmp_path / "child.pid"
    script = f"trap '' TERM\nsleep 30 &\necho $! > {pidfile}\nwait"
    started = time.perf_counter()
    result = _bash(engine, script, timeout=0.2)
    elapsed = time.perf_counter() - started
    assert result.status is Status.FAILED
    assert "process group killed" in result.errors[0].message
    assert 0.5 <= elapsed < 8  # timeout + grace, then SIGKILL
    assert wait_dead(int(pidfile.read_text()))


def test_cancellation_reaches_a_running_script(engine: Engine, tmp_path: Path) -> None:
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    pidfile = tmp_path / "child.pid"
    token = CancelToken()
    results: list[Result] = []
    script = f"sleep 30 &\necho $! > {pidfile}\necho go > {fifo}\nwait"
    runner = threading.Thread(target=lambda: results.append(_bash(engine, script, cancel=token)))
    started = time.perf_counter()
    runner.start()
    with fifo.open() as fh:  # blocks until the script is running
        assert fh.read().strip() == "go"
    token.cancel("operator stop")
    runner.join(10)
    assert not runner.is_alive()
    assert time.perf_counter() - started < 10
    (result,) = results
    assert result.status is Status.CANCELLED
    assert "cancelled: operator stop" in result.errors[0].message
    assert wait_dead(int(pidfile.read_text()))


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("start", "end", "status"),
    [
        ("sleep 600", "exit 0", Status.SUCCESS),
        ("nohup sleep 600", "exit 0", Status.SUCCESS),
        ("sleep 600", "exit 3", Status.FAILED),
    ],
)
def test_a_background_child_is_killed_when_the_stage_ends(
    engine: Engine, tmp_path: Path, start: str, end: str, status: Status
) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"{start} >/dev/null 2>&1 &\necho $! > {pidfile}\n{end}"
    result = _bash(engine, script)
    pid = int(pidfile.read_text())
    try:
        assert result.status is status
        assert wait_dead(pid)
    finally:
        _kill(pid)


def test_a_bare_wait_in_the_script_does_not_wait_for_the_watchdog(engine: Engine) -> None:
    # the watchdog is a background child of the script's own bash: `wait` must not see it
    result = _bash(engine, "sleep 0.1 &\nwait\necho waited", timeout=20)
    assert result.status is Status.SUCCESS, result.errors
    assert _outputs(result)["stdout"] == "waited"


def test_a_bash_env_of_the_environment_is_still_read(engine: Engine, tmp_path: Path) -> None:
    startup = tmp_path / "startup.sh"
    startup.write_text("FROM_BASH_ENV=yes\n")
    result = _bash(
        engine,
        'echo "$FROM_BASH_ENV $BASH_ENV"',
        env={"BASH_ENV": str(startup)},
    )
    assert _outputs(result)["stdout"] == f"yes {startup}"
    unset = _bash(engine, 'echo "[${BASH_ENV-unset}]"')
    assert _outputs(unset)["stdout"] == "[unset]"


def test_a_background_child_holding_stdout_does_not_block_the_stage(
    engine: Engine, tmp_path: Path
) -> None:
    pidfile = tmp_path / "child.pid"
    results: list[Result] = []
    script = f"sleep 600 &\necho $! > {pidfile}\necho done"
    runner = threading.Thread(target=lambda: results.append(_bash(engine, script)), daemon=True)
    runner.start()
    runner.join(10)
    try:
        assert not runner.is_alive()
        (result,) = results
        assert result.status is Status.SUCCESS
        assert _outputs(result)["stdout"] == "done"
        assert wait_dead(int(pidfile.read_text()))
    finally:
        _kill(int(pidfile.read_text()))


def test_output_is_capped_and_read_in_bounded_memory(engine: Engine) -> None:
    limit = engine.settings.stage_output_limit
    size = 20 * 1024 * 1024
    tracemalloc.start()
    try:
        result = _bash(engine, f"head -c {size} /dev/zero | tr '\\0' x\necho END")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stdout = _outputs(result)["stdout"]
    assert result.status is Status.SUCCESS
    assert peak < 8 * limit  # the 20 MiB never sit in memory
    dropped = size + len("END\n") - limit
    assert f"\n... [truncated: {dropped} bytes] ...\n" in stdout
    assert len(stdout) <= limit + 100
    assert stdout.startswith("x" * 1000)
    assert stdout.endswith("xxxEND")


def test_the_output_limit_is_a_setting_and_keeps_each_streams_start_and_end(
    engine: Engine, make_settings: Callable[..., Settings]
) -> None:
    engine.settings = make_settings(WORKFLOW_CORE_STAGE_OUTPUT_LIMIT="8")
    result = _bash(engine, "printf 0123456789abcdef\nprintf 'oops\\n' >&2")
    assert _outputs(result) == {
        "return_code": 0,
        "stdout": "012345\n... [truncated: 8 bytes] ...\nef",
        "stderr": "oops",
    }


def test_a_child_that_left_the_group_does_not_hold_up_the_stage(
    engine: Engine, tmp_path: Path
) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"setsid sleep 600 &\necho $! > {pidfile}\necho done"
    started = time.perf_counter()
    results: list[Result] = []
    runner = threading.Thread(target=lambda: results.append(_bash(engine, script)), daemon=True)
    runner.start()
    runner.join(10)
    try:
        assert not runner.is_alive()
        assert time.perf_counter() - started < 5  # DRAIN_WAIT after bash exits, not 600 s
        assert _outputs(results[0])["stdout"] == "done"
    finally:
        _kill(int(pidfile.read_text()))
