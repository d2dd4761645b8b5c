"""The client lease: joined as a client, cancel requests handed over once, left on exit."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from ddeutil.workflow.dispatch.client import ClientLease
from ddeutil.workflow.result import Status
from ddeutil.workflow.store import MemoryRunStore, TriggerKind

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_a_client_lease_hands_each_cancel_request_over_once() -> None:
    store = MemoryRunStore()
    asked: list[str] = []
    seen = threading.Event()

    def on_cancel(run_id: str) -> None:
        asked.append(run_id)
        seen.set()

    with ClientLease(store, lease=30.0, on_cancel=on_cancel, poll=0.01) as lease:
        [me] = store.owners()
        assert (me.owner, me.kind, me.state.value) == (lease.owner, "client", "live")
        store.create_run(
            run_id="r1",
            pipeline="p",
            trigger=TriggerKind.MANUAL,
            params={},
            now=T0,
            owner=lease.owner,
        )
        assert store.mark_running("r1", now=T0, owner=lease.owner)
        assert store.request_cancel("r1", now=T0, reason="stop") is Status.RUNNING
        assert seen.wait(5.0)
        lease.check()  # asked again: not handed over twice
    assert asked == ["r1"]
    [me] = store.owners()
    assert me.state.value == "stopped"
