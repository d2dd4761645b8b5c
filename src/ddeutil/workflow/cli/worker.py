"""``workflow worker``: run pipeline runs sent through Celery (the ``celery`` extra).

The worker reads the same settings as the daemon: the conf folder
(``WORKFLOW_CORE_PATH_CONF``), the run store (``WORKFLOW_API_DB_URL``: PostgreSQL
when workers run on other machines) and the broker
(``WORKFLOW_CELERY_BROKER_URL``). See :mod:`ddeutil.workflow.dispatch.celery_worker`.
"""

from __future__ import annotations

import argparse
import sys

from ..settings import QUEUE_NAME, QUEUE_RULE
from . import EXIT_USAGE, CliContext, positive_int

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``worker`` to the parser."""
    p = sub.add_parser(
        "worker",
        help="run pipeline runs sent through Celery (needs the `celery` extra)",
        description="Start a Celery worker that executes the pipeline runs the daemon and "
        "the API send when WORKFLOW_APP_EXECUTOR=celery. It reads the same conf folder, "
        "run store and broker settings. SIGTERM stops it: running runs get "
        "WORKFLOW_APP_STOP_TIMEOUT seconds, then are cancelled.",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        default=None,
        help="runs executed at once, on threads (default WORKFLOW_APP_PIPELINE_PER_PROCESS)",
    )
    p.add_argument(
        "--queues",
        type=_queues,
        default=None,
        help="comma-separated queues to take runs from (default WORKFLOW_CELERY_QUEUE)",
    )
    p.set_defaults(handler=_cmd_worker)


def _queues(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected at least one queue name")
    for name in names:
        if not QUEUE_NAME.fullmatch(name):
            raise argparse.ArgumentTypeError(f"queue {name!r}: {QUEUE_RULE}")
    return names


def _cmd_worker(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = ctx.settings
    if not settings.celery_broker_url:
        print(
            "workflow worker: WORKFLOW_CELERY_BROKER_URL is not set "
            "(amqp://... for RabbitMQ, redis://... for Redis)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        import celery  # noqa: F401
    except ImportError:
        print(
            "workflow worker: needs the celery extra: pip install 'ddeutil-workflow[celery]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from ..dispatch.celery_worker import serve_worker

    return serve_worker(
        settings,
        ctx.masker,
        concurrency=args.concurrency or settings.app_pipeline_per_process,
        queues=args.queues or (settings.celery_queue,),
        log_level=args.log_level or settings.log_level,
    )
