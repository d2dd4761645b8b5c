"""Rerun from failure, engine and dispatch side: what a rerun reuses, and that it does not run it.

Every stage here appends its label to a log file when it executes, and fails
when its label is listed in a fail file; the log is what the tests count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.records import RunRequest
from ddeutil.workflow.dispatch.threads import ThreadExecutor
from ddeutil.workflow.engine.context import RunEvent
from ddeutil.workflow.engine.pipeline import Pipeline
from ddeutil.workflow.engine.plan import ExecutionPlan
from ddeutil.workflow.engine.rerun import Resume, plan_rerun, rerun_problems
from ddeutil.workflow.engine.strategy import combination_id
from ddeutil.workflow.errors import PipelineError, RerunError
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.result import Result, Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import MemoryRunStore
from ddeutil.workflow.store.base import TriggerKind

CODE = """\
import pathlib
with pathlib.Path(log).open("a") as out:
    out.write(label + "\\n")
if label in pathlib.Path(fail).read_text().split():
    raise RuntimeError(label + " fails")
"""


class Files:
    """The execution log and the fail list of one test."""

    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "executed.log"
        self.fail = tmp_path / "fail.txt"
        self.fail.write_text("")

    def stage(self, label: str, outputs: str = "", **variables: Any) -> dict[str, Any]:
        """A python stage (id ``s``) that logs ``label`` and fails when it is listed."""
        return {
            "name": "s",
            "id": "s",
            "run": CODE + outputs,
            "vars": {"log": str(self.log), "fail": str(self.fail), "label": label, **variables},
        }

    def failing(self, *labels: str) -> None:
        self.fail.write_text("\n".join(labels))

    def executed(self) -> list[str]:
        """The labels logged since the last call (and forget them)."""
        lines = self.log.read_text().split() if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return lines


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def _jobs(files: Files) -> dict[str, Any]:
    """extract -> load (matrix part 1..3) -> report; audit on its own."""
    return {
        "extract": {"stages": [files.stage("extract", "rows = 5")]},
        "load": {
            "needs": ["extract"],
            "strategy": {"matrix": {"part": [1, 2, 3]}},
            "stages": [
                files.stage(
                    "load-${{ matrix.part }}",
                    "loaded = part * 10 + rows",
                    part="${{ matrix.part }}",
                    rows="${{ jobs.extract.stages.s.outputs.rows }}",
                )
            ],
        },
        "report": {
            "needs": ["load"],
            "stages": [
                files.stage(
                    "report",
                    "total = sum(s['stages']['s']['outputs']['loaded'] for s in parts.values())",
                    parts="${{ jobs.load.strategies }}",
                )
            ],
        },
        "audit": {"stages": [files.stage("audit", "ok = True")]},
    }


def _load(engine: Any, jobs: dict[str, Any]) -> Pipeline:
    return engine.load_data({"p": {"type": "Pipeline", "jobs": jobs}})  # type: ignore[no-any-return]


def _plan(pipe: Pipeline) -> ExecutionPlan:
    assert pipe.plan is not None
    return pipe.plan


def _stored(result: Result) -> dict[str, Any]:
    """The context as the run store gives it back: JSON values."""
    return json.loads(json.dumps(result.context, default=str))  # type: ignore[no-any-return]


def _cid(part: int) -> str:
    return combination_id({"part": part})


@pytest.fixture(params=[1, 4], ids=["one-job-at-a-time", "jobs-in-parallel"])
def engine(
    request: pytest.FixtureRequest,
    write_conf: Callable[[str, str], Path],
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from hooks_pkg.engine import Engine

    return Engine(write_conf, make_settings(WORKFLOW_CORE_MAX_JOB_PARALLEL=str(request.param)))


def test_a_run_records_its_job_graph_under_needs(engine: Any, files: Files) -> None:
    result = _load(engine, _jobs(files)).execute(settings=engine.settings)
    assert result.status is Status.SUCCESS
    assert result.context["needs"] == {
        "extract": [],
        "audit": [],
        "load": ["extract"],
        "report": ["load"],
    }


def test_a_rerun_runs_only_the_failed_combination_and_what_follows(
    engine: Any, files: Files
) -> None:
    pipe = _load(engine, _jobs(files))
    files.failing("load-2")
    first = pipe.execute(settings=engine.settings)
    assert first.status is Status.FAILED
    assert sorted(files.executed()) == ["audit", "extract", "load-1", "load-2", "load-3"]

    resume = plan_rerun(_plan(pipe), _stored(first), run_id=first.run_id)
    assert set(resume.jobs) == {"extract", "audit"}
    assert set(resume.combinations) == {"load"}
    assert set(resume.combinations["load"]) == {_cid(1), _cid(3)}

    files.failing()
    events: list[RunEvent] = []
    second = pipe.execute(settings=engine.settings, resume=resume, on_event=events.append)

    assert second.status is Status.SUCCESS
    assert files.executed() == ["load-2", "report"]  # nothing else executed
    load = second.context["jobs"]["load"]
    assert load["status"] == "SUCCESS"
    assert {cid: s["status"] for cid, s in load["strategies"].items()} == dict.fromkeys(
        [_cid(1), _cid(2), _cid(3)], "SUCCESS"
    )
    # the rerun combination read the reused extract output; report read every combination
    assert load["strategies"][_cid(2)]["stages"]["s"]["outputs"]["loaded"] == 25
    assert second.context["jobs"]["report"]["stages"]["s"]["outputs"]["total"] == 75
    assert second.context["jobs"]["extract"] == _stored(first)["jobs"]["extract"]
    reused = {e.job: e.reused_from for e in events if e.kind == "job" and e.reused_from}
    assert reused == {"extract": first.run_id, "audit": first.run_id}
    staged = {e.job for e in events if e.kind == "stage"}
    assert staged == {"load", "report"}


def test_downstream_of_a_failed_job_reruns_and_reads_reused_outputs(
    engine: Any, files: Files
) -> None:
    jobs = _jobs(files)
    pipe = _load(engine, jobs)
    files.failing("extract")
    first = pipe.execute(settings=engine.settings)
    assert first.context["jobs"]["load"]["status"] == "SKIPPED"
    assert sorted(files.executed()) == ["audit", "extract"]

    files.failing()
    resume = plan_rerun(_plan(pipe), _stored(first), run_id=first.run_id)
    assert set(resume.jobs) == {"audit"}
    assert dict(resume.combinations) == {}
    second = pipe.execute(settings=engine.settings, resume=resume)
    assert second.status is Status.SUCCESS
    assert files.executed() == ["extract", "load-1", "load-2", "load-3", "report"]
    assert second.context["jobs"]["audit"] == _stored(first)["jobs"]["audit"]


def test_a_matrix_job_rerun_because_its_upstream_reran_runs_every_combination(
    engine: Any, files: Files
) -> None:
    pipe = _load(engine, _jobs(files))
    files.failing("load-2", "audit")
    first = pipe.execute(settings=engine.settings)
    files.executed()
    files.failing()
    # load failed itself but extract is rerun from: load's inputs change, so all of it runs
    resume = plan_rerun(_plan(pipe), _stored(first), run_id=first.run_id, from_job="extract")
    assert dict(resume.jobs) == {}
    assert dict(resume.combinations) == {}
    second = pipe.execute(settings=engine.settings, resume=resume)
    assert second.status is Status.SUCCESS
    assert sorted(files.executed()) == [
        "audit",
        "extract",
        "load-1",
        "load-2",
        "load-3",
        "report",
    ]


def test_from_job_reruns_that_job_whole_its_downstream_and_what_did_not_succeed(
    engine: Any, files: Files
) -> None:
    pipe = _load(engine, _jobs(files))
    files.failing("audit")
    first = pipe.execute(settings=engine.settings)
    files.executed()
    files.failing()

    resume = plan_rerun(_plan(pipe), _stored(first), run_id=first.run_id, from_job="load")
    assert set(resume.jobs) == {"extract"}
    assert dict(resume.combinations) == {}  # the job rerun from runs every combination
    second = pipe.execute(settings=engine.settings, resume=resume)
    assert second.status is Status.SUCCESS
    assert sorted(files.executed()) == ["audit", "load-1", "load-2", "load-3", "report"]


def test_a_run_that_succeeded_has_nothing_to_rerun_without_from_job(
    engine: Any, files: Files
) -> None:
    pipe = _load(engine, _jobs(files))
    first = pipe.execute(settings=engine.settings)
    with pytest.raises(RerunError, match=f"run {first.run_id} succeeded: nothing to rerun") as info:
        plan_rerun(_plan(pipe), _stored(first), run_id=first.run_id)
    assert info.value.unsafe is False
    with pytest.raises(RerunError) as info:
        plan_rerun(_plan(pipe), _stored(first), run_id=first.run_id, from_job="nope", force=True)
    assert isinstance(info.value, PipelineError)
    assert "has no job 'nope' to rerun from (jobs: extract, audit, load, report)" in str(info.value)


def test_removed_jobs_and_changed_needs_are_refused_unless_forced(
    engine: Any, files: Files
) -> None:
    jobs = _jobs(files)
    files.failing("load-2")
    first = _load(engine, jobs).execute(settings=engine.settings)
    prior = _stored(first)
    files.executed()

    del jobs["audit"]
    jobs["report"]["needs"] = ["load", "extract"]
    changed = _plan(_load(engine, jobs))
    assert rerun_problems(changed, prior) == [
        "job 'audit' was removed from the template",
        "job 'report' needs changed: ['load'] -> ['load', 'extract']",
    ]
    with pytest.raises(RerunError) as info:
        plan_rerun(changed, prior, run_id=first.run_id)
    assert info.value.unsafe is True
    assert info.value.problems == tuple(rerun_problems(changed, prior))
    assert "job 'audit' was removed from the template; job 'report' needs changed" in str(
        info.value
    )

    files.failing()
    resume = plan_rerun(changed, prior, run_id=first.run_id, force=True)
    assert set(resume.jobs) == {"extract"}
    result = _load(engine, jobs).execute(settings=engine.settings, resume=resume)
    assert result.status is Status.SUCCESS
    assert files.executed() == ["load-2", "report"]


def test_an_order_change_of_needs_is_not_a_change(engine: Any, files: Files) -> None:
    jobs = _jobs(files)
    jobs["report"]["needs"] = ["load", "extract"]
    first = _load(engine, jobs).execute(settings=engine.settings)
    jobs["report"]["needs"] = ["extract", "load"]
    assert rerun_problems(_plan(_load(engine, jobs)), _stored(first)) == []


def test_a_run_without_recorded_needs_is_refused_unless_forced(engine: Any, files: Files) -> None:
    pipe = _load(engine, _jobs(files))
    files.failing("report")
    first = pipe.execute(settings=engine.settings)
    old = _stored(first)
    del old["needs"]  # as a run recorded before needs were
    with pytest.raises(RerunError, match="predates recorded job needs"):
        plan_rerun(_plan(pipe), old, run_id=first.run_id)
    resume = plan_rerun(_plan(pipe), old, run_id=first.run_id, force=True)
    assert set(resume.jobs) == {"extract", "load", "audit"}
    # a pipeline without jobs records no graph and has nothing to check
    empty = _plan(_load(engine, {}))
    assert rerun_problems(empty, {"params": {}, "jobs": {}}) == []


def test_a_resume_and_a_run_request_carrying_it_survive_json(engine: Any, files: Files) -> None:
    pipe = _load(engine, _jobs(files))
    files.failing("load-3")
    first = pipe.execute(settings=engine.settings)
    resume = plan_rerun(_plan(pipe), _stored(first), run_id=first.run_id)
    assert Resume.from_dict(json.loads(json.dumps(resume.to_dict()))) == resume

    request = RunRequest(run_id="r2", pipeline="p", resume=resume.to_dict())
    back = RunRequest.from_json(request.to_json())
    assert back == request
    assert back.resume is not None
    assert Resume.from_dict(back.resume) == resume
    assert RunRequest.from_json(RunRequest(run_id="r3", pipeline="p").to_json()).resume is None
    with pytest.raises(ValueError, match="earlier run's id"):
        Resume.from_dict({"jobs": {}})
    with pytest.raises(ValueError, match="'jobs' must be a mapping of id to context"):
        Resume.from_dict({"run_id": "x", "jobs": {"a": 1}})


def test_a_thread_executor_runs_a_request_with_its_resume(
    files: Files,
    settings: Settings,
    write_conf: Callable[[str, str], Path],
    clock: FakeClock,
) -> None:
    write_conf("p.yml", json.dumps({"p": {"type": "Pipeline", "jobs": _jobs(files)}}))
    loader = Loader.from_settings(settings)
    store = MemoryRunStore()
    executor = ThreadExecutor(
        store=store,
        settings=settings,
        templates=lambda name, version: loader.get(name),
        clock=clock,
        loader=loader,
    )
    executor.start()
    try:

        def run(run_id: str, resume: Resume | None) -> dict[str, Any]:
            store.create_run(
                run_id=run_id, pipeline="p", trigger=TriggerKind.MANUAL, params={}, now=clock.now()
            )
            executor.submit(
                RunRequest(
                    run_id=run_id,
                    pipeline="p",
                    resume=None if resume is None else resume.to_dict(),
                )
            )
            deadline = time.monotonic() + 20
            while (record := store.get_run(run_id)) is None or not record.status.is_terminal:
                assert time.monotonic() < deadline, "the run did not end"
                executor.wait_event(0.5)
                executor.drain_events()
            assert record.context is not None
            return dict(record.context)

        files.failing("load-1")
        prior = run("r1", None)
        files.executed()
        files.failing()
        plan = _plan(Pipeline.from_loader("p", settings=settings, loader=loader))
        context = run("r2", plan_rerun(plan, prior, run_id="r1"))
        assert files.executed() == ["load-1", "report"]
        assert context["jobs"]["load"]["status"] == "SUCCESS"
        assert context["jobs"]["extract"] == prior["jobs"]["extract"]
    finally:
        executor.shutdown(0.0)
        store.close()
