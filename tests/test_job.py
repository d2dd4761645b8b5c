"""Jobs: needs ordering, skipping, matrix runs, fail-fast, load-time template checks."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ddeutil.workflow.engine.pipeline import Pipeline
from ddeutil.workflow.engine.strategy import combination_id
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


def _jobs(engine: Engine, jobs: dict[str, Any], **extra: Any) -> Pipeline:
    return engine.load_data({"p": {"type": "Pipeline", "jobs": jobs, **extra}})


def _ok(name: str = "ok") -> dict[str, Any]:
    return {"name": name, "run": "done = True"}


def _fail(name: str = "fail") -> dict[str, Any]:
    return {"name": name, "run": "1 / 0"}


def test_needs_are_ordered_once_at_load(engine: Engine) -> None:
    pipe = _jobs(
        engine,
        {
            "publish": {"needs": ["transform", "extract"], "stages": [_ok()]},
            "transform": {"needs": ["extract", "extract"], "stages": [_ok()]},
            "extract": {"stages": [_ok()]},
        },
    )
    assert pipe.plan is not None
    assert pipe.plan.order == ("extract", "transform", "publish")
    assert pipe.jobs["transform"].needs == ["extract"]
    result = pipe.execute(settings=engine.settings)
    assert list(result.context["jobs"]) == ["extract", "transform", "publish"]
    assert result.status is Status.SUCCESS


def test_needs_may_be_one_job_id(engine: Engine) -> None:
    pipe = _jobs(engine, {"a": {}, "b": {"needs": "a"}})
    assert pipe.jobs["b"].needs == ["a"]


def test_an_unknown_need_is_a_load_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="job 'b' needs unknown job 'nope'") as info:
        _jobs(engine, {"a": {"stages": []}, "b": {"needs": ["nope"]}})
    assert info.value.key == "jobs.b.needs"
    assert info.value.template == "p"


def test_a_cycle_is_a_load_error_naming_the_jobs(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="cycle in `needs`: ") as info:
        _jobs(
            engine,
            {
                "start": {},
                "a": {"needs": ["start", "c"]},
                "b": {"needs": ["a"]},
                "c": {"needs": ["b"]},
            },
        )
    message = str(info.value)
    cycle = message.split("cycle in `needs`: ")[1].split(" -> ")
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}


def test_a_job_that_needs_itself_is_a_load_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="needs itself"):
        _jobs(engine, {"a": {"needs": ["a"]}})


def test_a_failed_need_skips_its_dependents_and_independent_jobs_still_run(engine: Engine) -> None:
    events: list[Any] = []
    result = _jobs(
        engine,
        {
            "bad": {"stages": [_fail()]},
            "after-bad": {"needs": ["bad"], "stages": [_ok()]},
            "after-after": {"needs": ["after-bad"], "stages": [_ok()]},
            "independent": {"stages": [_ok()]},
        },
    ).execute(settings=engine.settings, on_event=events.append)
    jobs = result.context["jobs"]
    job_events = {e.job: (e.status, e.error) for e in events if e.kind == "job"}
    assert job_events["after-bad"] == (Status.SKIPPED, "needs bad FAILED")
    assert job_events["after-after"] == (Status.SKIPPED, "needs after-bad SKIPPED")
    assert result.status is Status.FAILED
    assert jobs["bad"]["status"] == "FAILED"
    assert jobs["after-bad"]["status"] == "SKIPPED"
    assert jobs["after-bad"]["skipped"] == "needs bad FAILED"
    assert jobs["after-after"]["status"] == "SKIPPED"
    assert jobs["independent"]["status"] == "SUCCESS"
    assert [(e.job, e.stage) for e in result.errors] == [("bad", "fail")]


def test_independent_jobs_run_at_the_same_time_up_to_the_setting(
    write_conf: Callable[[str, str], Path], make_settings: Callable[..., Settings]
) -> None:
    from hooks_pkg import tasks
    from hooks_pkg.engine import Engine

    engine = Engine(
        write_conf,
        make_settings(
            WORKFLOW_CORE_REGISTRY="ddeutil.workflow,hooks_pkg", WORKFLOW_CORE_MAX_JOB_PARALLEL="2"
        ),
    )
    tasks.BARRIER[:] = [threading.Barrier(2, timeout=5)]
    meet = {"name": "meet", "uses": "tasks/rendezvous@v1", "with": {"name": "x"}}
    result = _jobs(engine, {"left": {"stages": [meet]}, "right": {"stages": [meet]}}).execute(
        settings=engine.settings
    )
    assert result.status is Status.SUCCESS  # both waited at the barrier together


def test_runs_on_accepts_local_only(engine: Engine) -> None:
    pipe = _jobs(engine, {"a": {"runs-on": "local"}, "b": {"runs-on": {"type": "local"}}})
    assert pipe.jobs["a"].runs_on == "local"
    with pytest.raises(ConfigError, match="only 'local' is supported") as info:
        _jobs(engine, {"a": {"runs-on": "k8s"}})
    assert info.value.key == "jobs.a.runs-on"


def test_a_job_whose_if_is_false_is_skipped_with_its_dependents(engine: Engine) -> None:
    result = _jobs(
        engine,
        {
            "maybe": {"if": "'${{ params.mode }}' == 'full'", "stages": [_ok()]},
            "then": {"needs": ["maybe"], "stages": [_ok()]},
            "always": {"stages": [_ok()]},
        },
        params={"mode": "str"},
    ).execute({"mode": "delta"}, settings=engine.settings)
    jobs = result.context["jobs"]
    assert result.status is Status.SUCCESS
    assert (jobs["maybe"]["status"], jobs["then"]["status"], jobs["always"]["status"]) == (
        "SKIPPED",
        "SKIPPED",
        "SUCCESS",
    )


def test_outputs_of_a_needed_job_are_readable(engine: Engine) -> None:
    result = _jobs(
        engine,
        {
            "first": {"stages": [{"name": "count", "run": "rows = 7"}]},
            "second": {
                "needs": ["first"],
                "stages": [
                    {
                        "name": "use",
                        "run": "double = rows * 2",
                        "vars": {"rows": "${{ jobs.first.stages.count.outputs.rows }}"},
                    }
                ],
            },
        },
    ).execute(settings=engine.settings)
    assert result.context["jobs"]["second"]["stages"]["use"]["outputs"] == {"double": 14}


def test_a_single_combination_keeps_matrix_and_stages_at_the_job(engine: Engine) -> None:
    result = _jobs(
        engine,
        {"one": {"strategy": {"matrix": {"x": [1]}}, "stages": [{"name": "s", "run": "y = 1"}]}},
    ).execute(settings=engine.settings)
    assert result.context["jobs"]["one"] == {
        "status": "SUCCESS",
        "matrix": {"x": 1},
        "stages": {"s": {"outputs": {"y": 1}}},
    }


def test_several_combinations_are_kept_under_strategies(engine: Engine) -> None:
    result = _jobs(
        engine,
        {
            "load": {
                "strategy": {
                    "max-parallel": 3,
                    "matrix": {
                        "table": ["customer", "sales"],
                        "system": ["csv"],
                        "partition": [1, 2, 3],
                    },
                    "exclude": [
                        {"table": "customer", "system": "csv", "partition": 1},
                        {"table": "sales", "partition": 3},
                    ],
                    "include": [{"table": "customer", "system": "csv", "partition": 4}],
                },
                "stages": [
                    {
                        "name": "load",
                        "run": "key = f'{table}-{partition}'",
                        "vars": {
                            "table": "${{ matrix.table }}",
                            "partition": "${{ matrix.partition }}",
                        },
                    }
                ],
            }
        },
    ).execute(settings=engine.settings)
    strategies = result.context["jobs"]["load"]["strategies"]
    assert len(strategies) == 5
    for cid, combo in strategies.items():
        assert cid == combination_id(combo["matrix"])
        matrix = combo["matrix"]
        assert combo["stages"]["load"]["outputs"] == {
            "key": f"{matrix['table']}-{matrix['partition']}"
        }
    assert result.context["jobs"]["load"]["status"] == "SUCCESS"


def test_a_failed_combination_fails_the_job_and_names_its_matrix(engine: Engine) -> None:
    result = _jobs(
        engine,
        {
            "m": {
                "strategy": {"matrix": {"n": [1, 0, 2]}, "max-parallel": 2},
                "stages": [{"name": "div", "run": "x = 1 / n", "vars": {"n": "${{ matrix.n }}"}}],
            }
        },
    ).execute(settings=engine.settings)
    statuses = {
        c["matrix"]["n"]: c["status"] for c in result.context["jobs"]["m"]["strategies"].values()
    }
    assert statuses == {1: "SUCCESS", 0: "FAILED", 2: "SUCCESS"}  # no fail-fast: all ran
    assert result.status is Status.FAILED
    assert result.errors[0].message.startswith("[n=0] ZeroDivisionError")


def test_fail_fast_sequential_cancels_the_remaining_combinations(engine: Engine) -> None:
    from hooks_pkg import tasks

    gated = {
        "name": "g",
        "uses": "tasks/gated@v1",
        "with": {"name": "${{ matrix.n }}", "fail": "${{ matrix.bad }}"},
    }
    tasks.GATE.set()
    result = _jobs(
        engine,
        {
            "m": {
                "strategy": {
                    "fail-fast": True,
                    "include": [{"n": i, "bad": i == 1} for i in range(4)],
                },
                "stages": [gated],
            }
        },
    ).execute(settings=engine.settings)
    statuses = [c["status"] for c in result.context["jobs"]["m"]["strategies"].values()]
    assert statuses == ["SUCCESS", "FAILED", "CANCELLED", "CANCELLED"]
    assert tasks.CALLS == [("gated", 0), ("gated", 1)]
    assert result.status is Status.FAILED


def test_fail_fast_parallel_cancels_combinations_not_yet_started(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Combination 0 fails at once; the others wait at a gate that opens only when the
    job has cancelled the last pending combination, so nothing here depends on timing."""
    from hooks_pkg import tasks

    class Recording(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            future = super().submit(fn, *args, **kwargs)
            future.add_done_callback(lambda f: f.cancelled() and tasks.GATE.set())  # type: ignore[func-returns-value]
            return future

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", Recording)
    gated = {
        "name": "g",
        "uses": "tasks/gated@v1",
        "with": {"name": "${{ matrix.n }}", "fail": "${{ matrix.bad }}"},
    }
    result = _jobs(
        engine,
        {
            "m": {
                "strategy": {
                    "fail-fast": True,
                    "max-parallel": 2,
                    "include": [{"n": i, "bad": i == 0} for i in range(8)],
                },
                "stages": [gated],
            }
        },
    ).execute(settings=engine.settings)
    by_n = {
        c["matrix"]["n"]: c["status"] for c in result.context["jobs"]["m"]["strategies"].values()
    }
    assert by_n[0] == "FAILED"
    assert by_n[1] == "SUCCESS"  # was running: finished
    assert all(by_n[n] == "CANCELLED" for n in range(3, 8))  # never started
    assert by_n[2] in {"SUCCESS", "CANCELLED"}  # may have been picked up before the cancel
    assert {("gated", n) for n in range(3, 8)}.isdisjoint(tasks.CALLS)
    assert result.status is Status.FAILED


@pytest.mark.parametrize(
    ("stage", "job_extra", "fragment", "key"),
    [
        (
            {"name": "s", "echo": "${{ matrix.nope }}"},
            {"strategy": {"matrix": {"a": [1]}}},
            "matrix key 'nope' is not in the job's matrix",
            "stages[0].echo",
        ),
        (
            {"name": "s", "echo": "${{ stages.later.outputs.x }}"},
            {},
            "no earlier stage of this job has id 'later'",
            "stages[0].echo",
        ),
        (
            {"name": "s", "run": "x = ${{ jobs.other.stages.a.outputs.x }}"},
            {},
            "job 'other' is not among this job's needs",
            "stages[0].run",
        ),
        (
            {"name": "s", "env": {"A": "${{ secrets.x }}"}, "bash": "true"},
            {},
            "unknown path root 'secrets'",
            "stages[0].env",
        ),
        (
            {"name": "s", "echo": "${{ params.day | shout }}"},
            {},
            "unknown filter 'shout'",
            "stages[0].echo",
        ),
        ({"name": "s", "echo": "${{ params.day | }}"}, {}, "bad filter", "stages[0].echo"),
    ],
)
def test_templates_are_checked_against_the_job_at_load(
    engine: Engine, stage: dict[str, Any], job_extra: dict[str, Any], fragment: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        _jobs(
            engine,
            {
                "main": {"stages": [stage], **job_extra},
                "other": {"stages": [{"name": "a", "run": "x = 1"}]},
            },
            params={"day": "str"},
        )
    assert info.value.key == f"jobs.main.{key}"


def test_conditions_are_checked_at_load_too(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="evaluated before its stages and matrix") as info:
        _jobs(engine, {"main": {"if": "${{ matrix.a }} == 1", "strategy": {"matrix": {"a": [1]}}}})
    assert info.value.key == "jobs.main.if"
    with pytest.raises(ConfigError, match="no earlier stage of this job has id 'x'") as info:
        _jobs(engine, {"main": {"stages": [{"name": "s", "if": "${{ stages.x.outputs.y }} == 1"}]}})
    assert info.value.key == "jobs.main.stages[0].if"


def test_a_missing_output_key_fails_the_stage_naming_path_and_stage(engine: Engine) -> None:
    result = _jobs(
        engine,
        {
            "main": {
                "stages": [
                    {"name": "first", "run": "rows = 1"},
                    {"name": "second", "echo": "${{ stages.first.outputs.nope }}"},
                ]
            }
        },
    ).execute(settings=engine.settings)
    assert result.status is Status.FAILED
    error = result.errors[0]
    assert (error.job, error.stage, error.kind) == ("main", "second", "TemplateError")
    assert "unknown path 'stages.first.outputs.nope'" in error.message
    assert error.message.startswith("stage 'second': ")


def test_a_diamond_runs_on_threads_and_joins_after_both_branches(engine: Engine) -> None:
    def use(name: str, expr: str) -> dict[str, Any]:
        return {"name": name, "run": "v = x", "vars": {"x": expr}}

    pipe = _jobs(
        engine,
        {
            "a": {"stages": [{"name": "s", "run": "v = 1"}]},
            "b": {"needs": ["a"], "stages": [use("s", "${{ jobs.a.stages.s.outputs.v }}")]},
            "c": {"needs": ["a"], "stages": [use("s", "${{ jobs.a.stages.s.outputs.v }}")]},
            "d": {
                "needs": ["b", "c"],
                "stages": [
                    {
                        "name": "s",
                        "run": "v = x + y",
                        "vars": {
                            "x": "${{ jobs.b.stages.s.outputs.v }}",
                            "y": "${{ jobs.c.stages.s.outputs.v }}",
                        },
                    }
                ],
            },
            "lone": {"stages": [_fail()]},
        },
    )
    assert pipe.plan is not None
    assert pipe.plan.width == 2  # {a, lone}, then {b, c}, then {d}: two threads
    result = pipe.execute(settings=engine.settings)
    jobs = result.context["jobs"]
    assert jobs["d"]["stages"]["s"]["outputs"] == {"v": 2}
    assert jobs["lone"]["status"] == "FAILED"
    assert result.status is Status.FAILED
    assert list(jobs) == ["a", "lone", "b", "c", "d"]  # reported in dependency order
