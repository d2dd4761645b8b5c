"""Recording a run's end so that it is never lost: retry, journal, replay.

The thread that executed a run records how it ended with
:meth:`RunStore.finish <ddeutil.workflow.store.base.RunStore.finish>`. That
write can fail (the disk is full, the database is down); the run would then stay
RUNNING for good. :class:`EndRecorder` keeps the end instead:

1. **Retry.** The write is tried again after short waits
   (:data:`RETRY_DELAYS`).
2. **Journal.** Still failing, the end is appended as one JSON line to the
   :class:`EndJournal` (``WORKFLOW_APP_END_JOURNAL``, default
   ``.workflow/run-ends.jsonl``). When even that write fails (the journal is on
   the full disk too) the end is kept in memory.
3. **Replay.** While ends are waiting, a background thread offers them to the
   store again every :data:`RETRY_SECONDS`; a stopping executor does it once
   more (what the store still refuses then goes to the journal). The daemon and
   the API replay the journal into the store when they start, *before* closing
   runs left RUNNING as interrupted, so a run that succeeded is recorded
   SUCCESS, not FAILED. An end kept only in memory when the process exits is
   lost, and its run is closed as interrupted at the next start, as after a
   crash.

The store's rule "the first terminal writer wins" makes replaying safe: an end
whose run was closed meanwhile changes nothing. A journal line names the store
it belongs to (a digest of its URL), so a journal shared by processes using
different stores replays each line into its own store only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..result import ErrorRecord, Status
from ..settings import Settings
from ._codec import dumps_json, load_errors
from .base import RunStore
from .outbox import Notice

__all__ = [
    "JOURNAL_VERSION",
    "RETRY_DELAYS",
    "RETRY_SECONDS",
    "EndJournal",
    "EndRecorder",
    "ReplayReport",
    "RunEnd",
    "store_key",
]

logger = logging.getLogger(__name__)

JOURNAL_VERSION = 1
"""Version of a journal line (``"v"``); lines of another version are kept, not replayed."""

RETRY_DELAYS: tuple[float, ...] = (0.1, 0.5, 2.0)
"""Seconds waited before each retry of a failed end write."""

RETRY_SECONDS = 30.0
"""How often waiting ends are offered to the store again."""

_FAILURES = (StoreError, OSError)


def store_key(url: str) -> str:
    """A short digest naming a run store in journal lines (its URL may hold a password)."""
    return hashlib.sha256(url.strip().encode("utf-8", "backslashreplace")).hexdigest()[:16]


@dataclass(frozen=True)
class RunEnd:
    """How one run ended: the arguments of ``RunStore.finish``."""

    run_id: str
    status: Status
    ended: datetime
    context: Mapping[str, Any] | None = None
    errors: tuple[ErrorRecord, ...] = ()
    error: str | None = None
    owner: str | None = None
    """The daemon the run belonged to; the end is refused once the run was taken over."""
    notices: tuple[Notice, ...] = ()
    """Outbox rows written with the end, in its transaction (journaled with it too)."""

    def write_to(self, store: RunStore) -> bool:
        """Record this end in ``store``; False when the run was already closed (or taken over)."""
        return store.finish(
            self.run_id,
            status=self.status,
            now=self.ended,
            context=self.context,
            errors=self.errors,
            error=self.error,
            owner=self.owner,
            notices=self.notices,
        )

    def to_line(self, store: str) -> str:
        """One journal line (versioned JSON, ASCII, newline-terminated) for ``store``."""
        return (
            dumps_json(
                {
                    "v": JOURNAL_VERSION,
                    "store": store,
                    "run_id": self.run_id,
                    "status": self.status.value,
                    "ended": self.ended.isoformat(),
                    "context": None if self.context is None else dict(self.context),
                    "errors": [e.to_dict() for e in self.errors],
                    "error": self.error,
                    "owner": self.owner,
                    "notices": [asdict(notice) for notice in self.notices],
                }
            )
            + "\n"
        )

    @classmethod
    def from_line(cls, data: Mapping[str, Any]) -> RunEnd:
        """Rebuild an end from a decoded journal line.

        Raises:
            KeyError, TypeError, ValueError: the line is not a run end.
        """
        return cls(
            run_id=str(data["run_id"]),
            status=Status(data["status"]),
            ended=datetime.fromisoformat(data["ended"]),
            context=data.get("context"),
            errors=load_errors(data.get("errors") or []),
            error=data.get("error"),
            owner=data.get("owner"),
            notices=tuple(Notice(**notice) for notice in data.get("notices") or ()),
        )


@dataclass(frozen=True)
class ReplayReport:
    """What one :meth:`EndJournal.replay` did (run ids)."""

    recorded: tuple[str, ...] = ()
    already_closed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()


@dataclass(frozen=True)
class EndJournal:
    """An append-only file of run ends that one store could not take.

    Appends and replays of every process take an exclusive ``flock`` on
    ``<path>.lock``, so a replay never loses a line appended meanwhile.

    Attributes:
        path: The journal file (its folder is created on the first append).
        store: :func:`store_key` of the store its lines belong to.
    """

    path: Path
    store: str

    @classmethod
    def for_store(cls, settings: Settings, url: str) -> EndJournal:
        """The journal of the store at ``url`` (``WORKFLOW_APP_END_JOURNAL``)."""
        return cls(settings.app_end_journal, store_key(url))

    @contextlib.contextmanager
    def _locked(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def append(self, end: RunEnd) -> None:
        """Append ``end`` durably (written and fsynced before returning).

        Raises:
            OSError: the journal cannot be written (a torn line is skipped at replay).
        """
        data = end.to_line(self.store).encode("ascii")
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # after a torn line: keep this one whole
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

    def replay(self, store: RunStore) -> ReplayReport:
        """Offer this store's journaled ends to ``store``; keep what it still refuses.

        Lines of other stores and of other versions are kept as they are; a line
        that is not JSON (torn by a crash or a full disk) is dropped with a
        warning. Never raises for the store's failures: they are kept.
        """
        if not self.path.exists():
            return ReplayReport()
        recorded: list[str] = []
        closed: list[str] = []
        kept_ids: list[str] = []
        try:
            with self._locked():
                try:
                    lines = self.path.read_text(encoding="ascii", errors="replace").splitlines()
                except FileNotFoundError:
                    return ReplayReport()
                kept: list[str] = []
                for line in lines:
                    if not line.strip():
                        continue
                    try:
                        data = json.loads(line)
                        mine = data.get("store") == self.store and data.get("v") == JOURNAL_VERSION
                        end = RunEnd.from_line(data) if mine else None
                    except (ValueError, TypeError, KeyError, AttributeError):
                        logger.warning("run-end journal %s: unreadable line dropped", self.path)
                        continue
                    if end is None:
                        kept.append(line)
                        continue
                    try:
                        written = end.write_to(store)
                    except _FAILURES as exc:
                        logger.warning(
                            "run %s: journaled end still not recorded: %s",
                            end.run_id,
                            exc,
                            extra={"run_id": end.run_id},
                        )
                        kept.append(line)
                        kept_ids.append(end.run_id)
                        continue
                    (recorded if written else closed).append(end.run_id)
                self._rewrite(kept)
        except OSError as exc:
            logger.warning("run-end journal %s cannot be replayed now: %s", self.path, exc)
        for run_id in recorded:
            logger.info(
                "run %s: end recorded from the run-end journal", run_id, extra={"run_id": run_id}
            )
        return ReplayReport(tuple(recorded), tuple(closed), tuple(kept_ids))

    def _rewrite(self, lines: list[str]) -> None:
        if not lines:
            self.path.unlink(missing_ok=True)
            return
        temp = self.path.with_name(self.path.name + ".tmp")
        temp.write_text("".join(f"{line}\n" for line in lines), encoding="ascii")
        temp.replace(self.path)


@dataclass
class _Waiting:
    ends: list[RunEnd] = field(default_factory=list)
    journaled: bool = False


class EndRecorder:
    """Records run ends in a store; what the store refuses is kept (see the module).

    Args:
        store: Where ends are recorded.
        journal: Where ends the store refuses are kept across restarts; ``None``
            keeps them in memory only.
        retry_delays: Seconds waited before each retry of a failed write.
        retry_seconds: How often waiting ends are offered to the store again.
        wait: Waits the given seconds (tests pass a fake).
    """

    def __init__(
        self,
        store: RunStore,
        *,
        journal: EndJournal | None = None,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        retry_seconds: float = RETRY_SECONDS,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self._store = store
        self._journal = journal
        self._delays = retry_delays
        self._every = retry_seconds
        self._closed = threading.Event()
        self._wait = wait or self._closed.wait
        self._lock = threading.Lock()
        self._waiting = _Waiting()
        self._retrier: threading.Thread | None = None

    @property
    def waiting(self) -> int:
        """Ends kept in memory, not recorded yet (journaled ones not counted)."""
        with self._lock:
            return len(self._waiting.ends)

    def record(self, end: RunEnd) -> bool | None:
        """Record ``end``: True when written, False when the run was already closed.

        Returns ``None`` when the store refused it after the retries: the end is
        then in the journal (or in memory) and is recorded later.
        """
        failure: BaseException | None = None
        for delay in (None, *self._delays):
            if delay is not None:
                self._wait(delay)
            try:
                return end.write_to(self._store)
            except _FAILURES as exc:
                failure = exc
        logger.error(
            "run %s: its end (%s) could not be recorded (%s); kept and retried",
            end.run_id,
            end.status.value,
            failure,
            extra={"run_id": end.run_id},
        )
        self._keep([end])
        return None

    def flush(self) -> None:
        """Offer every waiting end to the store once; journal what it refuses.

        Also replays the journal, so ends journaled by this process are
        recorded without a restart once the store takes writes again.
        """
        with self._lock:
            ends, self._waiting.ends = self._waiting.ends, []
            journaled = self._waiting.journaled
            self._waiting.journaled = False
        refused: list[RunEnd] = []
        for end in ends:
            try:
                end.write_to(self._store)
            except _FAILURES:
                refused.append(end)
            else:
                logger.info(
                    "run %s: end recorded after a failed write",
                    end.run_id,
                    extra={"run_id": end.run_id},
                )
        if journaled and self._journal is not None and self._journal.replay(self._store).kept:
            with self._lock:
                self._waiting.journaled = True
        if refused:
            self._keep(refused, start=False)

    def close(self) -> None:
        """Flush once more and stop retrying; ends still in memory are logged as lost."""
        self._closed.set()
        self.flush()
        with self._lock:
            lost, self._waiting.ends = self._waiting.ends, []
        for end in lost:
            logger.error(
                "run %s: its end (%s) is lost (the store and the journal refused it); "
                "the run is recorded FAILED as interrupted at the next start",
                end.run_id,
                end.status.value,
                extra={"run_id": end.run_id},
            )
        retrier = self._retrier
        if retrier is not None:
            retrier.join(timeout=1.0)

    def _keep(self, ends: list[RunEnd], *, start: bool = True) -> None:
        in_memory: list[RunEnd] = []
        for end in ends:
            if self._journal is None:
                in_memory.append(end)
                continue
            try:
                self._journal.append(end)
            except OSError as exc:
                logger.error(
                    "run %s: run-end journal %s refused the end too (%s); kept in memory",
                    end.run_id,
                    self._journal.path,
                    exc,
                    extra={"run_id": end.run_id},
                )
                in_memory.append(end)
            else:
                with self._lock:
                    self._waiting.journaled = True
        with self._lock:
            self._waiting.ends.extend(in_memory)
            if start and not self._closed.is_set() and self._retrier is None:
                self._retrier = threading.Thread(
                    target=self._retry_loop, name="run-end retry", daemon=True
                )
                self._retrier.start()

    def _retry_loop(self) -> None:
        while not self._closed.wait(self._every):
            self.flush()
            with self._lock:
                if not self._waiting.ends and not self._waiting.journaled:
                    self._retrier = None
                    return
