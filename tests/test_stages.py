"""What every stage shares: kind selection, ids, if, retry, timeout, errors (SPEC 3.4)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ddeutil.workflow.engine.pipeline import RunEvent
from ddeutil.workflow.engine.stages import (
    BashStage,
    EmptyStage,
    HookStage,
    PyStage,
    Retry,
    TriggerStage,
    slugify,
)
from ddeutil.workflow.errors import ConfigError
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings

if TYPE_CHECKING:
    from hooks_pkg.engine import Engine

TESTS = Path(__file__).parent


@pytest.fixture
def engine(
    write_conf: Callable[[str, str], Path],
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> Engine:
    monkeypatch.syspath_prepend(str(TESTS))
    from hooks_pkg import tasks
    from hooks_pkg.engine import Engine

    tasks.reset()
    return Engine(write_conf, make_settings(WORKFLOW_CORE_REGISTRY="ddeutil.workflow,hooks_pkg"))


def test_the_kind_follows_from_the_keys(engine: Engine) -> None:
    pipe = engine.load(
        """
        kinds:
          type: Pipeline
          jobs:
            only:
              stages:
                - name: empty
                - name: python
                  run: x = 1
                - name: bash
                  bash: "true"
                - name: hook
                  uses: tasks/returns_list@v1
                - name: trigger
                  trigger: kinds2
        kinds2:
          type: Pipeline
        """
    )
    kinds = [type(s) for s in pipe.jobs["only"].stages]
    assert kinds == [EmptyStage, PyStage, BashStage, HookStage, TriggerStage]  # type: ignore[list-item]


def test_an_unknown_key_is_a_load_error_naming_its_path(engine: Engine) -> None:
    with pytest.raises(ConfigError) as info:
        engine.load(
            """
            typo:
              type: Pipeline
              jobs:
                load:
                  stages:
                    - name: a
                    - name: b
                    - name: c
                      bsh: echo hi
            """
        )
    error = info.value
    assert error.key == "jobs.load.stages[2].bsh"
    assert error.template == "typo"
    assert error.file is not None
    assert error.file.endswith("engine.yml")
    assert "unknown key 'bsh'" in str(error)
    assert "empty stage takes" in str(error)


def test_an_unknown_key_of_a_bash_stage_is_not_taken_for_another_kind(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="unknown key 'vars'") as info:
        engine.load(
            """
            typo:
              type: Pipeline
              jobs:
                load:
                  stages:
                    - name: b
                      bash: echo
                      vars: {a: 1}
            """
        )
    assert info.value.key == "jobs.load.stages[0].vars"


def test_two_kind_keys_in_one_stage_are_refused(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="at most one of the keys") as info:
        engine.load(
            """
            two:
              type: Pipeline
              jobs:
                j:
                  stages:
                    - {name: b, bash: "true", run: "x = 1"}
            """
        )
    assert info.value.key == "jobs.j.stages[0]"


def test_a_stage_needs_a_name(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="missing required key 'name'") as info:
        engine.load(
            """
            nameless:
              type: Pipeline
              jobs:
                j:
                  stages:
                    - echo: hi
            """
        )
    assert info.value.key == "jobs.j.stages[0].name"


def test_default_id_is_the_slug_of_the_name(engine: Engine) -> None:
    result = engine.run(
        """
        ids:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: "Load Sales!! (daily)"
                  run: rows = 3
                - name: explicit
                  id: my-id
                  run: rows = 4
        """
    )
    stages = result.context["jobs"]["j"]["stages"]
    assert stages["load-sales-daily"]["outputs"] == {"rows": 3}
    assert stages["my-id"]["outputs"] == {"rows": 4}
    assert slugify("  Already-slug_ok ") == "already-slug_ok"
    assert slugify("!!!") == "stage"


def test_without_default_ids_a_stage_without_id_records_nothing(
    write_conf: Callable[[str, str], Path], make_settings: Callable[..., Settings]
) -> None:
    from hooks_pkg.engine import Engine

    engine = Engine(write_conf, make_settings(WORKFLOW_CORE_STAGE_DEFAULT_ID="false"))
    result = engine.run(
        """
        noid:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: nameless outputs
                  run: rows = 3
                - name: kept
                  id: kept
                  run: rows = 4
        """
    )
    assert result.status is Status.SUCCESS
    assert list(result.context["jobs"]["j"]["stages"]) == ["kept"]


def test_two_stages_with_the_same_id_are_a_load_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="record outputs under id 'echo'") as info:
        engine.load(
            """
            dup:
              type: Pipeline
              jobs:
                j:
                  stages:
                    - name: Echo
                    - name: echo
            """
        )
    assert info.value.key == "jobs.j.stages[1].name"


def test_id_and_name_may_use_matrix_templates(engine: Engine) -> None:
    result = engine.run(
        """
        tmpl:
          type: Pipeline
          jobs:
            j:
              strategy:
                matrix: {table: [sales, customer]}
              stages:
                - name: "Load ${{ matrix.table }}"
                  run: done = True
                - name: fixed
                  id: "out-${{ matrix.table }}"
                  run: t = 1
        """
    )
    strategies = result.context["jobs"]["j"]["strategies"]
    ids = sorted(k for s in strategies.values() for k in s["stages"])
    assert ids == ["load-customer", "load-sales", "out-customer", "out-sales"]


def test_if_false_skips_the_stage_and_records_it(engine: Engine) -> None:
    events: list[RunEvent] = []
    result = engine.run(
        """
        cond:
          type: Pipeline
          params:
            mode: str
          jobs:
            j:
              stages:
                - name: full only
                  if: "'${{ params.mode }}' == 'full'"
                  run: ran = True
                - name: delta only
                  if: "'${{ params.mode }}' == 'delta'"
                  run: ran = True
        """,
        {"mode": "delta"},
        on_event=events.append,
    )
    stages = result.context["jobs"]["j"]["stages"]
    assert stages["full-only"] == {"outputs": {}, "skipped": True}
    assert stages["delta-only"]["outputs"] == {"ran": True}
    assert [e.status for e in events if e.kind == "stage"] == [Status.SKIPPED, Status.SUCCESS]


def test_a_param_value_in_a_condition_never_executes(engine: Engine, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = f'" or __import__("pathlib").Path("{marker}").touch() or "'
    result = engine.run(
        """
        evil:
          type: Pipeline
          params:
            name: str
          jobs:
            j:
              stages:
                - name: guarded
                  if: "${{ params.name }} == 'admin'"
                  run: ran = True
                - name: quoted
                  if: "'${{ params.name }}' == 'admin'"
                  run: ran = True
        """,
        {"name": evil},
    )
    assert result.status is Status.SUCCESS
    assert not marker.exists()
    stages = result.context["jobs"]["j"]["stages"]
    assert stages["guarded"]["skipped"] is True
    assert stages["quoted"]["skipped"] is True


def test_a_condition_that_is_not_allowed_is_a_load_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="function calls") as info:
        engine.load(
            """
            badif:
              type: Pipeline
              jobs:
                j:
                  stages:
                    - name: x
                      if: "len('a') == 1"
            """
        )
    assert info.value.key == "jobs.j.stages[0].if"


def test_retry_tries_again_until_success(engine: Engine) -> None:
    result = engine.run(
        """
        retry:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: flaky
                  uses: tasks/flaky@v1
                  retry: {attempts: 3}
                  with: {key: a, failures: 2}
        """
    )
    assert result.status is Status.SUCCESS
    assert result.context["jobs"]["j"]["stages"]["flaky"]["outputs"] == {"attempts": 3}


def test_retry_gives_up_after_the_attempts_and_reports_the_last_error(engine: Engine) -> None:
    result = engine.run(
        """
        retry:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: flaky
                  uses: tasks/flaky@v1
                  retry: 2
                  with: {key: b, failures: 5}
        """
    )
    assert result.status is Status.FAILED
    assert "attempt 2 failed" in result.errors[0].message


def test_retry_delay_grows_with_backoff() -> None:
    retry = Retry.model_validate({"attempts": 4, "delay": 0.5, "backoff": 2})
    assert [retry.delay_before(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert Retry.model_validate(3).attempts == 3


def test_a_retry_wait_ends_when_the_run_is_cancelled(engine: Engine) -> None:
    from hooks_pkg import tasks

    started = time.perf_counter()
    result = engine.run(
        """
        retrywait:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: fails
                  uses: tasks/fail_and_cancel@v1
                  retry: {attempts: 3, delay: 30}
        """
    )
    assert time.perf_counter() - started < 10
    assert result.status is Status.CANCELLED
    assert tasks.CALLS == [("fail_and_cancel", None)]
    assert result.errors[0].message == "hook cancelled the run"


def test_timeout_fails_a_python_stage_that_runs_too_long(engine: Engine) -> None:
    from hooks_pkg import tasks

    started = time.perf_counter()
    result = engine.run(
        """
        slow:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: waits
                  uses: tasks/wait_cancel@v1
                  timeout: 0.2
                - name: after
                  run: x = 1
        """
    )
    assert time.perf_counter() - started < 5
    assert result.status is Status.FAILED
    assert result.errors[0].kind == "StageCancelled"
    assert "timed out after 0.2s" in result.errors[0].message
    assert "after" not in result.context["jobs"]["j"]["stages"]
    # the hook was told through its cancel token and stopped by itself
    assert tasks.WAIT_DONE.wait(5)
    assert ("wait_cancel", True) in tasks.CALLS


def test_stage_raise_error_false_records_the_error_and_goes_on(
    write_conf: Callable[[str, str], Path], make_settings: Callable[..., Settings]
) -> None:
    from hooks_pkg.engine import Engine

    engine = Engine(write_conf, make_settings(WORKFLOW_CORE_STAGE_RAISE_ERROR="false"))
    result = engine.run(
        """
        goon:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: broken
                  run: 1 / 0
                - name: next
                  run: ok = True
        """
    )
    stages = result.context["jobs"]["j"]["stages"]
    assert result.status is Status.SUCCESS
    assert stages["broken"]["error"]["kind"] == "StageError"
    assert "ZeroDivisionError" in stages["broken"]["error"]["message"]
    assert stages["next"]["outputs"] == {"ok": True}
    assert [(e.job, e.stage) for e in result.errors] == [("j", "broken")]


def test_every_log_line_of_a_run_carries_its_context(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="ddeutil.workflow"):
        result = engine.run(
            """
            logged:
              type: Pipeline
              params:
                who: str
              jobs:
                j:
                  stages:
                    - name: hello
                      echo: "hello ${{ params.who }}"
            """,
            {"who": "world"},
        )
    records = [r for r in caplog.records if getattr(r, "run_id", None) == result.run_id]
    assert any(r.getMessage() == "hello world" for r in records)
    echo = next(r for r in records if r.getMessage() == "hello world")
    assert (echo.pipeline, echo.job, echo.stage) == ("logged", "j", "hello")  # type: ignore[attr-defined]
    engine_records = [r for r in caplog.records if r.name.startswith("ddeutil.workflow.")]
    engine_records = [
        r for r in engine_records if r.name.split(".")[3:4] in (["pipeline"], ["job"], ["stages"])
    ]
    assert engine_records
    assert all(hasattr(r, "run_id") and hasattr(r, "pipeline") for r in engine_records)


def test_an_empty_stage_sleep_ends_when_its_token_is_cancelled(engine: Engine) -> None:
    started = time.perf_counter()
    result = engine.run(
        """
        sleepy:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: nap
                  echo: "napping"
                  sleep: 30
                  timeout: 0.2
        """
    )
    assert result.status is Status.FAILED
    assert "timed out after 0.2s" in result.errors[0].message
    # the stage's helper thread was woken by its cancel token, not left sleeping 30 s
    helpers = [t for t in threading.enumerate() if t.name == "stage-nap"]
    for thread in helpers:
        thread.join(5)
    assert not any(t.is_alive() for t in helpers)
    assert time.perf_counter() - started < 10


def test_sleep_takes_a_template_and_refuses_bad_values(engine: Engine) -> None:
    result = engine.run(
        """
        naps:
          type: Pipeline
          params: {wait: str}
          jobs:
            j:
              stages:
                - {name: zero, sleep: "${{ params.wait }}"}
        """,
        {"wait": "0"},
    )
    assert result.status is Status.SUCCESS
    for bad, message in (
        ("soon", "sleep must be a number of seconds, got 'soon'"),
        ("-1", "must not be negative"),
    ):
        result = engine.run(
            """
            naps:
              type: Pipeline
              params: {wait: str}
              jobs:
                j:
                  stages:
                    - {name: zero, sleep: "${{ params.wait }}"}
            """,
            {"wait": bad},
        )
        assert result.status is Status.FAILED
        assert message in result.errors[0].message


def test_an_event_callback_that_raises_never_breaks_the_run(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: RunEvent) -> None:
        raise RuntimeError("printer on fire")

    with caplog.at_level(logging.ERROR, logger="ddeutil.workflow"):
        result = engine.run(
            """
            p:
              type: Pipeline
              jobs:
                j: {stages: [{name: s, run: x = 1}]}
            """,
            on_event=broken,
        )
    assert result.status is Status.SUCCESS
    assert "on_event callback failed" in caplog.text
