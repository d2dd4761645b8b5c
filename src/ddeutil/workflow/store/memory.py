"""The in-memory run store: the same contract as SQLite, kept in dicts.

For tests and for embedding the engine where nothing must outlive the process.
One mutex guards every operation, so each method is atomic with respect to other
threads. Values are JSON-encoded on the way in exactly as the SQL stores do, so a
record read back looks the same whichever store produced it. Nothing is shared
between processes: worker processes need a URL store (SQLite, PostgreSQL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..errors import StoreError, StoreLockedError
from ..result import ErrorRecord, Status
from ._codec import dump_errors, load_errors, loads_json, text_in, utc
from .base import (
    Claim,
    DuplicateRun,
    Ending,
    NewRun,
    ReleaseKey,
    ReleaseRun,
    RunFilter,
    RunRecord,
    RunState,
    RunStoreBase,
    TriggerKind,
    owner_kind,
)
from .fleet import (
    ClaimState,
    Decide,
    OwnerKind,
    OwnerLost,
    OwnerRecord,
    OwnerState,
    PipelineLoad,
    Quiet,
    RoundClaim,
    RoundView,
    Takeover,
)
from .outbox import Notice, NoticeState, OutboxItem

__all__ = ["LocalLocks", "MemoryRunStore"]

_NON_TERMINAL = (Status.PENDING, Status.RUNNING)


class LocalLocks:
    """A process-local registry of scheduler locks keyed by store identity.

    Used by stores that live in one process only (``memory://``, SQLite
    ``:memory:``): the lock is exclusive among the store objects of this process,
    which is all that can share such a store.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._holders: dict[str, str] = {}

    @contextmanager
    def hold(self, identity: str, owner: str, *, what: str) -> Iterator[None]:
        """Hold the lock named ``identity`` for ``owner`` during the block."""
        with self._mutex:
            holder = self._holders.get(identity)
            if holder is not None:
                raise StoreLockedError(
                    f"the scheduler lock of {what} is held by {holder!r} in this process"
                )
            self._holders[identity] = owner
        try:
            yield
        finally:
            with self._mutex:
                self._holders.pop(identity, None)


LOCAL_LOCKS = LocalLocks()


@dataclass(frozen=True)
class _Row:
    run_id: str
    pipeline: str
    trigger: TriggerKind
    status: Status
    release: ReleaseKey | None
    logical_date: datetime | None
    params: str
    context: str | None
    errors: str
    created: datetime
    started: datetime | None
    ended: datetime | None
    error: str | None
    idempotency_key: str | None
    owner: str | None = None
    admitted: datetime | None = None
    rerun_of: str | None = None
    cancel_requested: datetime | None = None

    @classmethod
    def new(cls, run: NewRun) -> _Row:
        return cls(
            run_id=run.run_id,
            pipeline=run.pipeline,
            trigger=run.trigger,
            status=Status.PENDING,
            release=run.release,
            logical_date=run.logical_date,
            params=run.params,
            context=None,
            errors="[]",
            created=run.created,
            started=None,
            ended=None,
            error=None,
            idempotency_key=run.idempotency_key,
            owner=run.owner,
            rerun_of=run.rerun_of,
        )

    def record(self) -> RunRecord:
        return RunRecord(
            run_id=self.run_id,
            pipeline=self.pipeline,
            trigger=self.trigger,
            status=self.status,
            release=self.release,
            logical_date=self.logical_date,
            params=loads_json(self.params),
            context=loads_json(self.context),
            errors=load_errors(self.errors),
            created=self.created,
            started=self.started,
            ended=self.ended,
            error=self.error,
            idempotency_key=self.idempotency_key,
            owner=self.owner,
            rerun_of=self.rerun_of,
            cancel_requested=self.cancel_requested,
        )


class MemoryRunStore(RunStoreBase):
    """A :class:`~.base.RunStore` in this process's memory (``memory://``).

    It keeps the fleet contract (:mod:`.fleet`) like PostgreSQL, one mutex
    making every operation one transaction. With ``shared=True`` several
    schedulers of this process may use it at once (the scheduler lock is then
    held in shared mode), as several daemons share a PostgreSQL store.
    """

    def __init__(self, *, shared: bool = False) -> None:
        self._shared = shared
        self._mutex = threading.RLock()
        self._runs: dict[str, _Row] = {}
        self._logs: dict[str, str] = {}
        self._claims: dict[ReleaseKey, str] = {}
        self._keys: dict[str, str] = {}
        self._state: dict[str, tuple[datetime, str]] = {}
        self._owners: dict[str, OwnerRecord] = {}
        self._marks: dict[str, datetime] = {}
        self._pauses: dict[str, datetime] = {}
        self._outbox: dict[str, OutboxItem] = {}
        self._leases: dict[str, tuple[datetime, str]] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryRunStore(runs={len(self._runs)})"

    def shared(self) -> bool:
        return self._shared

    def _check(self) -> None:
        if self._closed:
            raise StoreError("the run store is closed")

    # -- claims and runs --------------------------------------------------------

    def _insert(self, row: _Row) -> None:
        if row.run_id in self._runs:
            raise StoreError(f"run id {row.run_id!r} already exists in the run store")
        self._runs[row.run_id] = row

    def claim_many(
        self, claims: Sequence[Claim], *, now: datetime, owner: str | None = None
    ) -> list[bool]:
        at = utc(now)
        rows = [_Row.new(NewRun.claimed(item, at, owner)) for item in claims]
        with self._mutex:
            self._check()
            # Decide every item first so that an error leaves nothing written, as
            # a rolled-back transaction would: a claimed release wins over a
            # reused run id (it is a plain "no"), a fresh release with a taken
            # run id is an error.
            wins: list[bool] = []
            seen: set[ReleaseKey] = set()
            new_ids: set[str] = set()
            for item in claims:
                if item.release in self._claims or item.release in seen:
                    wins.append(False)
                    continue
                if item.run_id in self._runs or item.run_id in new_ids:
                    raise StoreError(f"run id {item.run_id!r} already exists in the run store")
                seen.add(item.release)
                new_ids.add(item.run_id)
                wins.append(True)
            for item, row, won in zip(claims, rows, wins, strict=True):
                if won:
                    self._insert(row)
                    self._claims[item.release] = item.run_id
            return wins

    def _create(self, run: NewRun) -> RunRecord:
        row, key = _Row.new(run), run.idempotency_key
        with self._mutex:
            self._check()
            if key is not None and key in self._keys:
                raise DuplicateRun(self._keys[key], key)
            self._insert(row)
            if key is not None:
                self._keys[key] = run.run_id
            return row.record()

    def mark_running(
        self,
        run_id: str,
        *,
        now: datetime,
        owner: str | None = None,
        runner: str | None = None,
    ) -> bool:
        at = utc(now)
        with self._mutex:
            self._check()
            row = self._runs.get(run_id)
            if row is None or row.status is not Status.PENDING:
                return False
            if owner is not None and row.owner != owner:
                return False
            holder = row.owner if runner is None else runner
            self._runs[run_id] = replace(row, status=Status.RUNNING, started=at, owner=holder)
            return True

    def _finish(self, run_id: str, ending: Ending) -> bool:
        with self._mutex:
            self._check()
            row = self._runs.get(run_id)
            if row is None or row.status not in _NON_TERMINAL:
                return False
            if ending.owner is not None and row.owner != ending.owner:
                return False
            self._runs[run_id] = replace(
                row,
                status=ending.status,
                ended=ending.ended,
                context=row.context if ending.context is None else ending.context,
                errors=ending.errors,
                error=ending.error,
            )
            if ending.notices:
                failed_before = self._previous_failed(row.pipeline, run_id)
                for notice in ending.notices:
                    if failed_before or not notice.after_failure:
                        self._add_notice(notice, ending.ended)
            return True

    def _previous_failed(self, pipeline: str, run_id: str) -> bool:
        """Whether ``pipeline``'s previous run ended SUCCESS or FAILED (by end) failed."""
        ended = [
            (r.ended, r.run_id, r.status)
            for r in self._runs.values()
            if r.pipeline == pipeline
            and r.run_id != run_id
            and r.ended is not None
            and r.status in (Status.SUCCESS, Status.FAILED)
        ]
        return bool(ended) and max(ended)[2] is Status.FAILED

    # -- the notification outbox ------------------------------------------------

    def _add_notice(self, notice: Notice, now: datetime) -> bool:
        if notice.key in self._outbox:
            return False
        self._outbox[notice.key] = OutboxItem(
            key=notice.key,
            pipeline=notice.pipeline,
            event=notice.event,
            channel=notice.channel,
            target=notice.target,
            payload=notice.payload,
            run_id=notice.run_id,
            state=NoticeState.PENDING,
            attempts=0,
            created=now,
            due=now,
        )
        return True

    def add_notices(self, notices: Sequence[Notice], *, now: datetime) -> list[bool]:
        at = utc(now)
        with self._mutex:
            self._check()
            return [self._add_notice(notice, at) for notice in notices]

    def _claim_notices(
        self, owner: str, now: datetime, until: datetime, limit: int
    ) -> list[OutboxItem]:
        with self._mutex:
            self._check()
            due = sorted(
                (
                    item
                    for item in self._outbox.values()
                    if item.state is NoticeState.PENDING
                    and item.due <= now
                    and self._leases.get(item.key, (now, ""))[0] <= now
                ),
                key=lambda item: (item.due, item.key),
            )[:limit]
            claimed = []
            for item in due:
                taken = replace(item, attempts=item.attempts + 1)
                self._outbox[item.key] = taken
                self._leases[item.key] = (until, owner)
                claimed.append(taken)
            return claimed

    def notice_sent(self, key: str, *, now: datetime) -> bool:
        return self._settle(key, state=NoticeState.SENT, done=utc(now))

    def notice_failed(
        self, key: str, *, now: datetime, retry_at: datetime | None, error: str
    ) -> bool:
        if retry_at is None:
            return self._settle(key, state=NoticeState.DEAD, done=utc(now), error=error)
        return self._settle(key, state=NoticeState.PENDING, due=utc(retry_at), error=error)

    def _settle(
        self,
        key: str,
        *,
        state: NoticeState,
        done: datetime | None = None,
        due: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        with self._mutex:
            self._check()
            item = self._outbox.get(key)
            if item is None or item.state is not NoticeState.PENDING:
                return False
            self._leases.pop(key, None)
            self._outbox[key] = replace(
                item,
                state=state,
                done=done,
                due=item.due if due is None else due,
                last_error=item.last_error if error is None else text_in(error),
            )
            return True

    def notices(self, *, limit: int = 100) -> list[OutboxItem]:
        with self._mutex:
            self._check()
            items = sorted(self._outbox.values(), key=lambda i: (i.created, i.key), reverse=True)
        return items[:limit]

    def _prune_notices(self, before: datetime, limit: int) -> int:
        with self._mutex:
            self._check()
            done = sorted(
                (
                    item
                    for item in self._outbox.values()
                    if item.state is not NoticeState.PENDING and item.created < before
                ),
                key=lambda item: (item.created, item.key),
            )[:limit]
            for item in done:
                del self._outbox[item.key]
        return len(done)

    # -- queries ----------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._mutex:
            self._check()
            row = self._runs.get(run_id)
        return None if row is None else row.record()

    def run_states(self, run_ids: Sequence[str]) -> dict[str, RunState]:
        with self._mutex:
            self._check()
            rows = [row for run_id in run_ids if (row := self._runs.get(run_id)) is not None]
        return {r.run_id: RunState(r.status, r.error, r.owner, r.started) for r in rows}

    def release_runs(self, releases: Sequence[ReleaseKey]) -> dict[ReleaseKey, ReleaseRun]:
        found: dict[ReleaseKey, ReleaseRun] = {}
        with self._mutex:
            self._check()
            for key in releases:
                row = self._runs.get(self._claims.get(key, ""))
                if row is not None:
                    found[key] = ReleaseRun(row.run_id, row.trigger, row.status, row.owner)
        return found

    def save_log(self, run_id: str, text: str) -> None:
        with self._mutex:
            self._check()
            self._logs[run_id] = text

    def run_log(self, run_id: str) -> str | None:
        with self._mutex:
            self._check()
            return self._logs.get(run_id)

    # -- operations: cancel requests, pauses, retention ------------------------------

    def request_cancel(self, run_id: str, *, now: datetime, reason: str) -> Status | None:
        at = utc(now)
        with self._mutex:
            self._check()
            row = self._runs.get(run_id)
            if row is None:
                return None
            if row.status is Status.PENDING:
                errors = dump_errors([ErrorRecord(message=reason, kind="Cancelled")])
                row = replace(row, status=Status.CANCELLED, ended=at, errors=errors, error=reason)
            elif row.status is Status.RUNNING and row.cancel_requested is None:
                row = replace(row, cancel_requested=at)
            self._runs[run_id] = row
            return row.status

    def cancel_requests(self, owner: str | None) -> list[str]:
        with self._mutex:
            self._check()
            return sorted(
                r.run_id
                for r in self._runs.values()
                if r.status is Status.RUNNING
                and r.cancel_requested is not None
                and r.owner == owner
            )

    def pause(self, pipeline: str, *, now: datetime) -> bool:
        with self._mutex:
            self._check()
            if pipeline in self._pauses:
                return False
            self._pauses[pipeline] = utc(now)
            return True

    def unpause(self, pipeline: str) -> datetime | None:
        with self._mutex:
            self._check()
            return self._pauses.pop(pipeline, None)

    def paused(self) -> dict[str, datetime]:
        with self._mutex:
            self._check()
            return dict(sorted(self._pauses.items()))

    def _skipped(self, pipeline: str, reason: str) -> list[_Row]:
        return [
            r
            for r in self._runs.values()
            if r.pipeline == pipeline
            and r.status is Status.SKIPPED
            and r.error == reason
            and r.release is not None
        ]

    def skipped_releases(
        self, pipeline: str, *, reason: str, since: datetime, until: datetime, limit: int
    ) -> list[ReleaseKey]:
        lo, hi = utc(since), utc(until)
        with self._mutex:
            self._check()
            keys = [r.release for r in self._skipped(pipeline, reason) if r.release is not None]
        chosen = sorted((k for k in keys if lo <= k.at < hi), key=lambda k: (k.at, k.schedule))
        return chosen[:limit]

    def reclaim_skipped(
        self, claims: Sequence[Claim], *, reason: str, now: datetime, owner: str | None = None
    ) -> list[bool]:
        at = utc(now)
        won: list[bool] = []
        with self._mutex:
            self._check()
            for claim in claims:
                held = self._runs.get(self._claims.get(claim.release, ""))
                if held is None or held.status is not Status.SKIPPED or held.error != reason:
                    won.append(False)
                    continue
                if claim.run_id in self._runs:
                    raise StoreError(f"run id {claim.run_id!r} already exists in the run store")
                del self._runs[held.run_id]
                self._insert(_Row.new(NewRun.claimed(claim, at, owner)))
                self._claims[claim.release] = claim.run_id
                won.append(True)
        return won

    def newest_runs(self) -> dict[str, str]:
        newest: dict[str, tuple[datetime, str]] = {}
        with self._mutex:
            self._check()
            for r in self._runs.values():
                key = (r.created, r.run_id)
                if r.pipeline not in newest or key > newest[r.pipeline]:
                    newest[r.pipeline] = key
        return {pipeline: key[1] for pipeline, key in newest.items()}

    def _prune(self, before: datetime, limit: int, keep: frozenset[str]) -> list[str]:
        with self._mutex:
            self._check()
            rows = sorted(
                (
                    r
                    for r in self._runs.values()
                    if r.created < before and r.status.is_terminal and r.run_id not in keep
                ),
                key=lambda r: (r.created, r.run_id),
            )[:limit]
            for row in rows:
                del self._runs[row.run_id]
                self._logs.pop(row.run_id, None)
                if row.release is not None and self._claims.get(row.release) == row.run_id:
                    del self._claims[row.release]
                if row.idempotency_key is not None:
                    self._keys.pop(row.idempotency_key, None)
        return [r.run_id for r in rows]

    def _select(self, where: RunFilter) -> list[_Row]:
        # Locals, not attribute lookups or a method call per row: this loop is
        # what list_runs and count_runs cost.
        pipeline, wanted, lo, hi, kind = (
            where.pipeline,
            where.statuses,
            where.since,
            where.until,
            where.trigger,
        )
        with self._mutex:
            self._check()
            rows = list(self._runs.values())
        return [
            r
            for r in rows
            if (pipeline is None or r.pipeline == pipeline)
            and (wanted is None or r.status in wanted)
            and (lo is None or r.created >= lo)
            and (hi is None or r.created < hi)
            and (kind is None or r.trigger is kind)
        ]

    def _list(self, where: RunFilter, limit: int, offset: int) -> list[RunRecord]:
        rows = self._select(where)
        rows.sort(key=lambda r: (r.created, r.run_id), reverse=True)
        return [r.record() for r in rows[offset : offset + limit]]

    def _count(self, where: RunFilter) -> int:
        return len(self._select(where))

    def _rows_by_status(self, status: Status, trigger: TriggerKind | None) -> list[_Row]:
        rows = self._select(RunFilter(status=status, trigger=trigger))
        if status is Status.PENDING:
            rows.sort(key=lambda r: (r.release.at if r.release else r.created, r.created, r.run_id))
        else:
            rows.sort(key=lambda r: (r.started or r.created, r.run_id))
        return rows

    def _pending(self, trigger: TriggerKind | None) -> list[RunRecord]:
        return [r.record() for r in self._rows_by_status(Status.PENDING, trigger)]

    def fail_interrupted(
        self, *, now: datetime, reason: str, trigger: TriggerKind | None = None
    ) -> list[str]:
        at = utc(now)
        errors = dump_errors([ErrorRecord(message=reason, kind="Interrupted")])
        with self._mutex:
            rows = [r for r in self._rows_by_status(Status.RUNNING, trigger) if r.owner is None]
            for row in rows:
                self._runs[row.run_id] = replace(
                    row, status=Status.FAILED, ended=at, errors=errors, error=reason
                )
        return [r.run_id for r in rows]

    # -- scheduler state ----------------------------------------------------------

    def _get_state(self, name: str) -> tuple[datetime, str] | None:
        with self._mutex:
            self._check()
            return self._state.get(name)

    def _set_state(self, name: str, at: datetime, owner: str) -> None:
        with self._mutex:
            self._check()
            self._state[name] = (utc(at), owner)

    # -- several daemons (see .fleet) ---------------------------------------------

    def _live(self, owner: str) -> None:
        record = self._owners.get(owner)
        if record is None or record.state is not OwnerState.LIVE:
            raise OwnerLost(owner)

    def join(
        self, owner: str, *, now: datetime, host: str, pid: int, kind: OwnerKind = "scheduler"
    ) -> bool:
        at, kind = utc(now), owner_kind(kind)
        with self._mutex:
            self._check()
            if owner in self._owners:
                return False
            self._owners[owner] = OwnerRecord(owner, host, pid, at, at, OwnerState.LIVE, kind=kind)
            return True

    def heartbeat(self, *, now: datetime, owner: str) -> bool:
        with self._mutex:
            self._check()
            record = self._owners.get(owner)
            if record is None or record.state is not OwnerState.LIVE:
                return False
            self._owners[owner] = replace(record, heartbeat=utc(now))
            return True

    def leave(self, owner: str, *, now: datetime) -> None:
        with self._mutex:
            self._check()
            record = self._owners.get(owner)
            if record is not None and record.state is OwnerState.LIVE:
                self._owners[owner] = replace(record, state=OwnerState.STOPPED, ended=utc(now))

    def owners(self) -> list[OwnerRecord]:
        with self._mutex:
            self._check()
            records = list(self._owners.values())
        return sorted(records, key=lambda o: (-o.heartbeat.timestamp(), o.owner))

    def take_over(
        self,
        owner: str,
        *,
        now: datetime,
        lease: timedelta,
        everyone: bool = False,
        unowned: bool = False,
        reason: Callable[[OwnerRecord], str],
    ) -> Takeover:
        at = utc(now)
        cutoff = at - lease
        taken: list[OwnerRecord] = []
        adopted: list[RunRecord] = []
        failed: list[str] = []
        with self._mutex:
            self._check()
            self._live(owner)
            gone = [
                o
                for o in self._owners.values()
                if o.owner != owner
                and o.taken_by is None
                and (
                    (everyone and o.kind == "scheduler")
                    or o.state is not OwnerState.LIVE
                    or o.heartbeat < cutoff
                )
            ]
            for record in sorted(gone, key=lambda o: (o.heartbeat, o.owner)):
                state = OwnerState.LOST if record.state is OwnerState.LIVE else record.state
                self._owners[record.owner] = replace(
                    record, state=state, taken_by=owner, ended=record.ended or at
                )
                taken.append(record)
                self._adopt(owner, record.owner, at, reason(record), adopted, failed)
            if unowned:
                placeholder = OwnerRecord("", "", 0, at, at, OwnerState.LOST)
                self._adopt(owner, None, at, reason(placeholder), adopted, failed)
        return Takeover(tuple(taken), tuple(adopted), tuple(failed))

    def _adopt(  # noqa: PLR0917 - private helper, called twice
        self,
        owner: str,
        gone: str | None,
        at: datetime,
        reason: str,
        adopted: list[RunRecord],
        failed: list[str],
    ) -> None:
        errors = dump_errors([ErrorRecord(message=reason, kind="Interrupted")])
        for row in self._rows_by_status(Status.PENDING, TriggerKind.SCHEDULE):
            if row.owner == gone:
                moved = replace(row, owner=owner, admitted=None)
                self._runs[row.run_id] = moved
                adopted.append(moved.record())
        # A named owner's started runs of any trigger (a worker holds manual and API
        # runs too); the unowned ones of the schedule only.
        trigger = TriggerKind.SCHEDULE if gone is None else None
        running = [r for r in self._rows_by_status(Status.RUNNING, trigger) if r.owner == gone]
        if gone is not None:  # its runs of other triggers that never started end too
            running += [
                r
                for r in self._rows_by_status(Status.PENDING, None)
                if r.owner == gone and r.trigger is not TriggerKind.SCHEDULE
            ]
        for row in sorted(running, key=lambda r: r.run_id):
            self._runs[row.run_id] = replace(
                row, status=Status.FAILED, ended=at, errors=errors, error=reason
            )
            failed.append(row.run_id)

    def _load(self, pipelines: Sequence[str]) -> dict[str, PipelineLoad]:
        wanted = set(pipelines)
        counts: dict[str, list[int]] = {}
        for row in self._runs.values():
            if (
                row.pipeline in wanted
                and row.trigger is TriggerKind.SCHEDULE
                and row.status in _NON_TERMINAL
            ):
                slot = row.status is Status.RUNNING or row.admitted is not None
                counts.setdefault(row.pipeline, [0, 0])[0 if slot else 1] += 1
        return {name: PipelineLoad(*pair) for name, pair in counts.items()}

    def load(self, pipelines: Sequence[str]) -> dict[str, PipelineLoad]:
        with self._mutex:
            self._check()
            return self._load(pipelines)

    def claim_round(
        self,
        pipelines: Sequence[str],
        *,
        owner: str,
        at: datetime,
        init: datetime,
        now: datetime,
        decide: Decide,
        batch: int = 64,
        claimed: Callable[[list[tuple[RoundClaim, bool]]], None] | None = None,
        quiet: Quiet | None = None,
    ) -> list[tuple[RoundClaim, bool]]:
        until, start, created = utc(at), utc(init), utc(now)
        outcomes: list[tuple[RoundClaim, bool]] = []
        with self._mutex:
            self._check()
            names = sorted(set(pipelines))
            for name in names:
                self._marks.setdefault(name, start)
            due = [name for name in names if self._marks[name] < until]
            for first in range(0, len(due), batch):
                self._live(owner)
                locked = due[first : first + batch]
                shown = [n for n in locked if quiet is None or not quiet(n, self._marks[n])]
                claims: list[RoundClaim] = []
                if shown:
                    view = RoundView({n: self._marks[n] for n in shown}, self._load(shown))
                    claims = list(decide(view).claims)
                won = [self._insert_claim(item, owner, created) for item in claims]
                for name in locked:
                    self._marks[name] = max(self._marks[name], until)
                done = list(zip(claims, won, strict=True))
                outcomes.extend(done)
                if claimed is not None:
                    claimed(done)
            mark = self._state.get("watermark")
            if mark is None or mark[0] < until:
                self._state["watermark"] = (until, "")
        return outcomes

    def _insert_claim(self, item: RoundClaim, owner: str, created: datetime) -> bool:
        claim = item.claim
        if claim.release in self._claims:
            return False
        if claim.run_id in self._runs:
            raise StoreError(f"run id {claim.run_id!r} already exists in the run store")
        row = _Row.new(NewRun.claimed(claim, created, owner))
        if item.state is ClaimState.SKIPPED:
            row = replace(row, status=Status.SKIPPED, ended=created, error=item.reason)
        elif item.state is ClaimState.ADMITTED:
            row = replace(row, admitted=created)
        self._insert(row)
        self._claims[claim.release] = claim.run_id
        return True

    def admit(self, limits: Mapping[str, int], *, owner: str, now: datetime) -> list[str]:
        at = utc(now)
        admitted: list[str] = []
        with self._mutex:
            self._check()
            loads = self._load(list(limits))
            pending = self._rows_by_status(Status.PENDING, TriggerKind.SCHEDULE)
            for pipeline in sorted(limits):
                free = limits[pipeline] - loads.get(pipeline, PipelineLoad()).running
                if free <= 0:
                    continue
                heads = [r for r in pending if r.pipeline == pipeline and r.admitted is None]
                for row in heads[:free]:
                    if row.owner == owner:
                        self._runs[row.run_id] = replace(row, admitted=at)
                        admitted.append(row.run_id)
            return admitted

    def scheduler_lock(self, owner: str) -> AbstractContextManager[None]:
        self._check()
        if self._shared:
            return nullcontext()
        return LOCAL_LOCKS.hold(f"memory:{id(self)}", owner, what="this memory store")

    def ping(self) -> bool:
        return not self._closed

    def close(self) -> None:
        with self._mutex:
            self._closed = True
