"""``workflow worker`` whose run store does not answer the start of one run.

The run is ``$POISON_RUN_ID``; each refused start appends a line to ``$POISON_COUNT``.
The retry backoff is shortened so the test does not wait for it.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from ddeutil.workflow.cli import main
from ddeutil.workflow.dispatch import celery_worker
from ddeutil.workflow.errors import StoreError
from ddeutil.workflow.store.sqlite import SqliteRunStore

_start = SqliteRunStore.mark_running


def _mark_running(
    self: SqliteRunStore,
    run_id: str,
    *,
    now: datetime,
    owner: str | None = None,
    runner: str | None = None,
) -> bool:
    if run_id == os.environ["POISON_RUN_ID"]:
        with Path(os.environ["POISON_COUNT"]).open("a") as count:
            count.write("start refused\n")
        raise StoreError("database is unavailable")
    return _start(self, run_id, now=now, owner=owner, runner=runner)


if __name__ == "__main__":
    SqliteRunStore.mark_running = _mark_running  # type: ignore[method-assign,assignment]
    celery_worker.RETRY_BASE = 0.05
    raise SystemExit(main(sys.argv[1:]))
