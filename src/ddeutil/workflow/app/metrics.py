"""The daemon's metrics port: a Prometheus meter served over HTTP when asked for.

With ``WORKFLOW_APP_METRICS_PORT`` set (``0`` or empty: off, the default) the
daemon builds a :class:`~ddeutil.workflow.prometheus.PrometheusMeter`, hands it to
its scheduler and worker processes, and serves it in the Prometheus text format
on ``WORKFLOW_APP_METRICS_HOST`` (default ``127.0.0.1``), on any path, without
authentication: the metrics carry counts and durations, and pipeline names
as the only strings. Without the port nothing here imports
``prometheus_client``.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..clock import Clock
from ..errors import WorkflowError
from ..settings import Settings

if TYPE_CHECKING:
    from ..prometheus import MetricsServer, PrometheusMeter

__all__ = ["DaemonMetrics", "MetricsUnavailable", "start_metrics"]

logger = logging.getLogger(__name__)


class MetricsUnavailable(WorkflowError):  # noqa: N818 - reads as what happened
    """The metrics port was asked for but cannot be served (extra missing, port taken)."""

    def __init__(self, message: str, *, usage: bool) -> None:
        super().__init__(message)
        self.usage = usage
        """True when the installation or a setting is at fault (exit 2), else 1."""


@dataclass(frozen=True)
class DaemonMetrics:
    """The daemon's meter and the server that exposes it."""

    meter: PrometheusMeter
    server: MetricsServer

    def close(self) -> None:
        """Stop serving (the daemon's last step)."""
        self.server.close()


def start_metrics(settings: Settings, clock: Clock) -> DaemonMetrics | None:
    """Start serving metrics when ``WORKFLOW_APP_METRICS_PORT`` asks for it; else ``None``.

    Raises:
        MetricsUnavailable: ``prometheus-client`` is not installed (``usage``), or
            the address cannot be bound.
    """
    port = settings.app_metrics_port
    if port is None:
        return None
    if importlib.util.find_spec("prometheus_client") is None:
        raise MetricsUnavailable(
            f"WORKFLOW_APP_METRICS_PORT={port} needs the metrics extra: "
            "pip install 'ddeutil-workflow[metrics]'",
            usage=True,
        )
    from ..prometheus import PrometheusMeter, serve_metrics

    meter = PrometheusMeter(clock=clock)
    host = settings.app_metrics_host
    try:
        server = serve_metrics(meter, host=host, port=port)
    except OSError as exc:
        raise MetricsUnavailable(
            f"cannot serve metrics on {host}:{port} (WORKFLOW_APP_METRICS_HOST, "
            f"WORKFLOW_APP_METRICS_PORT): {exc}",
            usage=False,
        ) from None
    logger.info("Prometheus metrics served on http://%s:%d/metrics", host, server.port)
    return DaemonMetrics(meter=meter, server=server)
