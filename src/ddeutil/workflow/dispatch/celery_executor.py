"""The Celery executor: runs go to ``workflow worker`` processes through a broker.

:class:`CeleryExecutor` implements the :class:`~ddeutil.workflow.dispatch.base.Executor`
seam for the daemon and the API when ``WORKFLOW_APP_EXECUTOR=celery``. Policies:

* **Send, never block.** :meth:`CeleryExecutor.submit` queues the request; a
  sender thread publishes it (JSON, persistent, task id = run id) to the
  pipeline's ``queue:`` (default ``WORKFLOW_CELERY_QUEUE``) on a broker
  connection of its own. While the broker does not answer, requests wait in
  order and the sender retries on a new connection (the error is logged once
  per outage): nothing is dropped. Publishing does not wait for a publisher
  confirm per message (that tripled the time to send 10,000 runs to RabbitMQ);
  a message the broker loses is covered by the resend below.
* **The run store is the truth.** No result backend: a poller thread reads the
  state of the runs in flight from the store (one query per 500 runs, every
  :data:`POLL_SECONDS`) and reports ``started`` / ``finished`` events. A run
  whose worker died is recorded FAILED (worker lost) by the daemon that takes
  the worker over (see :mod:`.celery_worker`); the poller then sees it ended.
* **Nothing lost with the broker.** A run still PENDING
  ``WORKFLOW_CELERY_RESEND_SECONDS`` after it was sent is sent again if its
  queue is empty (a broker that keeps nothing on disk loses its queues when it
  restarts); while the queue still holds messages the run waits behind them
  and is not sent again. The wait doubles each time. A second delivery does
  nothing: the worker's conditional start refuses a run that is no longer
  PENDING.
* **Cancel** (:meth:`CeleryExecutor.cancel`): a run not sent yet is recorded
  CANCELLED here; a PENDING one is recorded CANCELLED in the store (so no
  worker starts it) and its message revoked; a running one gets the
  ``workflow_cancel`` command, which cancels its token on the worker that has
  it (recorded CANCELLED there).
* **Stopping** (:meth:`CeleryExecutor.shutdown`): requests submitted are still
  sent, within ``timeout``; those the broker did not take by then stay PENDING
  (dispatched again after a restart, or by the daemon that takes this one
  over). Runs that started get the rest of ``timeout``, then are cancelled on
  their workers; sent runs that did not start are left to the workers.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..clock import Clock, SystemClock
from ..errors import WorkflowError
from ..masking import Masker
from ..result import Status
from ..settings import Settings
from ..store.base import RunStore
from .base import EventBuffer, TemplateSource, TemplateUnavailable, log_extra, template_of
from .celery_app import CANCEL_COMMAND, RUN_TASK, celery_app, safe_broker_url
from .orphans import record_end
from .records import RunEvent, RunRequest

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["CeleryExecutor"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
"""How often the states of the runs in flight are read from the store."""
SEND_BATCH = 500
"""Requests published on one producer before the sender looks at its queue again."""
RETRY_SECONDS = 1.0
"""Wait of the sender between attempts while the broker does not answer."""


@dataclass
class _Flight:
    request: RunRequest
    queue: str
    payload: dict[str, Any]
    sent: bool = False
    started: bool = False
    resend_at: float = 0.0
    resend_every: float = 0.0


class CeleryExecutor:
    """Sends runs to Celery workers and follows them in the run store.

    Args:
        settings: Settings (broker, default queue, resend interval).
        templates: The template of a request's pipeline and version (its
            ``queue:`` key routes the run; an unknown version ends the run FAILED).
        store: The run store the workers record runs in.
        masker: Hides secrets in log lines.
        clock: Time source of the records written here.
        app: The Celery application (default: :func:`~.celery_app.celery_app`).
        cancel_grace: Seconds cancelled runs get at shutdown before it goes on.
        poll: Seconds between two reads of the in-flight runs' states.

    Raises:
        WorkflowError: the ``celery`` extra is not installed.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        templates: TemplateSource,
        store: RunStore,
        masker: Masker | None = None,
        clock: Clock | None = None,
        app: Celery | None = None,
        cancel_grace: float = 5.0,
        poll: float = POLL_SECONDS,
    ) -> None:
        if app is None and importlib.util.find_spec("celery") is None:
            raise WorkflowError(
                "WORKFLOW_APP_EXECUTOR=celery needs the celery extra: "
                "pip install 'ddeutil-workflow[celery]'"
            )
        self._settings = settings
        self._templates = templates
        self._store = store
        self._masker = masker or Masker()
        self._clock = clock or SystemClock()
        self._app = app
        self._owns_app = app is None
        self._grace = cancel_grace
        self._poll = poll
        self._events = EventBuffer()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._outbox: deque[str] = deque()
        self._flights: dict[str, _Flight] = {}
        self._started = False
        self._closing = False
        self._broker_down = False
        self._store_down = False
        self._connection: Any = None
        self._producer_: Any = None
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        broker = safe_broker_url(self._settings.celery_broker_url)
        return f"CeleryExecutor(broker={broker}, in_flight={self.in_flight()})"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect the Celery app and start the sender and poller threads. Idempotent."""
        with self._lock:
            if self._started or self._closing:
                return
            self._started = True
        if self._app is None:
            self._app = celery_app(self._settings)
        for target, name in ((self._send_loop, "celery-send"), (self._poll_loop, "celery-poll")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info(
            "celery executor: broker %s, default queue %s",
            safe_broker_url(self._settings.celery_broker_url),
            self._settings.celery_queue,
        )

    def shutdown(self, timeout: float, *, reason: str | None = None) -> None:
        """Stop taking work; wait up to ``timeout`` for started runs; cancel them. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        deadline = time.monotonic() + max(timeout, 0.0)
        # What was submitted is sent first (the sender goes on), within the timeout.
        self._wait(lambda: not self._outbox, deadline)
        with self._lock:
            unsent = [self._flights.pop(run_id) for run_id in self._outbox]
            self._outbox.clear()
            self._wake.notify_all()
        if unsent:
            logger.warning(
                "stopping: %d run(s) not sent to the broker; they stay PENDING and are "
                "dispatched after a restart",
                len(unsent),
            )
        self._poll_sent()  # which of them started: the poller may not have looked yet
        if not self._wait(lambda: not self._running_locked(), deadline):
            why = reason or f"stopping: not finished within {timeout:g}s"
            with self._lock:
                running = [f.request.run_id for f in self._flights.values() if f.started]
            logger.warning("stopping: cancelling %d run(s) on their workers: %s", len(running), why)
            for run_id in running:
                self._broadcast_cancel(run_id, why)
            self._wait(lambda: not self._running_locked(), time.monotonic() + self._grace)
        with self._lock:
            self._started = False
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._disconnect()
        if self._owns_app and self._app is not None:
            self._app.close()
        self._events.close()

    # ------------------------------------------------------------ work

    def submit(self, request: RunRequest) -> None:
        """Queue ``request`` for the broker (never blocks, never drops it)."""
        if not self._started:
            self.start()
        try:
            template = template_of(self._templates, request)
            payload = json.loads(request.to_json())  # JSON values only, as the worker reads them
        except TemplateUnavailable as exc:
            self._end_now(request, Status.FAILED, str(exc), kind="DispatchError")
            return
        except (TypeError, ValueError) as exc:
            message = f"run cannot be sent: {type(exc).__name__}: {exc}"
            self._end_now(request, Status.FAILED, message, kind="DispatchError")
            return
        queue = template.data.get("queue") or self._settings.celery_queue
        with self._lock:
            if self._closing:
                logger.warning(
                    "executor is shut down: run not sent, it stays PENDING",
                    extra=log_extra(request),
                )
                return
            self._flights[request.run_id] = _Flight(request, str(queue), payload)
            self._outbox.append(request.run_id)
            self._wake.notify_all()

    def cancel(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel one run (see the module docstring); ``False`` when it is not in flight here."""
        with self._lock:
            flight = self._flights.get(run_id)
            if flight is None:
                return False
            unsent = not flight.sent
            if unsent:
                self._outbox.remove(run_id)
                del self._flights[run_id]
        message = f"cancelled before it started: {reason}"
        if unsent:
            self._end_now(flight.request, Status.CANCELLED, message, kind="Cancelled")
            return True
        state = self._store.run_states([run_id]).get(run_id)
        if state is not None and state.status is Status.PENDING:
            record_end(
                self._store,
                run_id,
                Status.CANCELLED,
                message,
                kind="Cancelled",
                now=self._clock.now(),
                owner=flight.request.owner,
            )
        self._broadcast_cancel(run_id, reason)
        return True

    def cancel_all(self, reason: str) -> None:
        """Cancel every run in flight here."""
        with self._lock:
            run_ids = list(self._flights)
        for run_id in run_ids:
            self.cancel(run_id, reason)

    def drain_events(self) -> list[RunEvent]:
        return self._events.drain()

    def wait_event(self, timeout: float) -> bool:
        return self._events.wait(timeout)

    def capacity(self) -> int:
        """Not known here (the workers have the slots); a large number."""
        return 1 << 30

    def in_flight(self) -> int:
        with self._lock:
            return len(self._flights)

    # ------------------------------------------------------------ sender

    def _send_loop(self) -> None:
        self._warm_up()
        while True:
            with self._lock:
                while self._started and not self._outbox:
                    self._wake.wait()
                if not self._started:
                    return
                batch = [self._flights[r] for r in list(self._outbox)[:SEND_BATCH]]
            sent = self._publish(batch)
            now = time.monotonic()
            with self._lock:
                for flight in batch[:sent]:
                    if self._outbox and self._outbox[0] == flight.request.run_id:
                        self._outbox.popleft()
                    else:  # cancelled meanwhile
                        with_id = flight.request.run_id
                        if with_id in self._outbox:
                            self._outbox.remove(with_id)
                    flight.sent = True
                    flight.resend_every = (
                        flight.resend_every or self._settings.celery_resend_seconds
                    )
                    flight.resend_at = now + flight.resend_every
                self._wake.notify_all()  # a stopping executor waits for the outbox
                if sent < len(batch):
                    self._wake.wait(RETRY_SECONDS)  # the broker does not answer: retry

    def _warm_up(self) -> None:
        """Load the broker's transport and connect before the first run is sent."""
        try:
            self._producer()
        except Exception as exc:  # the first send reports it (once per outage)
            logger.debug("broker not reached at start: %s", exc)

    def _producer(self) -> Any:
        """The sender thread's producer, on a connection of its own (made when needed)."""
        if self._producer_ is None:
            app = self._app
            assert app is not None
            connection = app.connection_for_write()
            try:
                connection.ensure_connection(max_retries=1)
                self._producer_ = app.amqp.Producer(connection, auto_declare=False)
            except BaseException:
                connection.release()
                raise
            self._connection = connection
        return self._producer_

    def _disconnect(self) -> None:
        connection, self._connection, self._producer_ = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception as exc:
                logger.debug("closing the broker connection: %s", exc)

    def _publish(self, batch: list[_Flight]) -> int:
        """Publish ``batch`` in order; return how many were published."""
        app = self._app
        assert app is not None
        done = 0
        try:
            producer = self._producer()
            for flight in batch:
                app.send_task(
                    RUN_TASK,
                    args=[flight.payload],
                    task_id=flight.request.run_id,
                    queue=flight.queue,
                    producer=producer,
                    retry=True,
                    retry_policy={"max_retries": 2, "interval_start": 0.2},
                )
                done += 1
        except Exception as exc:
            self._disconnect()  # the next attempt connects again
            if not self._broker_down:
                logger.error(
                    "the broker %s does not answer (%s: %s); %d run(s) wait to be sent, "
                    "retrying every %gs",
                    safe_broker_url(self._settings.celery_broker_url),
                    type(exc).__name__,
                    exc,
                    len(batch) - done,
                    RETRY_SECONDS,
                )
            self._broker_down = True
            return done
        if self._broker_down:
            logger.warning("the broker answers again: sending the waiting runs")
            self._broker_down = False
        return done

    # ------------------------------------------------------------ poller

    def _poll_loop(self) -> None:
        while True:
            with self._lock:
                if not self._started:
                    return
            self._poll_sent()
            with self._lock:
                if self._started:
                    self._wake.wait(self._poll)

    def _poll_sent(self) -> None:
        with self._lock:
            sent = [f for f in self._flights.values() if f.sent]
        if not sent:
            return
        try:
            self._poll_once(sent)
        except Exception as exc:
            if not self._store_down:  # once per outage
                logger.warning(
                    "reading the states of runs in flight failed (retried every %gs): %s",
                    self._poll,
                    exc,
                )
            self._store_down = True
        else:
            if self._store_down:
                logger.info("the states of runs in flight are read again")
            self._store_down = False

    def _poll_once(self, flights: list[_Flight]) -> None:
        states = self._store.run_states([f.request.run_id for f in flights])
        events: list[RunEvent] = []
        overdue: list[_Flight] = []
        now = time.monotonic()
        with self._lock:
            for flight in flights:
                run_id = flight.request.run_id
                if self._flights.get(run_id) is not flight:
                    continue
                state = states.get(run_id)
                if state is None:
                    del self._flights[run_id]
                    events.append(RunEvent("finished", run_id, None, "the run is not in the store"))
                elif state.status.is_terminal:
                    del self._flights[run_id]
                    if not flight.started:
                        events.append(RunEvent("started", run_id))
                    events.append(RunEvent("finished", run_id, state.status, state.error))
                elif state.status is Status.RUNNING:
                    if not flight.started:
                        flight.started = True
                        events.append(RunEvent("started", run_id))
                elif now >= flight.resend_at and not self._closing:
                    overdue.append(flight)
            self._wake.notify_all()
        self._events.extend(events)
        if overdue:
            self._resend(overdue, now)

    def _resend(self, overdue: list[_Flight], now: float) -> None:
        """Send overdue runs again, unless their queue still holds messages.

        Runs still waiting behind a long queue are not lost: their messages are
        there. Only a queue that is empty while its runs are still PENDING (the
        broker lost them) gets them again; the wait doubles either way.
        """
        by_queue: dict[str, list[_Flight]] = {}
        for flight in overdue:
            by_queue.setdefault(flight.queue, []).append(flight)
        waiting = {queue: self._queued(queue) for queue in by_queue}
        with self._lock:
            for queue, flights in by_queue.items():
                for flight in flights:
                    if self._flights.get(flight.request.run_id) is not flight:
                        continue
                    flight.resend_every *= 2
                    flight.resend_at = now + flight.resend_every
                    if waiting[queue] == 0:
                        self._resend_locked(flight)
                if waiting[queue]:
                    logger.info(
                        "%d run(s) not started yet wait behind %d message(s) in queue %s: "
                        "not sent again",
                        len(flights),
                        waiting[queue],
                        queue,
                    )
            self._wake.notify_all()

    def _queued(self, queue: str) -> int:
        """Messages ready in ``queue`` (0 when the broker cannot tell: then send again)."""
        app = self._app
        assert app is not None
        try:
            with app.connection_for_write() as connection:
                declared = connection.default_channel.queue_declare(queue, passive=True)
                return int(declared.message_count)
        except Exception as exc:
            logger.debug("queue %s not measured: %s", queue, exc)
            return 0

    def _resend_locked(self, flight: _Flight) -> None:
        logger.warning(
            "run not started %gs after it was sent, and its queue is empty: sending it again "
            "(the broker lost the message; a second delivery does nothing)",
            flight.resend_every / 2,
            extra=log_extra(flight.request),
        )
        flight.sent = False
        self._outbox.append(flight.request.run_id)

    # ------------------------------------------------------------ internals

    def _broadcast_cancel(self, run_id: str, reason: str) -> None:
        app = self._app
        if app is None:
            return
        try:
            app.control.revoke(run_id)
            app.control.broadcast(CANCEL_COMMAND, arguments={"run_id": run_id, "reason": reason})
        except Exception as exc:
            logger.warning(
                "could not send the cancel to the workers: %s", exc, extra={"run_id": run_id}
            )

    def _end_now(self, request: RunRequest, status: Status, message: str, *, kind: str) -> None:
        log = logger.warning if status is Status.CANCELLED else logger.error
        log("run not started: %s", message, extra=log_extra(request))
        record_end(
            self._store,
            request.run_id,
            status,
            message,
            kind=kind,
            now=self._clock.now(),
            owner=request.owner,
        )
        self._events.put(RunEvent("finished", request.run_id, status, message))

    def _running_locked(self) -> bool:
        return any(f.started for f in self._flights.values())

    def _wait(self, done: Callable[[], bool], deadline: float) -> bool:
        with self._lock:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, self._poll))
            return True
