"""The daemon's validator: pipeline templates are validated in a helper process.

Validating a pipeline template builds the engine's ``Pipeline``, and importing
the engine costs the daemon's parent process tens of megabytes it has no other
use for. :class:`ProcessValidator` keeps one long-lived helper process (started
from a ``forkserver`` context by default, never forked from the multi-threaded
daemon) whose body imports the engine, validates the templates sent to it and
returns their scheduling facts. Policies:

* **One conf index per call, templates in batches.** Each :meth:`validate` call
  sends the loader's index once (pickled: no file is read again, so the helper
  sees exactly what the daemon read), then the template names in batches of
  ``batch`` (startup with 1,000 templates is a handful of round trips).
* **Plain data back.** Schedules come back as ``(cron, zone, name, jitter)`` and are
  rebuilt here as :class:`~ddeutil.workflow.schedules.cron_schedule.CronSchedule` records (no pydantic in
  the daemon; schedules sharing an expression and a zone share their compiled
  form); errors come back as located ConfigErrors.
* **Bounded waits.** Starting (until the helper has imported the engine),
  sending and each batch have a timeout. A helper that dies, stops answering or
  cannot be started is killed and restarted **once** per call, and the batch is
  tried again; if that fails too, the templates not validated get a ConfigError
  saying so (the catalog then keeps their last good version) and the next call
  starts a fresh helper. Every failure is logged with its cause (exit status,
  timeout). The daemon never hangs on the helper.
* **The helper exits with the daemon**: it reads from the pipe and returns at
  end of file, so it outlives the daemon by no more than its current batch. It
  ignores SIGINT (a Ctrl-C reaches the daemon, which closes it).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import signal
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..schedules.cron_schedule import CronSchedule
from ..schedules.planner import Catchup
from .validation import Concurrency, Outcome, PipelineFacts, pipeline_facts

if TYPE_CHECKING:
    from ..loader import Loader, RawTemplate
    from ..settings import Settings

__all__ = ["ProcessValidator"]

logger = logging.getLogger(__name__)

_DIRECT_SEND = 32 * 1024
"""Messages up to this size fit the (empty) pipe buffer: sent without a helper thread."""

# Wire records (pickled): an outcome is ("ok", specs, concurrency, catchup,
# defaults, unschedulable) or ("error", class, args, attributes).
_Wire = tuple[Any, ...]


class _HelperFailed(Exception):  # noqa: N818 - internal signal, never leaves this module
    """The helper died, timed out or could not be started; the message says which."""


class ProcessValidator:
    """Validates pipeline templates in a long-lived helper process.

    Args:
        batch: Templates per round trip.
        timeout: Seconds one batch (or sending the conf index) may take.
        start_timeout: Seconds the helper may take to start and import the engine.
        method: The ``multiprocessing`` start method (``forkserver`` or ``spawn``).

    Thread-safe (calls are serialised). Close it with :meth:`close` (or use it as
    a context manager).
    """

    def __init__(
        self,
        *,
        batch: int = 250,
        timeout: float = 60.0,
        start_timeout: float = 60.0,
        method: str = "forkserver",
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self._batch = batch
        self._timeout = timeout
        self._start_timeout = start_timeout
        self._ctx: Any = multiprocessing.get_context(method)
        self._lock = threading.Lock()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self.starts = 0
        """Helper processes started so far (tests and logs)."""

    def __enter__(self) -> ProcessValidator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc is not None else None
        return f"ProcessValidator(pid={pid}, starts={self.starts})"

    @property
    def pid(self) -> int | None:
        """The helper's process id (``None`` when none is running)."""
        return self._proc.pid if self._proc is not None else None

    # ------------------------------------------------------------------ API

    def validate(
        self, templates: Sequence[RawTemplate], loader: Loader, settings: Settings
    ) -> list[Outcome]:
        """One outcome per template, in order (see :class:`.validation.Validator`)."""
        if not templates:
            return []
        with self._lock:
            return self._validate(templates, loader, settings)

    def close(self) -> None:
        """Stop the helper (asked first, then terminated, then killed). Idempotent."""
        with self._lock:
            self._stop(graceful=True)

    # ------------------------------------------------------------- internals

    def _validate(
        self, templates: Sequence[RawTemplate], loader: Loader, settings: Settings
    ) -> list[Outcome]:
        try:
            conf = pickle.dumps(("conf", loader, settings), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a value YAML could not produce; never fatal
            reason = f"cannot be sent to the validation process ({type(exc).__name__}: {exc})"
            logger.error("the conf index %s", reason)
            return [t.error(reason) for t in templates]
        outcomes: list[Outcome] = []
        restarted = False
        sent = False
        start = 0
        while start < len(templates):
            chunk = templates[start : start + self._batch]
            try:
                if self._conn is None:
                    self._start()
                    sent = False
                if not sent:
                    self._send(conf, what="the conf index")
                    sent = True
                outcomes.extend(self._ask(chunk))
                start += len(chunk)
            except _HelperFailed as exc:
                self._stop(graceful=False)
                names = _span(chunk)
                if not restarted:
                    restarted = True
                    logger.error(
                        "pipeline validation process failed while validating %s: %s; "
                        "restarting it once",
                        names,
                        exc,
                    )
                    continue
                left = templates[start:]
                logger.error(
                    "pipeline validation process failed again while validating %s: %s; "
                    "%d template(s) are not validated this time (a pipeline loaded before "
                    "keeps its last good version); the next reload starts a new process",
                    names,
                    exc,
                    len(left),
                )
                reason = f"cannot be validated: the validation process failed ({exc})"
                outcomes.extend(t.error(reason) for t in left)
                break
        return outcomes

    def _ask(self, chunk: Sequence[RawTemplate]) -> list[Outcome]:
        message = pickle.dumps(("validate", [t.name for t in chunk]))
        self._send(message, what=f"a batch of {len(chunk)} template(s)")
        reply = self._receive(self._timeout, what=f"validating {len(chunk)} template(s)")
        if not isinstance(reply, list) or len(reply) != len(chunk):
            raise _HelperFailed(f"unexpected reply {type(reply).__name__}")
        return [_from_wire(wire, template) for wire, template in zip(reply, chunk, strict=True)]

    def _start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_helper_main, args=(child,), name="workflow-validator", daemon=True
        )
        started = time.monotonic()
        try:
            proc.start()
        except Exception as exc:
            parent.close()
            child.close()
            raise _HelperFailed(f"cannot start it: {type(exc).__name__}: {exc}") from exc
        child.close()  # our copy: the helper's death must read as end of file here
        self._proc, self._conn = proc, parent
        self.starts += 1
        reply = self._receive(self._start_timeout, what="starting")
        if reply != "ready":
            raise _HelperFailed(f"unexpected first message {reply!r}")
        logger.info(
            "pipeline validation process %s ready in %.2fs",
            proc.pid,
            time.monotonic() - started,
        )

    def _send(self, data: bytes, *, what: str) -> None:
        conn = self._conn
        assert conn is not None
        if len(data) <= _DIRECT_SEND:
            try:
                conn.send_bytes(data)
            except OSError as exc:
                raise _HelperFailed(f"{self._exit()} (sending {what}: {exc})") from exc
            return
        # a large message blocks until the helper reads it: bound that wait
        failure: list[BaseException] = []

        def send() -> None:
            try:
                conn.send_bytes(data)
            except BaseException as exc:
                failure.append(exc)

        sender = threading.Thread(target=send, name="workflow-validator-send", daemon=True)
        sender.start()
        sender.join(self._timeout)
        if sender.is_alive():
            raise _HelperFailed(f"it did not read {what} within {self._timeout:g}s")
        if failure:
            raise _HelperFailed(f"{self._exit()} (sending {what}: {failure[0]})")

    def _receive(self, timeout: float, *, what: str) -> Any:
        conn = self._conn
        assert conn is not None
        try:
            ready = conn.poll(timeout)
            if not ready:
                raise _HelperFailed(f"no answer within {timeout:g}s ({what})")
            return pickle.loads(conn.recv_bytes())  # noqa: S301 - our own helper's pipe
        except (EOFError, OSError) as exc:
            raise _HelperFailed(f"{self._exit()} ({what})") from exc

    def _exit(self) -> str:
        """How the helper ended (it is given a moment to be reaped)."""
        proc = self._proc
        if proc is None:
            return "no process"
        proc.join(1.0)
        code = proc.exitcode
        if code is None:
            return f"process {proc.pid} closed its pipe"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"process {proc.pid} was killed by {name}"
        return f"process {proc.pid} exited with status {code}"

    def _stop(self, *, graceful: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            if graceful and proc is not None and proc.is_alive():
                with contextlib.suppress(OSError):
                    conn.send_bytes(pickle.dumps(("stop",)))
            conn.close()
        if proc is None:
            return
        proc.join(2.0 if graceful else 0.0)
        if proc.is_alive():
            proc.terminate()
            proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)
        if not proc.is_alive():
            proc.close()


def _span(chunk: Sequence[RawTemplate]) -> str:
    if len(chunk) == 1:
        return f"template {chunk[0].name!r}"
    return f"templates {chunk[0].name!r} .. {chunk[-1].name!r} ({len(chunk)})"


def _from_wire(wire: _Wire, template: RawTemplate) -> Outcome:
    if wire[0] == "ok":
        _, specs, concurrency, catchup, defaults, unschedulable = wire
        schedules = tuple(CronSchedule.parse(*spec) for spec in specs)
        return PipelineFacts(
            schedules=schedules,
            concurrency=Concurrency(concurrency),
            catchup=Catchup(catchup),
            defaults=defaults,
            unschedulable=unschedulable,
        )
    _, cls, args, attributes = wire
    error: ConfigError = cls.__new__(cls)
    error.args = args
    error.__dict__.update(attributes)
    return error.located(file=str(template.file), template=template.name)


# ------------------------------------------------------------------- the helper


def _to_wire(outcome: Outcome) -> _Wire:
    if isinstance(outcome, PipelineFacts):
        specs = tuple((str(s.cronjob), s.timezone.key, s.name, s.jitter) for s in outcome.schedules)
        wire: _Wire = (
            "ok",
            specs,
            outcome.concurrency.value,
            outcome.catchup.value,
            dict(outcome.defaults),
            outcome.unschedulable,
        )
    else:
        wire = ("error", type(outcome), outcome.args, dict(vars(outcome)))
    try:
        pickle.dumps(wire, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # e.g. a param default of a type pickle cannot send
        text = f"{outcome}" if isinstance(outcome, ConfigError) else "its scheduling facts"
        message = f"{text} cannot be sent to the scheduler ({type(exc).__name__}: {exc})"
        wire = ("error", ConfigError, (message,), dict(vars(ConfigError(message))))
    return wire


def _helper_main(conn: Connection) -> None:
    """Body of the helper process: answer requests until end of file or ``stop``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import ddeutil.workflow.engine.pipeline  # noqa: F401 - the cost is paid once, here

    conn.send_bytes(pickle.dumps("ready"))
    loader: Loader | None = None
    settings: Settings | None = None
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())  # noqa: S301 - the daemon's pipe
        except (EOFError, OSError):
            return
        if message[0] == "conf":
            _, loader, settings = message
        elif message[0] == "validate":
            assert loader is not None
            assert settings is not None
            reply = []
            for name in message[1]:
                try:
                    outcome = pipeline_facts(loader.get(name), loader, settings)
                except ConfigError as exc:  # the name is not in the index sent
                    outcome = exc
                reply.append(_to_wire(outcome))
            conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
        else:
            return
