"""Pipelines: loading, params, the run context, results (SPEC 3.2, 3.6)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from ddeutil.workflow.cancellation import CancelToken
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.engine.pipeline import Pipeline, new_run_id
from ddeutil.workflow.errors import ConfigError, ParamError, TemplateNotFound
from ddeutil.workflow.result import Status

if TYPE_CHECKING:
    from hooks_pkg.engine import Engine

SEED = """
on_every_5_min:
  type: on.On
  cron: "*/5 * * * *"

run_py_local:
  type: ddeutil.workflow.pipeline.Pipeline
  on: 'on_every_5_min'
  params:
    author-run:
      type: str
    run-date:
      type: datetime
"""


def test_the_seed_readme_example_runs_as_written(
    write_conf: Callable[[str, str], Path], root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_conf("seed.yml", SEED)
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "Asia/Bangkok")

    pipe = Pipeline.from_loader(name="run_py_local", externals={})
    result = pipe.execute(params={"author-run": "Local Workflow", "run-date": "2024-01-01"})

    assert result.status is Status.SUCCESS
    assert result.context == {
        "params": {"author-run": "Local Workflow", "run-date": datetime(2024, 1, 1)},
        "jobs": {},
    }
    assert pipe.jobs == {}
    assert [str(on.cronjob) for on in pipe.on] == ["*/5 * * * *"]
    assert pipe.on[0].timezone == ZoneInfo("Asia/Bangkok")


def test_on_accepts_a_name_a_list_and_inline_mappings(engine: Engine) -> None:
    pipe = engine.load(
        """
        p:
          type: Pipeline
          on:
            - every5
            - {cron: "0 1 * * *", timezone: "America/New_York"}
            - {cronjob: "@hourly"}
        every5:
          type: on.On
          cron: "*/5 * * * *"
        """
    )
    assert [on.key for on in pipe.on] == [
        "*/5 * * * *@UTC",
        "0 1 * * *@America/New_York",
        "@hourly@UTC",
    ]


def test_a_bad_inline_schedule_is_a_load_error_keyed_by_its_position(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="no On template has that name") as info:
        engine.load(
            """
            p:
              type: Pipeline
              on: ["*/5 * * * *"]
            """
        )
    assert (info.value.template, info.value.key) == ("p", "on[0]")
    with pytest.raises(ConfigError, match="61") as info:
        engine.load(
            """
            p:
              type: Pipeline
              on: [{cron: "61 * * * *"}]
            """
        )
    assert info.value.key is not None
    assert info.value.key.startswith("on[0]")


def test_daemon_policies_default_and_validate(engine: Engine) -> None:
    pipe = engine.load("p: {type: Pipeline}")
    assert (pipe.concurrency, pipe.catchup) == ("allow", "latest")
    pipe = engine.load("p: {type: Pipeline, concurrency: queue, catchup: all}")
    assert (pipe.concurrency, pipe.catchup) == ("queue", "all")
    with pytest.raises(ConfigError, match="'allow', 'skip' or 'queue'") as info:
        engine.load("p: {type: Pipeline, concurrency: sometimes}")
    assert info.value.key == "concurrency"


def test_warnings_name_required_params_without_default_of_a_scheduled_pipeline(
    engine: Engine,
) -> None:
    text = """
        p:
          type: Pipeline
          on: {cron: "0 * * * *"}
          params:
            author: str
            day: {type: date, default: "2024-01-01"}
            mode: {type: str, required: false}
        """
    assert engine.load(text).warnings() == [
        "pipeline 'p' is not scheduled: its params author are required and have no default"
    ]
    unscheduled = engine.load(text.replace('on: {cron: "0 * * * *"}', "desc: manual"))
    assert unscheduled.warnings() == []


def test_unknown_top_level_keys_are_load_errors(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="unknown key 'job'") as info:
        engine.load("p: {type: Pipeline, job: {}}")
    assert info.value.key == "job"


def test_from_loader_refuses_a_template_of_another_type(engine: Engine) -> None:
    engine.write("every5: {type: on.On, cron: '*/5 * * * *'}")
    with pytest.raises(ConfigError, match="is a On, not a pipeline"):
        Pipeline.from_loader("every5", settings=engine.settings, loader=engine.loader())
    with pytest.raises(TemplateNotFound, match="'ghost'"):
        Pipeline.from_loader("ghost", settings=engine.settings, loader=engine.loader())


def test_externals_are_merged_over_the_template(engine: Engine) -> None:
    engine.write("p: {type: Pipeline, desc: from file, params: {a: str}}")
    pipe = Pipeline.from_loader(
        "p", externals={"desc": "from caller"}, settings=engine.settings, loader=engine.loader()
    )
    assert pipe.desc == "from caller"
    assert list(pipe.params.params) == ["a"]


BAD_PARAMS = """
p:
  type: Pipeline
  params:
    count: int
    day: date
    mode: {type: choice, options: [full, delta]}
    name: str
  jobs:
    side-effect:
      stages:
        - name: touch
          bash: touch {marker}
"""


def test_all_param_problems_are_reported_together_and_nothing_runs(
    engine: Engine, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    pipe = engine.load(BAD_PARAMS.replace("{marker}", str(marker)))
    with pytest.raises(ParamError) as info:
        pipe.execute(
            {"count": "many", "day": "someday", "mode": "weekly"}, settings=engine.settings
        )
    problems = {p.name: p.message for p in info.value.problems}
    assert set(problems) == {"count", "day", "mode", "name"}
    assert "is not one of the options: full, delta" in problems["mode"]
    assert "is required" in problems["name"]
    assert info.value.pipeline == "p"
    assert not marker.exists()


def test_a_template_using_a_param_that_was_not_given_is_refused_before_running(
    engine: Engine, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    pipe = engine.load_data(
        {
            "p": {
                "type": "Pipeline",
                "jobs": {
                    "first": {"stages": [{"name": "touch", "bash": f"touch {marker}"}]},
                    "second": {
                        "needs": ["first"],
                        "stages": [{"name": "use", "echo": "${{ params.undeclared }}"}],
                    },
                },
            }
        }
    )
    with pytest.raises(ParamError, match=r"undeclared: is used by jobs\.second\.stages\[0\]\.echo"):
        pipe.execute(settings=engine.settings)
    assert not marker.exists()
    # an undeclared param passed by the caller is kept (with a warning) and used
    result = pipe.execute({"undeclared": "given"}, settings=engine.settings)
    assert result.status is Status.SUCCESS
    assert marker.exists()


def test_the_run_context_has_release_logical_date_and_run_id(engine: Engine) -> None:
    clock = FakeClock(datetime(2024, 3, 1, 5, 30, tzinfo=timezone.utc))
    text = """
        p:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: ctx
                  run: |
                    day = logical.isoformat()
                    rid = "${{ run_id }}"
                  vars: {logical: "${{ release.logical_date }}"}
        """
    result = engine.run(text, clock=clock)
    outputs = result.context["jobs"]["j"]["stages"]["ctx"]["outputs"]
    assert outputs == {"day": "2024-03-01T05:30:00+00:00", "rid": result.run_id}
    assert result.start == result.end == clock.now()

    given = datetime(2023, 12, 31, 23, 0, tzinfo=ZoneInfo("Asia/Bangkok"))
    result = engine.run(
        text, clock=clock, logical_date=given, run_id="manual-1", parent_run_id="up"
    )
    outputs = result.context["jobs"]["j"]["stages"]["ctx"]["outputs"]
    assert outputs == {"day": "2023-12-31T23:00:00+07:00", "rid": "manual-1"}
    assert (result.run_id, result.parent_run_id, result.pipeline) == ("manual-1", "up", "p")


def test_new_run_id_is_the_start_time_in_utc_and_random_hex() -> None:
    # 07:00:05 in Bangkok is 00:00:05 UTC: ids name UTC, whatever the configured zone.
    clock = FakeClock(datetime(2024, 1, 1, 7, 0, 5, tzinfo=ZoneInfo("Asia/Bangkok")))
    first = new_run_id(clock)
    assert re.fullmatch(r"20240101T000005-[0-9a-f]{8}", first)
    assert first != new_run_id(clock)


def test_a_cancelled_token_cancels_the_run_before_any_job(engine: Engine) -> None:
    token = CancelToken()
    token.cancel("shutting down")
    result = engine.run(
        """
        p:
          type: Pipeline
          jobs:
            a: {stages: [{name: s, run: x = 1}]}
            b: {needs: [a], stages: [{name: s, run: x = 1}]}
        """,
        cancel=token,
    )
    assert result.status is Status.CANCELLED
    assert {j["status"] for j in result.context["jobs"].values()} == {"CANCELLED"}
    assert result.context["jobs"]["a"]["cancelled"] == "run cancelled: shutting down"


def test_errors_carry_job_and_stage_and_the_result_is_json_ready(engine: Engine) -> None:
    import json

    result = engine.run(
        """
        p:
          type: Pipeline
          jobs:
            a:
              stages:
                - {name: fine, run: x = 1}
                - {name: broken, id: br, bash: "exit 4"}
                - {name: never, run: y = 1}
        """
    )
    assert result.status is Status.FAILED
    (error,) = result.errors
    assert (error.job, error.stage, error.kind) == ("a", "br", "StageError")
    assert "never" not in result.context["jobs"]["a"]["stages"]
    data = json.loads(json.dumps(result.to_dict(), default=str))
    assert data["errors"] == [
        {
            "kind": "StageError",
            "job": "a",
            "stage": "br",
            "message": "bash exited with code 4: (no stderr)",
        }
    ]


def test_a_pipeline_validated_without_a_loader_compiles_for_each_run(engine: Engine) -> None:
    data: dict[str, Any] = {
        "name": "inline",
        "params": {"n": "int"},
        "jobs": {
            "j": {"stages": [{"name": "s", "run": "m = n + 1", "vars": {"n": "${{ params.n }}"}}]}
        },
    }
    pipe = Pipeline.model_validate(data)
    assert pipe.plan is None
    result = pipe.execute({"n": 1}, settings=engine.settings)
    assert result.context["jobs"]["j"]["stages"]["s"]["outputs"] == {"m": 2}
    assert pipe.plan is None  # nothing kept on the template after a run


def test_schedules_cannot_be_given_as_raw_values_without_a_loader() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"resolved by Pipeline\.from_loader"):
        Pipeline.model_validate({"name": "x", "on": "every5"})
