"""Chaos benchmark: three real daemons on one PostgreSQL store, killed and paused.

Checks the fleet promise of the run store (see ``ddeutil.workflow.store.fleet``)
under faults, on real minute boundaries: every release of every pipeline runs
exactly once, a daemon killed with ``kill -9`` has its claimed releases that had
not started dispatched by another daemon within about a lease, and the ones that
had started are recorded FAILED ("interrupted: owner ... lost"), never run again.

Run by hand (it takes ``--minutes`` + about 2 minutes of wall time)::

    python benchmarks/bench_fleet_chaos.py [--minutes 20] [--pipelines 200]
        [--daemons 3] [--lease 5] [--stage-seconds 0.5] [--slots 10]
        [--pause-every 5] [--seed N] [--pg-url postgresql://user@host:5432/db]
        [--python PY] [--keep]

PostgreSQL: ``--pg-url``, else ``WORKFLOW_TEST_POSTGRES_URL``, else
``postgresql://{$PGUSER|root|postgres}@127.0.0.1:5432/test``; the benchmark works
in a fresh schema, dropped at the end (``--keep`` keeps it and the work folder).

What it does:

* Writes ``--pipelines`` pipelines on ``* * * * *`` (UTC). Their one python stage
  appends ``<pipeline> <logical date> <run id>`` to a marker file (one
  ``O_APPEND`` write, atomic) and then sleeps ``--stage-seconds``. Each daemon has
  one worker process with ``--slots`` threads, so a boundary's releases queue
  for a few seconds: a kill finds some runs RUNNING and some claimed but not
  started (PENDING).
* Starts ``--daemons`` daemons (``python -m ddeutil.workflow.app``) with
  ``WORKFLOW_APP_LEASE_SECONDS=--lease``, each in its own process group, with its
  own log, per-run log folder and run-end journal ("its machine").
* Every minute of the window, a random daemon is killed (``SIGKILL`` to its
  process group: the daemon and its workers, as a crashed host) at a random
  instant between 40 ms before the boundary (while it claims the boundary ahead)
  and 2 s after it, and is started again at once (a new owner id).
* Every ``--pause-every`` minutes another daemon gets ``SIGSTOP`` (its whole
  process group) for twice the lease plus one second, then ``SIGCONT``;
  alternately 1 s after a boundary (runs in flight) and 40 ms before the next
  one (in the middle of its claim round). It must find its lease lost, cancel
  its in-flight runs and join again under ``<owner>/2``.
* After the window it waits (bounded) until every release of the window has a
  terminal run, stops the daemons (SIGTERM) and reads the store, the marker file
  and the daemons' JSON logs.

The summary counts, over the boundaries of the window (``pipelines`` x
``minutes`` releases expected):

* **run (SUCCESS)**; **run twice**: a release with two runs (the store's UNIQUE
  constraint forbids it) or whose stage wrote two marker lines; must be 0;
* **FAILED interrupted**: runs that had started under a daemon that was killed
  or paused past its lease (documented: not run again);
* **lost**: a release with no run, or whose run never ended, or ended any other
  way; must be 0;
* **lease lost by a daemon never paused**: a live daemon taken over (its runs
  would be recorded FAILED for nothing); must be 0;
* **takeover delay**: per kill, from the ``SIGKILL`` to the first and to the last
  start of the killed daemon's orphaned PENDING releases on the daemon that took
  them over (target: under lease + one beat, i.e. 4/3 of the lease, plus the
  time the taker needs to start them all with its own slots); the time the
  takeover was detected (the taker's "took over daemon" log line) is given too.

Daemons that exit on their own (a crash) are reported and restarted. The report
is readable text on stdout, then one JSON line with every number. Every wait is
bounded; every daemon is stopped in a ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _postgres import pg_base  # benchmarks/_postgres.py

UTC = timezone.utc
READY_LINE = "scheduler ticks at every minute boundary"
INTERRUPTED = "interrupted: owner "

PIPELINE = """\
chaos-{i:04d}:
  type: Pipeline
  on:
    - cronjob: "* * * * *"
      timezone: UTC
  jobs:
    main:
      stages:
        - name: mark
          run: |
            import os, time
            logical, run = ${{{{ release.logical_date }}}}, ${{{{ run_id }}}}
            fd = os.open({marks!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, f"chaos-{i:04d} {{logical.isoformat()}} {{run}}\\n".encode())
            os.close(fd)
            time.sleep({sleep})
"""


def say(text: str = "") -> None:
    print(text, flush=True)


def stamp(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%H:%M:%S.%f")[:-3]


@dataclass
class Incarnation:
    """One process of a daemon slot (a restart is a new incarnation)."""

    slot: int
    number: int
    log: Path
    popen: subprocess.Popen[bytes]
    started: float
    ended: float | None = None
    end: str | None = None  # "killed", "stopped", "crashed rc=N"


@dataclass
class Slot:
    """A daemon "machine": its folder, env, and the incarnations run on it."""

    index: int
    folder: Path
    env: dict[str, str]
    python: str
    runs: list[Incarnation] = field(default_factory=list)
    paused: bool = False

    @property
    def current(self) -> Incarnation:
        return self.runs[-1]

    def start(self) -> Incarnation:
        number = len(self.runs) + 1
        log = self.folder / f"daemon-{number:02d}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [self.python, "-m", "ddeutil.workflow.app", "--log-format", "json"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        run = Incarnation(self.index, number, log, popen, time.time())
        self.runs.append(run)
        return run

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.current.popen.pid, signum)

    def kill(self) -> float:
        """SIGKILL the process group; return the instant of the kill."""
        at = time.time()
        self.signal(signal.SIGKILL)
        self.current.popen.wait(30)
        self.current.ended, self.current.end = at, "killed"
        return at

    def stop(self, timeout: float) -> None:
        run = self.current
        if run.popen.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        run.popen.send_signal(signal.SIGTERM)  # the daemon alone, as systemd's KillMode=mixed
        try:
            rc = run.popen.wait(timeout)
            run.end = f"stopped rc={rc}"
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            run.popen.wait(30)
            run.end = "stopped (SIGKILL after the stop timeout)"
        run.ended = time.time()


def records(log: Path) -> list[dict[str, Any]]:
    out = []
    with contextlib.suppress(FileNotFoundError):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
    return out


def owners_of(log: Path) -> list[str]:
    """Owner ids an incarnation used, in order (first join, then each rejoin)."""
    found = []
    for rec in records(log):
        msg = rec.get("message", "")
        if msg.startswith("scheduler starting (owner "):
            found.append(msg[len("scheduler starting (owner ") : -1])
        elif msg.startswith("lease lost:") and "joining again as owner " in msg:
            found.append(msg.rsplit("joining again as owner ", 1)[1].strip())
    return found


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def ready(run: Incarnation) -> bool:
    if run.popen.poll() is not None:
        raise RuntimeError(f"daemon {run.slot}#{run.number} exited early: see {run.log}")
    return any(r.get("message", "").startswith(READY_LINE) for r in records(run.log))


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Chaos:
    """The event loop: kills, pauses, restarts, crash watch."""

    def __init__(self, slots: list[Slot], args: argparse.Namespace, rng: random.Random) -> None:
        self.slots = slots
        self.args = args
        self.rng = rng
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = 0
        self.kills: list[dict[str, Any]] = []
        self.pauses: list[dict[str, Any]] = []
        self.crashes: list[dict[str, Any]] = []

    def at(self, when: float, action: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, action))

    def run_until(self, end: float) -> None:
        while True:
            self.watch()
            now = time.time()
            if self.events and self.events[0][0] <= now:
                _, _, action = heapq.heappop(self.events)
                action()
                continue
            if now >= end and not self.events:
                return
            nxt = self.events[0][0] if self.events else end
            time.sleep(max(0.0, min(nxt - now, 0.5)))

    def watch(self) -> None:
        """Restart a daemon that exited on its own (a crash), and report it."""
        for slot in self.slots:
            run = slot.current
            if run.end is None and run.popen.poll() is not None:
                run.ended, run.end = time.time(), f"crashed rc={run.popen.returncode}"
                self.crashes.append(
                    {
                        "slot": slot.index,
                        "incarnation": run.number,
                        "rc": run.popen.returncode,
                        "at": stamp(run.ended),
                        "log": str(run.log),
                    }
                )
                say(
                    f"  {stamp()} !! daemon {slot.index}#{run.number} exited on its own "
                    f"(rc={run.popen.returncode}); restarting it"
                )
                slot.paused = False
                slot.start()

    def kill_one(self, minute: int) -> None:
        candidates = [s for s in self.slots if not s.paused]
        if not candidates:
            return
        slot = self.rng.choice(candidates)
        run = slot.current
        owners = owners_of(run.log)
        at = slot.kill()
        slot.start()
        self.kills.append(
            {
                "minute": minute,
                "slot": slot.index,
                "incarnation": run.number,
                "at": at,
                "owner": owners[-1] if owners else None,
            }
        )
        say(
            f"  {stamp(at)} kill -9 daemon {slot.index}#{run.number} "
            f"({owners[-1] if owners else '?'}); restarted as #{slot.current.number}"
        )

    def pause_one(self, minute: int) -> None:
        settled = time.time() - 10.0  # not one that is still starting after a kill
        candidates = [s for s in self.slots if not s.paused and s.current.started < settled]
        if not candidates:
            return
        slot = self.rng.choice(candidates)
        run = slot.current
        owners = owners_of(run.log)
        slot.signal(signal.SIGSTOP)
        slot.paused = True
        at = time.time()
        length = 2 * self.args.lease + 1.0
        entry = {
            "minute": minute,
            "slot": slot.index,
            "incarnation": run.number,
            "at": at,
            "length": length,
            "owner": owners[-1] if owners else None,
        }
        self.pauses.append(entry)
        say(f"  {stamp(at)} SIGSTOP daemon {slot.index}#{run.number} for {length:g}s")

        def resume() -> None:
            if slot.current is run:
                slot.signal(signal.SIGCONT)
                entry["resumed"] = time.time()
                say(f"  {stamp()} SIGCONT daemon {slot.index}#{run.number}")
            slot.paused = False

        self.at(at + length, resume)


def analyse(
    *,
    url: str,
    schema: str,
    marks: Path,
    window: list[datetime],
    pipelines: int,
    slots: list[Slot],
    chaos: Chaos,
    lease: float,
) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute(f"SET search_path TO {schema}")
        rows = conn.execute(
            "SELECT run_id, pipeline, release_at, status, error, owner, created, started, ended "
            "FROM workflow_runs WHERE trigger_kind = 'schedule'"
        ).fetchall()
        owner_rows = conn.execute(
            "SELECT owner, state, taken_by, heartbeat, ended FROM workflow_owners"
        ).fetchall()
    by_release: dict[tuple[str, datetime], list[tuple[Any, ...]]] = defaultdict(list)
    runs_by_id = {}
    for row in rows:
        by_release[(row[1], row[2].astimezone(UTC))].append(row)
        runs_by_id[row[0]] = row
    lines: Counter[tuple[str, datetime]] = Counter()
    with contextlib.suppress(FileNotFoundError):
        for line in marks.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                lines[(parts[0], datetime.fromisoformat(parts[1]).astimezone(UTC))] += 1

    expected = [(f"chaos-{i:04d}", at) for i in range(pipelines) for at in window]
    statuses: Counter[str] = Counter()
    twice, lost, other_failed, interrupted_ran = [], [], [], 0
    success_without_mark = []
    for key in expected:
        found = by_release.get(key, [])
        if len(found) > 1 or lines[key] > 1:
            twice.append(
                {
                    "release": f"{key[0]} {key[1].isoformat()}",
                    "runs": len(found),
                    "marks": lines[key],
                    "run_ids": [r[0] for r in found],
                }
            )
        if not found:
            statuses["(no run)"] += 1
            lost.append({"release": f"{key[0]} {key[1].isoformat()}", "why": "never claimed"})
            continue
        run = found[0]
        status, error = run[3], run[4] or ""
        if status == "FAILED" and error.startswith(INTERRUPTED):
            statuses["FAILED interrupted"] += 1
            interrupted_ran += lines[key] > 0
        elif status == "SUCCESS":
            statuses["SUCCESS"] += 1
            if lines[key] == 0:
                success_without_mark.append(run[0])
        else:
            statuses[status] += 1
            why = f"{status}: {error[:200]}" if error else status
            lost.append(
                {
                    "release": f"{key[0]} {key[1].isoformat()}",
                    "why": why,
                    "run_id": run[0],
                    "owner": run[5],
                }
            )
            if status == "FAILED":
                other_failed.append(run[0])

    # Log facts, over every incarnation.
    takeovers: dict[str, list[tuple[float, int, int, Path]]] = defaultdict(list)
    redispatched: dict[tuple[int, int], list[tuple[float, str]]] = defaultdict(list)
    lease_lost, errors = [], Counter()
    for slot in slots:
        for inc in slot.runs:
            for rec in records(inc.log):
                msg = rec.get("message", "")
                when = parse_time(rec["time"]) if "time" in rec else 0.0
                if msg.startswith("took over daemon "):
                    gone = msg[len("took over daemon ") :].split(" ", 1)[0]
                    takeovers[gone].append((when, slot.index, inc.number, inc.log))
                elif msg.startswith("re-dispatching release claimed"):
                    redispatched[(slot.index, inc.number)].append((when, rec.get("run_id", "")))
                elif msg.startswith("lease lost:"):
                    lease_lost.append(
                        {
                            "slot": slot.index,
                            "incarnation": inc.number,
                            "at": stamp(when),
                            "when": when,
                            "message": msg,
                        }
                    )
                if rec.get("level") in ("ERROR", "CRITICAL") and not msg.startswith("lease lost"):
                    errors[msg[:120]] += 1

    kill_rows = []
    for kill in chaos.kills:
        owner = kill["owner"]
        row: dict[str, Any] = {
            "minute": kill["minute"],
            "slot": kill["slot"],
            "at": stamp(kill["at"]),
            "owner": owner,
        }
        seen = sorted(takeovers.get(owner or "", []))
        if seen:
            when, taker_slot, taker_inc, _ = seen[0]
            row["detected_s"] = round(when - kill["at"], 2)
            row["taker"] = f"{taker_slot}#{taker_inc}"
            later = [
                t for t, _, _, _ in sorted(x for o, xs in takeovers.items() for x in xs) if t > when
            ]
            horizon = min([t for t in later if t > when + 0.001] + [when + 5.0])
            orphans = [
                rid
                for t, rid in redispatched[(taker_slot, taker_inc)]
                if when - 0.001 <= t <= horizon
            ]
            starts = [
                runs_by_id[rid][7].timestamp()
                for rid in orphans
                if rid in runs_by_id and runs_by_id[rid][7] is not None
            ]
            row["orphans"] = len(orphans)
            row["orphans_started"] = len(starts)
            if starts:
                row["first_start_s"] = round(min(starts) - kill["at"], 2)
                row["last_start_s"] = round(max(starts) - kill["at"], 2)
        else:
            row["detected_s"] = None
        kill_rows.append(row)

    pause_rows = []
    for pause in chaos.pauses:
        owner = pause["owner"]
        row = {
            "minute": pause["minute"],
            "slot": pause["slot"],
            "at": stamp(pause["at"]),
            "owner": owner,
        }
        seen = sorted(takeovers.get(owner or "", []))
        if seen:
            row["detected_s"] = round(seen[0][0] - pause["at"], 2)
            row["taker"] = f"{seen[0][1]}#{seen[0][2]}"
        noticed = [
            e
            for e in lease_lost
            if e["slot"] == pause["slot"]
            and e["incarnation"] == pause["incarnation"]
            and e["when"] > pause["at"]
        ]
        row["lease_lost_logged"] = noticed[0]["at"] if noticed else None
        row["rejoined"] = bool(noticed) and "joining again as owner" in noticed[0]["message"]
        pause_rows.append(row)

    owners_table = [
        {
            "owner": o,
            "state": s,
            "taken_by": t,
            "heartbeat": h.astimezone(UTC).isoformat() if h else None,
        }
        for o, s, t, h, _ in owner_rows
    ]
    return {
        "expected": len(expected),
        "statuses": dict(statuses),
        "twice": twice,
        "lost": lost,
        "other_failed": other_failed,
        "interrupted": statuses["FAILED interrupted"],
        "interrupted_stage_ran": interrupted_ran,
        "success_without_mark": success_without_mark,
        "runs_outside_window": len(rows) - sum(len(by_release.get(k, [])) for k in expected),
        "kills": kill_rows,
        "pauses": pause_rows,
        "lease_lost": lease_lost,
        "unpaused_lease_lost": [
            e
            for e in lease_lost
            if not any(
                p["slot"] == e["slot"]
                and p["incarnation"] == e["incarnation"]
                and p["at"] < e["when"] < p["at"] + p["length"] + 30
                for p in chaos.pauses
            )
        ],
        "errors": dict(errors.most_common(20)),
        "owners": owners_table,
        "lease": lease,
    }


def report(
    result: dict[str, Any],
    args: argparse.Namespace,
    chaos: Chaos,
    loads: list[tuple[str, tuple[float, float, float]]],
) -> None:
    say()
    say("=" * 78)
    say(
        f"Fleet chaos: {args.daemons} daemons, {args.pipelines} pipelines on '* * * * *', "
        f"{args.minutes} boundaries, lease {args.lease:g}s"
    )
    say("=" * 78)
    st = result["statuses"]
    delays = [k for k in result["kills"] if k.get("detected_s") is not None]
    with_orphans = [k for k in result["kills"] if k.get("orphans_started")]
    rows = [
        ("releases expected", result["expected"]),
        ("run (SUCCESS)", st.get("SUCCESS", 0)),
        ("run twice (must be 0)", len(result["twice"])),
        ("FAILED interrupted (documented)", result["interrupted"]),
        ("  of which the stage had run", result["interrupted_stage_ran"]),
        ("lost (must be 0)", len(result["lost"])),
        ("  never claimed", st.get("(no run)", 0)),
        ("SUCCESS without a marker line", len(result["success_without_mark"])),
        ("kill -9 + restart", len(chaos.kills)),
        ("SIGSTOP past the lease", len(chaos.pauses)),
        ("'lease lost' + rejoin logged", len(result["lease_lost"])),
        ("  by a daemon never paused (must be 0)", len(result["unpaused_lease_lost"])),
        ("daemon crashes (exit on its own)", len(chaos.crashes)),
        ("kills taken over", f"{len(delays)} / {len(chaos.kills)}"),
    ]
    if delays:
        det = [k["detected_s"] for k in delays]
        rows.append(
            (
                "takeover detected after kill (s)",
                f"median {statistics.median(det):.2f}, max {max(det):.2f}",
            )
        )
    if with_orphans:
        first = [k["first_start_s"] for k in with_orphans]
        last = [k["last_start_s"] for k in with_orphans]
        rows.append(("kills with orphaned PENDING runs", len(with_orphans)))
        rows.append(("orphans re-dispatched", sum(k["orphans"] for k in with_orphans)))
        rows.append(
            (
                "kill -> first orphan started (s)",
                f"median {statistics.median(first):.2f}, max {max(first):.2f}",
            )
        )
        rows.append(
            (
                "kill -> last orphan started (s)",
                f"median {statistics.median(last):.2f}, max {max(last):.2f}",
            )
        )
        rows.append(("target: lease + one beat (s)", f"{args.lease * 4 / 3:.2f}"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        say(f"  {name:<{width}}  {value}")
    say()
    say("  statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(st.items())))
    say(
        "  load average (1/5/15 min): "
        + "; ".join(f"{when} {a:.2f}/{b:.2f}/{c:.2f}" for when, (a, b, c) in loads)
    )
    say()
    say("  per kill: minute slot at        detected  orphans  first start  last start  taker")
    for k in result["kills"]:
        say(
            f"    {k['minute']:>4} {k['slot']:>4} {k['at']}  "
            f"{_s(k.get('detected_s')):>8}  {k.get('orphans', 0):>7}  "
            f"{_s(k.get('first_start_s')):>11}  {_s(k.get('last_start_s')):>10}  "
            f"{k.get('taker', '-')}"
        )
    say("\n  per pause: minute slot at        detected  lease lost logged  rejoined  taker")
    for p in result["pauses"]:
        say(
            f"    {p['minute']:>4} {p['slot']:>4} {p['at']}  {_s(p.get('detected_s')):>8}  "
            f"{p['lease_lost_logged'] or '-':>17}  {'yes' if p['rejoined'] else 'NO':>8}  "
            f"{p.get('taker', '-')}"
        )
    for what, items in (
        ("run twice", result["twice"]),
        ("lost", result["lost"]),
        ("lease lost without a pause", result["unpaused_lease_lost"]),
    ):
        if items:
            say(f"\n  {what} ({len(items)}), first 20:")
            for item in items[:20]:
                say(f"    {item}")
    if result["errors"]:
        say("\n  ERROR log lines (other than 'lease lost'), by message:")
        for msg, n in result["errors"].items():
            say(f"    {n:>5}  {msg}")
    if chaos.crashes:
        say("\n  crashes:")
        for crash in chaos.crashes:
            say(f"    {crash}")
    say("\n  owners on the store (state, taken_by):")
    for o in result["owners"]:
        say(f"    {o['owner']:<44} {o['state']:<8} {o['taken_by'] or '-'}")
    verdict = not (
        result["twice"] or result["lost"] or result["unpaused_lease_lost"] or chaos.crashes
    )
    say(f"\n  VERDICT: {'PASS' if verdict else 'FAIL'}")


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=20, help="boundaries in the window")
    parser.add_argument("--pipelines", type=int, default=200)
    parser.add_argument("--daemons", type=int, default=3)
    parser.add_argument("--lease", type=float, default=5.0, help="WORKFLOW_APP_LEASE_SECONDS")
    parser.add_argument("--stage-seconds", type=float, default=0.5)
    parser.add_argument("--slots", type=int, default=10, help="threads of each daemon's worker")
    parser.add_argument("--pause-every", type=int, default=5, help="SIGSTOP every N minutes")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--keep", action="store_true", help="keep the schema and work folder")
    args = parser.parse_args()
    if args.daemons < 2:
        parser.error("--daemons must be at least 2")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    rng = random.Random(seed)

    import psycopg

    base = pg_base(args.pg_url)
    schema = f"wf_chaos_{secrets.token_hex(6)}"
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}&connect_timeout=5"
    work = Path(tempfile.mkdtemp(prefix="wf-chaos-"))
    marks = work / "marks.txt"
    conf = work / "conf"
    conf.mkdir()
    per_file = 50
    for start in range(0, args.pipelines, per_file):
        text = "\n".join(
            PIPELINE.format(i=i, marks=str(marks), sleep=args.stage_seconds)
            for i in range(start, min(start + per_file, args.pipelines))
        )
        (conf / f"chaos-{start:04d}.yml").write_text(text, encoding="utf-8")

    say(f"work folder {work}, schema {schema}, seed {seed}")
    loads = [("start", os.getloadavg())]
    say(f"load average at start: {loads[0][1]}")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    slots = []
    for index in range(args.daemons):
        folder = work / f"daemon-{index}"
        folder.mkdir()
        env = dict(base_env)
        env.update(
            WORKFLOW_ROOT_PATH=str(work),
            WORKFLOW_API_DB_URL=url,
            WORKFLOW_CORE_TIMEZONE="UTC",
            WORKFLOW_APP_PROCESS_WORKER="1",
            WORKFLOW_APP_PIPELINE_PER_PROCESS=str(args.slots),
            WORKFLOW_APP_LEASE_SECONDS=f"{args.lease:g}",
            WORKFLOW_APP_STOP_TIMEOUT="5",
            WORKFLOW_APP_END_JOURNAL=str(folder / "run-ends.jsonl"),
            WORKFLOW_LOG_PATH=str(folder / "logs"),
            PYTHONUNBUFFERED="1",
        )
        slots.append(Slot(index, folder, env, args.python))

    chaos = Chaos(slots, args, rng)
    result: dict[str, Any] | None = None
    window: list[datetime] = []
    try:
        for slot in slots:
            slot.start()
        for slot in slots:
            wait_for(lambda s=slot: ready(s.current), 120, f"daemon {slot.index} ready")
        now = datetime.now(UTC)
        first = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if (first - now).total_seconds() < 5:
            first += timedelta(minutes=1)
        window = [first + timedelta(minutes=i) for i in range(args.minutes)]
        say(
            f"daemons ready; window {window[0]:%H:%M} .. {window[-1]:%H:%M} UTC "
            f"({len(window)} boundaries)"
        )
        pauses = 0
        for minute, boundary in enumerate(window):
            b = boundary.timestamp()
            chaos.at(b + rng.uniform(-0.04, 2.0), lambda m=minute: chaos.kill_one(m))
            if minute % args.pause_every == 2 % args.pause_every and minute < len(window) - 1:
                offset = 1.0 if pauses % 2 == 0 else 60.0 - 0.04
                pauses += 1
                chaos.at(b + offset, lambda m=minute: chaos.pause_one(m))
            if minute == len(window) // 2 and minute < len(window) - 1:
                chaos.at(b + 30, lambda: loads.append(("middle", os.getloadavg())))
        chaos.run_until(window[-1].timestamp() + 3)

        def settled() -> bool:
            chaos.watch()
            with psycopg.connect(base, connect_timeout=5) as conn:
                conn.execute(f"SET search_path TO {schema}")
                (open_runs,) = conn.execute(
                    "SELECT COUNT(*) FROM workflow_runs WHERE trigger_kind = 'schedule' "
                    "AND release_at BETWEEN %s AND %s "
                    "AND status NOT IN ('SUCCESS', 'FAILED', 'CANCELLED', 'SKIPPED')",
                    (window[0], window[-1]),
                ).fetchone()
            return bool(open_runs == 0)

        say(f"  {stamp()} window over; waiting for its runs to end")
        with contextlib.suppress(TimeoutError):
            wait_for(settled, 4 * args.lease + 60, "the window's runs to end")
        loads.append(("end", os.getloadavg()))
    finally:
        for slot in slots:
            if slot.runs:
                slot.stop(20)
    try:
        if window:
            result = analyse(
                url=base,
                schema=schema,
                marks=marks,
                window=window,
                pipelines=args.pipelines,
                slots=slots,
                chaos=chaos,
                lease=args.lease,
            )
            report(result, args, chaos, loads)
            say(
                json.dumps(
                    {
                        "seed": seed,
                        "schema": schema,
                        "work": str(work),
                        "daemons": args.daemons,
                        "pipelines": args.pipelines,
                        "minutes": args.minutes,
                        "lease": args.lease,
                        "loads": loads,
                        "kills": result["kills"],
                        "pauses": result["pauses"],
                        "crashes": chaos.crashes,
                        **{
                            k: result[k]
                            for k in (
                                "expected",
                                "statuses",
                                "interrupted",
                                "interrupted_stage_ran",
                                "runs_outside_window",
                            )
                        },
                        "twice": len(result["twice"]),
                        "lost": len(result["lost"]),
                    },
                    default=str,
                )
            )
    finally:
        if not args.keep:
            with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            shutil.rmtree(work, ignore_errors=True)
    ok = result is not None and not (
        result["twice"] or result["lost"] or result["unpaused_lease_lost"] or chaos.crashes
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
