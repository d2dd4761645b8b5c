"""Helper process for the notification crash tests (run as a script).

``python _notify_proc.py COMMAND URL WEBHOOK``; it prints one line, then blocks
on stdin until it is killed:

* ``finish``: record the FAILED end of run ``r1`` (PENDING in the store) with its
  notices, print ``finished`` (the state change and the outbox row committed,
  nothing sent).
* ``send``: claim the outbox's rows and deliver them to the webhook, print
  ``delivered`` before marking any sent.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

from ddeutil.workflow.clock import FakeClock
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.notify.notices import Notifier
from ddeutil.workflow.notify.sender import Sender
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.outbox import OutboxItem

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def main(argv: list[str]) -> int:
    command, url, webhook = argv
    settings = Settings.from_env({"WORKFLOW_NOTIFY_WEBHOOK_URL": webhook})
    store = open_store(url)
    clock = FakeClock(T0)
    if command == "finish":
        notices = Notifier(settings, Masker()).run_end(
            None,
            run_id="r1",
            pipeline="p",
            status=Status.FAILED,
            error="boom",
            release=None,
            ended=T0,
        )
        assert store.finish("r1", status=Status.FAILED, now=T0, error="boom", notices=notices)
        print("finished", flush=True)
    elif command == "send":
        sender = Sender(store, settings, owner="doomed", clock=clock)

        def deliver_then_hang(item: OutboxItem) -> None:
            sender.deliver(item)
            print("delivered", flush=True)
            sys.stdin.read()  # killed here: delivered, never marked sent

        Sender(store, settings, owner="doomed", clock=clock, deliver=deliver_then_hang).send_due()
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
