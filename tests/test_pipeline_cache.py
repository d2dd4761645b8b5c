"""PipelineCache: built pipelines reused per template version, loader and settings."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from ddeutil.workflow.cancellation import CancelToken
from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.dispatch.execute import execute_request
from ddeutil.workflow.dispatch.records import RunRequest
from ddeutil.workflow.dispatch.threads import ThreadExecutor
from ddeutil.workflow.engine.pipeline import Pipeline
from ddeutil.workflow.engine.pipeline_cache import PipelineCache
from ddeutil.workflow.loader import Loader, template_version
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.result import Result, Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import MemoryRunStore
from ddeutil.workflow.store.base import RunFilter, TriggerKind

BARRIER = "ddw_test_pipeline_cache_barrier"
THREADS = 8

PIPELINES = f"""
    shared:
      type: Pipeline
      params:
        n: int
        seen:
          type: list
          default: []
      jobs:
        first:
          stages:
            - name: meet the others
              id: meet
              run: |
                import {BARRIER}
                {BARRIER}.barrier.wait(10)
                doubled = ${{{{ params.n }}}} * 2
                seen = ${{{{ params.seen }}}}
                seen.append(${{{{ params.n }}}})
        second:
          needs: [first]
          stages:
            - name: use the first job
              id: use
              run: got = ${{{{ jobs.first.stages.meet.outputs.doubled }}}} + 1

    other:
      type: Pipeline
      jobs:
        only:
          stages:
            - name: nothing
"""


@pytest.fixture
def barrier() -> Iterator[threading.Barrier]:
    module = types.ModuleType(BARRIER)
    module.barrier = threading.Barrier(THREADS)  # type: ignore[attr-defined]
    sys.modules[BARRIER] = module
    yield module.barrier
    module.barrier.abort()
    sys.modules.pop(BARRIER, None)


@pytest.fixture
def loader(write_conf: Callable[[str, str], Path], settings: Settings) -> Loader:
    write_conf("pipes.yml", PIPELINES)
    return Loader.from_settings(settings)


def test_one_cached_pipeline_runs_on_many_threads_with_independent_results(
    loader: Loader, settings: Settings, barrier: threading.Barrier
) -> None:
    cache = PipelineCache()
    template = loader.get("shared")
    pipeline = cache.get(template, loader=loader, settings=settings)

    def run(n: int) -> Result:
        same = cache.get(template, loader=loader, settings=settings)
        assert same is pipeline
        return same.execute({"n": n}, run_id=f"run-{n}", settings=settings)

    # The barrier holds every run inside its first stage until all have started:
    # the runs overlap for certain.
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(run, range(THREADS)))

    assert [r.status for r in results] == [Status.SUCCESS] * THREADS
    assert [r.run_id for r in results] == [f"run-{n}" for n in range(THREADS)]
    for n, result in enumerate(results):
        assert result.context["params"]["n"] == n
        first = result.context["jobs"]["first"]["stages"]["meet"]["outputs"]
        assert first["doubled"] == 2 * n
        # the list default is each run's own copy: no run sees another's append
        assert first["seen"] == [n]
        assert result.context["jobs"]["second"]["stages"]["use"]["outputs"]["got"] == 2 * n + 1
    assert len({id(r.context) for r in results}) == THREADS
    assert cache.hits == THREADS
    assert cache.misses == 1


def test_a_template_is_built_once_per_version(loader: Loader, settings: Settings) -> None:
    cache = PipelineCache()
    template = loader.get("other")

    first = cache.get(template, loader=loader, settings=settings)
    again = cache.get(
        template, loader=loader, settings=settings, version=template_version(template)
    )
    edited = replace(template, data={**template.data, "desc": "edited"})
    rebuilt = cache.get(edited, loader=loader, settings=settings)

    assert again is first
    assert rebuilt is not first
    assert rebuilt.desc == "edited"
    assert cache.get(edited, loader=loader, settings=settings) is rebuilt


def test_a_new_loader_or_new_settings_rebuild_the_pipeline(
    loader: Loader, settings: Settings, make_settings: Callable[..., Settings]
) -> None:
    cache = PipelineCache()
    template = loader.get("other")
    first = cache.get(template, loader=loader, settings=settings)

    # A new loader means the conf folder changed: trigger targets and schedules
    # must be resolved against it, so the pipeline is not reused.
    fresh_loader = Loader.from_settings(settings)
    assert cache.get(template, loader=fresh_loader, settings=settings) is not first
    other_settings = make_settings()
    assert cache.get(template, loader=fresh_loader, settings=other_settings) is not first


def test_the_least_recently_used_pipeline_leaves_first(loader: Loader, settings: Settings) -> None:
    cache = PipelineCache(size=2)
    one = loader.get("other")
    two = replace(one, data={**one.data, "desc": "two"})
    three = replace(one, data={**one.data, "desc": "three"})

    kept = cache.get(one, loader=loader, settings=settings)
    cache.get(two, loader=loader, settings=settings)
    assert cache.get(one, loader=loader, settings=settings) is kept  # one is now the newest
    cache.get(three, loader=loader, settings=settings)  # evicts two

    assert len(cache) == 2
    assert cache.get(one, loader=loader, settings=settings) is kept
    misses = cache.misses
    cache.get(two, loader=loader, settings=settings)
    assert cache.misses == misses + 1


def test_size_zero_keeps_nothing(loader: Loader, settings: Settings) -> None:
    cache = PipelineCache(size=0)
    template = loader.get("other")
    first = cache.get(template, loader=loader, settings=settings)
    assert cache.get(template, loader=loader, settings=settings) is not first
    assert len(cache) == 0
    with pytest.raises(ValueError, match="size"):
        PipelineCache(size=-1)


def test_a_template_that_does_not_build_raises_every_time(
    loader: Loader, settings: Settings
) -> None:
    cache = PipelineCache()
    broken = replace(loader.get("other"), data={"type": "Pipeline", "jobs": {"j": {"nope": 1}}})
    for _ in range(2):
        with pytest.raises(Exception, match="nope"):
            cache.get(broken, loader=loader, settings=settings)
    assert len(cache) == 0


def test_template_version_follows_content(loader: Loader) -> None:
    template = loader.get("shared")
    assert template_version(template) == template_version(replace(template))
    assert template_version(template) != template_version(
        replace(template, data={**template.data, "desc": "x"})
    )
    assert template_version(template) != template_version(replace(template, name="renamed"))


def test_execute_request_takes_the_pipeline_from_the_cache(
    loader: Loader, settings: Settings, clock: FakeClock
) -> None:
    store = MemoryRunStore()
    cache = PipelineCache()
    template = loader.get("other")
    for run_id in ("r1", "r2"):
        store.create_run(
            run_id=run_id, pipeline="other", trigger=TriggerKind.MANUAL, params={}, now=clock.now()
        )
        result = execute_request(
            RunRequest(run_id=run_id, pipeline="other"),
            template,
            store=store,
            settings=settings,
            masker=Masker(),
            clock=clock,
            cancel=CancelToken(),
            loader=loader,
            pipelines=cache,
        )
        assert result is not None
        assert result.status is Status.SUCCESS
    assert (cache.misses, cache.hits) == (1, 1)
    store.close()


def test_thread_executor_builds_a_pipeline_once_for_many_runs(
    loader: Loader, settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    original = Pipeline.from_template.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Pipeline], /, template: object, **kwargs: object) -> Pipeline:
        built.append(getattr(template, "name", "?"))
        return original(cls, template, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(Pipeline, "from_template", classmethod(counting))
    store = MemoryRunStore()
    template = loader.get("other")
    version = template_version(template)
    executor = ThreadExecutor(
        store=store,
        settings=settings,
        templates=lambda name, v: template if (name, v) == ("other", version) else None,
        clock=clock,
        loader=loader,
        size=2,
    )
    run_ids = [f"r{i}" for i in range(6)]
    for run_id in run_ids:
        store.create_run(
            run_id=run_id, pipeline="other", trigger=TriggerKind.MANUAL, params={}, now=clock.now()
        )
        executor.submit(RunRequest(run_id=run_id, pipeline="other", version=version))
    finished: set[str] = set()
    while len(finished) < len(run_ids):
        assert executor.wait_event(10)
        finished.update(e.run_id for e in executor.drain_events() if e.kind == "finished")
    executor.shutdown(5)

    assert built == ["other"]
    assert store.count_runs(RunFilter(status=Status.SUCCESS)) == len(run_ids)
    store.close()
