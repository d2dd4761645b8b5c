"""Helper process for the run store's cross-process tests (run as a script).

``python _store_proc.py COMMAND URL ARG...``; talks over stdin/stdout lines:

* ``claim URL N TAG`` / ``claim-many URL N TAG``: open the store, print ``ready``,
  wait for a line, claim releases 0..N-1 of pipeline ``race`` as runs
  ``TAG-i`` (one by one / in one batch) and print the JSON list of flags.
* ``start URL``: print ``ready``; read a JSON list of run ids; try the start
  handshake on each and print the JSON list of flags.
* ``lock URL OWNER``: hold the scheduler lock, print ``locked``, wait for stdin
  to close.
* ``lock-fork URL OWNER``: hold the lock, fork a child that waits for stdin to
  close, print the child's pid, then SIGKILL itself (the child lives on).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import datetime, timedelta, timezone

from ddeutil.workflow.store import Claim, ReleaseKey, open_store

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def release(i: int) -> ReleaseKey:
    return ReleaseKey("race", "* * * * *@UTC", T0 + timedelta(minutes=i))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    command, url, *args = argv
    store = open_store(url)
    if command in ("claim", "claim-many"):
        count, tag = int(args[0]), args[1]
        say("ready")
        sys.stdin.readline()
        claims = [
            Claim(release(i), f"{tag}-{i}", {"tag": tag}, release(i).at) for i in range(count)
        ]
        if command == "claim":
            flags = [
                store.claim(c.release, run_id=c.run_id, params=c.params, logical_date=T0, now=T0)
                for c in claims
            ]
        else:
            flags = store.claim_many(claims, now=T0)
        say(json.dumps(flags))
    elif command == "start":
        say("ready")
        run_ids = json.loads(sys.stdin.readline())
        say(json.dumps([store.mark_running(r, now=T0) for r in run_ids]))
    elif command == "lock":
        with store.scheduler_lock(args[0]):
            say("locked")
            sys.stdin.read()
    elif command == "lock-fork":
        with store.scheduler_lock(args[0]):
            child = os.fork()
            if child == 0:
                sys.stdin.read()
                os._exit(0)
            say(str(child))
            os.kill(os.getpid(), signal.SIGKILL)
    else:
        raise SystemExit(f"unknown command {command}")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
