"""Where a worker process starts: a tiny module the daemon's process can import.

The daemon names :func:`run_worker` as the target of its worker processes, so
importing it must not load the engine (the daemon's process never does); the
body (:mod:`.worker`, engine and store included) is imported in the worker. The
forkserver preloads that body (see :data:`~ddeutil.workflow.dispatch.processes.PRELOAD`),
so a new worker finds it imported and shares its pages.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

from .wire import WorkerConfig

__all__ = ["run_worker"]


def run_worker(requests: Connection, events: Connection, config: WorkerConfig) -> None:
    """Run the body of a worker process (:func:`~ddeutil.workflow.dispatch.worker.worker_main`)."""
    from .worker import worker_main

    worker_main(requests, events, config)
