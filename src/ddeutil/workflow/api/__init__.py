"""The REST API (extra ``api``): ``uvicorn ddeutil.workflow.api:app``.

``app`` is built on first access (module ``__getattr__``), so importing this
package builds nothing; that first access reads the settings from the
environment once, configures logging (this is an entry point) and calls
:func:`create_app`. Tests and embedding applications call :func:`create_app`
with their own settings, store, clock or executor instead.

Routes (see ``/docs`` for the OpenAPI document):

=======  =====================================  ==========================================
GET      ``/health``                            store reachability, scheduler heartbeat age
GET      ``/api/v1/pipelines``                  pipelines, params, next fire times
GET      ``/api/v1/pipelines/{name}``           one pipeline with its params schema
POST     ``/api/v1/pipelines/{name}/runs``      trigger: 202 + run id + ``Location``
GET      ``/api/v1/runs``                       history: filters and paging
GET      ``/api/v1/runs/{run_id}``              status and result (``?wait=`` long-poll)
GET      ``/api/v1/runs/{run_id}/logs``         the run's log lines
=======  =====================================  ==========================================

Requires FastAPI and uvicorn: ``pip install 'ddeutil-workflow[api]'``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        f"the REST API needs the `api` extra: pip install 'ddeutil-workflow[api]' ({exc})"
    ) from exc

from .factory import create_app, freeze_long_lived

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["app", "create_app"]


@functools.cache
def _default_app() -> FastAPI:
    """Build the module-level ``app`` from the environment.

    A bad setting (no ``WORKFLOW_API_TOKEN`` among them) or a conf folder that is
    not there prints one line,
    ``workflow: error: ...``, to stderr and exits 2, exactly as ``workflow api``
    does, instead of a traceback out of uvicorn's importer.
    """
    import os
    import sys

    from ..errors import SettingsError
    from ..logs import configure_logging
    from ..masking import Masker
    from ..settings import Settings
    from ..startup import conf_path_problem, warn_unknown_variables

    try:
        settings = Settings.from_env()
        problem = conf_path_problem(settings)
        if problem is not None:  # as the daemon: a missing conf folder is a start-up error
            print(f"workflow: error: {problem}", file=sys.stderr)
            raise SystemExit(2)
        masker = Masker.from_env(os.environ)
        configure_logging(fmt="auto", level=settings.log_level, masker=masker)
        warn_unknown_variables(os.environ)
        app = create_app(settings, masker=masker)
    except SettingsError as exc:
        print(f"workflow: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    freeze_long_lived()
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
