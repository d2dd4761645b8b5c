"""``GET /metrics``: the API process's Prometheus metrics, without a token.

Like ``/health`` the route is open: a Prometheus scraper rarely sends a bearer
token, and the metrics carry no secrets and no params (counts, durations, and
pipeline names as the only strings; see :mod:`ddeutil.workflow.prometheus`).
Bind the API to a trusted network, or filter ``/metrics`` at a proxy, if
pipeline names are private.

What it counts is this process's: the runs it accepted (started, finished by
status and trigger, durations, the stages its own run pool executed), the runs
in flight, and run store errors answered as 503. The one store-derived value,
``workflow_daemon_heartbeat_age_seconds`` (the newest heartbeat of any daemon),
is one read of the store's owner rows per scrape. Scheduled runs, releases and
worker restarts are the daemon's: scrape its ``WORKFLOW_APP_METRICS_PORT``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..prometheus import CONTENT_TYPE, PrometheusMeter

__all__ = ["build_metrics_router"]


def build_metrics_router(meter: PrometheusMeter) -> APIRouter:
    """The open router of ``GET /metrics``, serving ``meter``."""
    router = APIRouter(tags=["health"])

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
        summary="Prometheus metrics of this API process (no token needed)",
    )
    def metrics(request: Request) -> Response:
        return Response(content=meter.render(), media_type=CONTENT_TYPE)

    return router
