"""The ``tasks`` hook group used by the engine tests (``uses: tasks/<name>@<tag>``).

``CALLS`` records every call (thread-safe append) so tests can see what ran;
``GATE`` lets a test hold hooks until it releases them.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from ddeutil.workflow.cancellation import CancelToken
from ddeutil.workflow.registry import tag

CALLS: list[tuple[str, Any]] = []
GATE = threading.Event()
WAIT_DONE = threading.Event()
ATTEMPTS: dict[str, int] = {}


def reset() -> None:
    """Forget calls and attempts, close the gate."""
    CALLS.clear()
    ATTEMPTS.clear()
    GATE.clear()
    WAIT_DONE.clear()


@tag("polars", alias="postgres-to-delta")
def postgres_to_delta(source: dict[str, Any], sink: dict[str, Any]) -> dict[str, Any]:
    CALLS.append(("postgres-to-delta", source))
    return {"source": source, "sink": sink, "rows": 42}


@tag("odbc", alias="mssql-proc")
def odbc_mssql_procedure(_exec: str, params: dict[str, Any]) -> dict[str, Any]:
    """The seed's hook: ``_exec`` is passed as ``exec:``."""
    return {"exec": _exec, "params": params}


@tag("polars", alias="el-csv-to-parquet")
def el_csv(table: str) -> dict[str, Any]:
    CALLS.append(("csv", table))
    return {"system": "csv", "table": table}


@tag("polars", alias="el-json-to-parquet")
def el_json(table: str) -> dict[str, Any]:
    CALLS.append(("json", table))
    return {"system": "json", "table": table}


@tag("v1")
def returns_list() -> Any:
    return [1, 2, 3]


@tag("v1")
def raises(message: str = "boom") -> dict[str, Any]:
    raise ValueError(message)


@tag("v1")
def raises_base(kind: str) -> dict[str, Any]:
    """Raises what ``except Exception`` does not catch (``asyncio`` loaded only here)."""
    import asyncio

    kinds: dict[str, type[BaseException]] = {
        "interrupt": KeyboardInterrupt,
        "cancelled": asyncio.CancelledError,
        "exit": SystemExit,
    }
    raise kinds[kind](f"{kind} from the hook")


@tag("v1")
def record(value: Any = None) -> dict[str, Any]:
    CALLS.append(("record", value))
    return {"value": value}


@tag("v1")
def flaky(key: str, failures: int) -> dict[str, Any]:
    """Fails ``failures`` times for ``key``, then succeeds."""
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] <= failures:
        raise RuntimeError(f"attempt {ATTEMPTS[key]} failed")
    return {"attempts": ATTEMPTS[key]}


@tag("v1")
def wait_cancel(cancel_token: CancelToken, limit: float = 10.0) -> dict[str, Any]:
    """Blocks until its cancel token fires (bounded by ``limit``)."""
    cancelled = cancel_token.wait(limit)
    CALLS.append(("wait_cancel", cancelled))
    WAIT_DONE.set()
    return {"cancelled": cancelled}


@tag("v1")
def fail_and_cancel(cancel_token: CancelToken) -> dict[str, Any]:
    """Cancels the run it belongs to, then fails (to test that retry waits end on cancel)."""
    CALLS.append(("fail_and_cancel", None))
    cancel_token.cancel("hook cancelled the run")
    raise RuntimeError("failed after cancelling")


@tag("v1")
def gated(name: str, fail: bool = False, limit: float = 10.0) -> dict[str, Any]:
    """Fails at once when ``fail``; otherwise waits for ``GATE`` (bounded by ``limit``)."""
    CALLS.append(("gated", name))
    if fail:
        raise RuntimeError(f"{name} failed")
    if not GATE.wait(limit):
        raise TimeoutError("gate never opened")
    return {"name": name}


BARRIER: list[threading.Barrier] = []


@tag("v1")
def rendezvous(name: str) -> dict[str, Any]:
    """Waits at ``BARRIER[0]``: succeeds only when its partners run at the same time."""
    BARRIER[0].wait()
    return {"name": name}


@tag("v1")
def assign(x: int) -> dict[str, Any]:
    return {"y": x + 1}


@tag("v1")
def interrupt_when_ready(fifo: str, cancel_token: CancelToken) -> dict[str, Any]:
    """Waits until a script writes to ``fifo``, then sends the main thread SIGINT (Ctrl-C).

    A real Ctrl-C interrupts the main thread; a ``KeyboardInterrupt`` a hook
    raises itself is that stage's failure, not an interrupt.
    """
    with open(fifo) as fh:  # noqa: PTH123 - a FIFO, read once
        fh.read()
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
    cancel_token.wait(10)  # the interrupted main thread cancels the run
    return {}
