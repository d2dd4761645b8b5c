"""A run's end is never lost when the store refuses it: retry, journal, replay (issue 9)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.dispatch.records import RunRequest
from ddeutil.workflow.dispatch.threads import ThreadExecutor
from ddeutil.workflow.errors import StoreError
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.result import ErrorRecord, Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import SqliteRunStore
from ddeutil.workflow.store.base import Claim, ReleaseKey, RunStore, TriggerKind
from ddeutil.workflow.store.ends import EndJournal, EndRecorder, RunEnd, store_key

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)

PIPELINES = """
    quick:
      type: Pipeline
      jobs:
        main:
          stages:
            - name: answer
              id: answer
              run: value = 42
"""


class FullDisk:
    """A run store whose ``finish`` fails as SQLite does on a full disk, while ``full``."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.full = True
        self.refused = 0

    def finish(self, run_id: str, **kwargs: Any) -> bool:
        if self.full:
            self.refused += 1
            raise StoreError("SQLite run store runs.db: database or disk is full")
        return self.store.finish(run_id, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqliteRunStore]:
    store = SqliteRunStore(tmp_path / "store" / "runs.db")
    yield store
    store.close()


def _running(store: RunStore, run_id: str) -> None:
    store.create_run(run_id=run_id, pipeline="quick", trigger=TriggerKind.API, params={}, now=T0)
    assert store.mark_running(run_id, now=T0)


def test_a_run_whose_end_the_full_disk_refused_is_recorded_once_space_returns(
    settings: Settings, write_conf: Callable[[str, str], Path], sqlite: SqliteRunStore, root: Path
) -> None:
    write_conf("pipes.yml", PIPELINES)
    full = FullDisk(sqlite)
    # the journal is on the full disk too: its folder cannot be created
    blocker = root / "full"
    blocker.write_text("")
    journal = EndJournal(blocker / "run-ends.jsonl", store_key("sqlite:///runs.db"))
    ends = EndRecorder(full, journal=journal, retry_delays=(0.0, 0.0), retry_seconds=3600)
    executor = ThreadExecutor(
        store=full,
        settings=settings,
        templates=lambda name, version: Loader.from_settings(settings).get(name),
        loader=Loader.from_settings(settings),
        size=1,
        log_files=False,
        ends=ends,
    )
    executor.start()
    sqlite.create_run(run_id="r1", pipeline="quick", trigger=TriggerKind.API, params={}, now=T0)
    executor.submit(RunRequest(run_id="r1", pipeline="quick"))
    deadline = time.monotonic() + 20
    while not any(e.kind == "finished" for e in executor.drain_events()):
        assert time.monotonic() < deadline, "the run did not finish"
        executor.wait_event(1.0)
    assert full.refused == 3  # the first try and two retries
    assert sqlite.get_run("r1").status is Status.RUNNING  # type: ignore[union-attr]
    assert ends.waiting == 1  # kept in memory: neither the store nor the journal took it

    blocker.unlink()  # space returns
    full.full = False
    executor.shutdown(5.0)  # a clean stop records what was kept

    run = sqlite.get_run("r1")
    assert run is not None
    assert run.status is Status.SUCCESS
    assert run.context["jobs"]["main"]["stages"]["answer"]["outputs"] == {"value": 42}  # type: ignore[index]


def test_an_end_the_store_refused_is_journaled_and_replayed_at_the_next_start(
    settings: Settings, sqlite: SqliteRunStore, tmp_path: Path
) -> None:
    url = f"sqlite:///{sqlite.path}"
    journal = EndJournal(tmp_path / "j" / "run-ends.jsonl", store_key(url))
    _running(sqlite, "ok")
    _running(sqlite, "bad")
    full = FullDisk(sqlite)
    ends = EndRecorder(full, journal=journal, retry_delays=(), retry_seconds=3600)
    assert ends.record(RunEnd("ok", Status.SUCCESS, T0, {"x": 1})) is None
    error = ErrorRecord(message="boom", kind="ValueError", job="j", stage="s")
    assert ends.record(RunEnd("bad", Status.FAILED, T0, None, (error,), "j/s: boom")) is None
    ends.close()  # the store still refuses: the ends stay in the journal
    assert sqlite.get_run("ok").status is Status.RUNNING  # type: ignore[union-attr]
    other = EndJournal(journal.path, store_key("sqlite:///elsewhere.db"))
    other.append(RunEnd("foreign", Status.SUCCESS, T0))  # another store's line is kept

    report = journal.replay(sqlite)  # what the daemon and the API do first at start

    assert report.recorded == ("ok", "bad")
    assert (sqlite.get_run("ok").status, sqlite.get_run("ok").context) == (  # type: ignore[union-attr]
        Status.SUCCESS,
        {"x": 1},
    )
    bad = sqlite.get_run("bad")
    assert bad is not None
    assert (bad.status, bad.errors, bad.error) == (Status.FAILED, (error,), "j/s: boom")
    assert sqlite.fail_interrupted(now=T0, reason="interrupted") == []
    assert journal.path.read_text().count("\n") == 1  # only the foreign line is left
    assert journal.replay(sqlite).recorded == ()


def test_a_journaled_end_keeps_its_owner_and_never_closes_a_run_taken_over(
    sqlite: SqliteRunStore, tmp_path: Path
) -> None:
    url = f"sqlite:///{sqlite.path}"
    journal = EndJournal(tmp_path / "run-ends.jsonl", store_key(url))
    for minute, run_id, owner in ((1, "kept", "c"), (2, "taken", "a")):
        at = T0.replace(minute=minute)
        release = ReleaseKey("p", "* * * * *", at)
        assert sqlite.claim_many([Claim(release, run_id, {}, at)], now=at, owner=owner)[0]
    assert sqlite.mark_running("kept", now=T0, owner="c")
    journal.append(RunEnd("kept", Status.SUCCESS, T0, owner="c"))
    # "taken" failed its start handshake on daemon a while the store was down; the
    # end went to the journal. Daemon b took a over and is running it now.
    journal.append(RunEnd("taken", Status.FAILED, T0, error="start handshake failed", owner="a"))
    assert sqlite.join("a", now=T0, host="h", pid=1)
    assert sqlite.join("b", now=T0, host="h", pid=2)
    taken = sqlite.take_over("b", now=T0 + timedelta(minutes=5), lease=timedelta(0), reason=str)
    assert [r.run_id for r in taken.adopted] == ["taken"]
    assert sqlite.mark_running("taken", now=T0, owner="b")

    report = journal.replay(sqlite)

    assert report.recorded == ("kept",)
    assert report.already_closed == ("taken",)
    record = sqlite.get_run("taken")
    assert record is not None
    assert (record.status, record.owner) == (Status.RUNNING, "b")


def test_a_line_torn_by_a_full_disk_costs_no_other_end(
    sqlite: SqliteRunStore, tmp_path: Path
) -> None:
    journal = EndJournal(tmp_path / "run-ends.jsonl", store_key("sqlite:///runs.db"))
    _running(sqlite, "torn")
    _running(sqlite, "whole")
    journal.append(RunEnd("torn", Status.SUCCESS, T0))
    text = journal.path.read_text()
    journal.path.write_text(text[: len(text) // 2])  # the disk filled up mid-line
    journal.append(RunEnd("whole", Status.SUCCESS, T0))

    assert journal.replay(sqlite).recorded == ("whole",)
    assert sqlite.get_run("whole").status is Status.SUCCESS  # type: ignore[union-attr]
    assert not journal.path.exists()
