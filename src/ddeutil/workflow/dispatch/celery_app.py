"""The Celery application the daemon, the API and ``workflow worker`` share.

Both sides build it from the same settings with :func:`celery_app`; the sending
side never imports the worker body (:mod:`.celery_worker`). Celery is the
optional ``celery`` extra: this module imports it only when called.

**The message.** One task, :data:`RUN_TASK`, whose only argument is the
:class:`~ddeutil.workflow.dispatch.records.RunRequest` as JSON values (run id,
pipeline, template version, params, release, attempt, owner); the task id is
the run id. The serializer is JSON and workers accept nothing else, so a
pickle is never loaded. No result backend: the run store is the truth.

**Reliability, on purpose:**

* ``task_acks_late`` and ``worker_prefetch_multiplier=1``: a message is
  acknowledged when its run ended (or was refused), and a worker reserves one
  message per free thread, so a busy worker does not sit on runs another one
  could start.
* ``task_reject_on_worker_lost``: a message whose worker died goes back to the
  queue. Redelivery is harmless: a worker's first step is the conditional start
  in the run store (PENDING to RUNNING only if still PENDING and still the
  dispatching daemon's), so a run that started elsewhere is not started again.
* A Redis ``visibility_timeout`` of ``WORKFLOW_CELERY_VISIBILITY_TIMEOUT`` (one
  day by default): keep it above the longest run, although a second delivery of
  a run that started does nothing. RabbitMQ's equivalent is the server's
  ``consumer_timeout`` (30 minutes by default), set in ``rabbitmq.conf``.
* Long runs keep running when the broker connection drops
  (``worker_cancel_long_running_tasks_on_connection_loss`` off): their outcome
  goes to the run store, not to the broker.
* Celery does not take over logging (``worker_hijack_root_logger`` off): a
  worker logs like the daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import WorkflowError
from ..settings import Settings

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["CANCEL_COMMAND", "RUN_TASK", "celery_app", "safe_broker_url"]

RUN_TASK = "ddeutil.workflow.run"
"""The name of the task that executes one run."""
CANCEL_COMMAND = "workflow_cancel"
"""The remote control command that cancels a running run on whichever worker has it."""


def celery_app(settings: Settings, *, name: str = "ddeutil-workflow") -> Celery:
    """A Celery application on ``WORKFLOW_CELERY_BROKER_URL`` with the settings above.

    Raises:
        WorkflowError: the ``celery`` extra is not installed, or no broker is set.
    """
    try:
        from celery import Celery
    except ImportError:  # pragma: no cover - the extra is installed in tests
        raise WorkflowError(
            "the celery executor needs the celery extra: pip install 'ddeutil-workflow[celery]'"
        ) from None
    if not settings.celery_broker_url:
        raise WorkflowError("the celery executor needs WORKFLOW_CELERY_BROKER_URL")
    app = Celery(name, broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(_conf(settings))
    return app


def _conf(settings: Settings) -> dict[str, Any]:
    return {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.celery_queue,
        "task_create_missing_queues": True,
        "broker_transport_options": {"visibility_timeout": settings.celery_visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_disable_rate_limits": True,
        "timezone": "UTC",
        "enable_utc": True,
    }


def safe_broker_url(url: str | None) -> str:
    """``url`` without its password (for logs and messages)."""
    if not url:
        return "(none)"
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"
