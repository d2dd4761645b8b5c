"""The ``workflow api`` verb: serve the REST API with uvicorn (extra ``api``).

``workflow api [--host 127.0.0.1] [--port 8000]`` is the same application as
``uvicorn ddeutil.workflow.api:app``, built from the settings the CLI already
read, in one process (the API's run pool and its restart recovery assume one
API process per run store). Logging follows the CLI's ``--log-format``; uvicorn's
own loggers propagate to it.

Without FastAPI/uvicorn installed the verb exits 2 and says which extra to
install; the rest of the CLI never imports them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..startup import conf_path_problem
from . import EXIT_OK, EXIT_USAGE, CliContext

__all__ = ["register"]

logger = logging.getLogger(__name__)

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``api`` to the parser."""
    p = sub.add_parser(
        "api",
        help="serve the REST API (needs the `api` extra)",
        description="Serve the REST API with uvicorn in the foreground. Every route but "
        "/health needs `Authorization: Bearer $WORKFLOW_API_TOKEN`; docs at /docs.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    p.set_defaults(handler=_cmd_api)


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {raw!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range 0-65535")
    return value


def _cmd_api(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        import uvicorn

        from ..api import create_app
        from ..api.factory import freeze_long_lived
    except ImportError as exc:
        root: ImportError = exc
        while isinstance(root.__cause__, ImportError):
            root = root.__cause__
        missing = root.name or str(root)
        print(
            "workflow api: the REST API needs the `api` extra: "
            f"pip install 'ddeutil-workflow[api]' (missing: {missing})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    problem = conf_path_problem(ctx.settings)
    if problem is not None:  # as the daemon: a missing conf folder is a start-up error
        print(f"workflow api: {problem}", file=sys.stderr)
        return EXIT_USAGE
    app = create_app(ctx.settings, masker=ctx.masker)
    freeze_long_lived()
    if ctx.settings.api_insecure and not ctx.settings.api_token and args.host not in _LOOPBACK:
        logger.warning(
            "the API runs WITHOUT AUTHENTICATION and listens on %s, not only on loopback",
            args.host,
        )
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, workers=1)
    return EXIT_OK
