"""Pause / unpause: a paused pipeline's releases are recorded SKIPPED (paused), at the next tick.

Scheduler behaviour with explicit instants (no sleeping), on every store the
scheduler runs on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ddeutil.workflow.result import Status
from ddeutil.workflow.scheduling.tick_report import PAUSED_REASON
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import RunStore
from test_scheduler import MakeScheduler, at, make_scheduler, pipeline_yaml, runs_for

__all__ = ["make_scheduler"]  # a fixture, imported for the tests below


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'runs.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    store = open_store(url)
    yield store
    store.close()


def test_a_pause_is_honoured_at_the_next_tick_and_its_releases_are_recorded_skipped(
    any_store: RunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("minutely") + pipeline_yaml("other"))
    scheduler, executor = make_scheduler(any_store)
    scheduler.tick(at(10, 0, 30))
    assert len(scheduler.tick(at(10, 1)).dispatched) == 2
    assert any_store.pause("minutely", now=at(10, 1, 30))
    report = scheduler.tick(at(10, 2))
    assert len(report.dispatched) == 1  # `other` goes on
    (skipped_id,) = report.skipped
    skipped = any_store.get_run(skipped_id)
    assert skipped is not None
    assert (skipped.pipeline, skipped.status, skipped.error) == (
        "minutely",
        Status.SKIPPED,
        PAUSED_REASON,
    )
    assert any_store.unpause("minutely") == at(10, 1, 30)
    report = scheduler.tick(at(10, 3))
    assert len(report.dispatched) == 2
    assert report.skipped == ()
    statuses = sorted(
        (r.release.at, r.status) for r in runs_for(any_store, "minutely") if r.release
    )
    assert statuses == [
        (at(10, 1), Status.PENDING),
        (at(10, 2), Status.SKIPPED),
        (at(10, 3), Status.PENDING),
    ]
    assert len(executor.submitted) == 5  # 2 + 1 (other) + 2


def test_a_release_due_before_the_pause_still_runs(
    any_store: RunStore, make_scheduler: MakeScheduler, write_conf: Callable[..., Path]
) -> None:
    write_conf("p.yml", pipeline_yaml("minutely"))
    scheduler, _ = make_scheduler(any_store)
    scheduler.tick(at(10, 0, 30))
    any_store.pause("minutely", now=at(10, 1, 30))
    report = scheduler.tick(at(10, 2))  # a late tick: 10:01 was due before the pause
    assert len(report.dispatched) == 1
    assert len(report.skipped) == 1
