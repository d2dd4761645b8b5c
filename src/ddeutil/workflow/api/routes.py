"""The routes: ``/health`` and everything under ``/api/v1``.

Route functions are plain ``def``: FastAPI runs them on its thread pool, which
suits the synchronous run store. The run route is ``async`` so that a long-poll
(``?wait=``) holds no pool thread while it waits. Each declares its ``response_model`` and the
error responses it can give (all :class:`~.models.ErrorResponse`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..result import Status
from ..store.base import TriggerKind
from .models import (
    BackfillAccepted,
    BackfillPlan,
    BackfillRequest,
    CancelRequest,
    CancelResponse,
    ErrorResponse,
    HealthResponse,
    PauseResponse,
    PipelineDetail,
    PipelineList,
    PruneRequest,
    PruneResponse,
    RerunRequest,
    RunDetail,
    RunLogs,
    RunPage,
    TriggerRequest,
    TriggerResponse,
    UnpauseRequest,
)
from .security import IDEMPOTENCY_KEY_PATTERN, MAX_NAME_LENGTH, NAME_PATTERN, RUN_ID_PATTERN
from .service import API_PREFIX, ApiService, run_path

__all__ = ["build_routers"]

MAX_WAIT_SECONDS = 30.0
MAX_NEXT = 50
MAX_PAGE = 500
MAX_OFFSET = 1_000_000_000
MAX_LOG_LINES = 10_000


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}


async def service(request: Request) -> ApiService:
    """The app's :class:`ApiService` (set by ``create_app``; async: no pool thread)."""
    svc: ApiService = request.app.state.service
    return svc


Service = Annotated[ApiService, Depends(service)]
PipelineName = Annotated[
    str,
    Path(
        pattern=NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description="pipeline (template) name",
    ),
]
RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN, max_length=MAX_NAME_LENGTH)]
NextCount = Annotated[
    int, Query(alias="next", ge=1, le=MAX_NEXT, description="next fire times per schedule")
]


def build_routers(auth: Callable[..., Awaitable[None]] | None) -> list[APIRouter]:
    """The health router (open) and the v1 router (behind ``auth`` when given)."""
    open_router = APIRouter(tags=["health"])
    deps = [Depends(auth)] if auth is not None else []
    v1 = APIRouter(prefix=API_PREFIX, dependencies=deps, responses=_errors(401, 422, 503))

    @open_router.get(
        "/health",
        response_model=HealthResponse,
        responses={503: {"model": HealthResponse}},
        summary="Store reachability and scheduler heartbeat (no token needed)",
    )
    def health(svc: Service, response: Response) -> HealthResponse:
        report = svc.health()
        if report.status == "unavailable":
            response.status_code = 503
        return report

    @v1.get(
        "/pipelines",
        response_model=PipelineList,
        tags=["pipelines"],
        summary="List pipelines with params and next fire times",
    )
    def list_pipelines(svc: Service, count: NextCount = 1) -> PipelineList:
        return svc.pipelines(count)

    @v1.get(
        "/pipelines/{name}",
        response_model=PipelineDetail,
        responses=_errors(404),
        tags=["pipelines"],
        summary="Show one pipeline",
    )
    def show_pipeline(svc: Service, name: PipelineName, count: NextCount = 5) -> PipelineDetail:
        return svc.pipeline(name, count)

    @v1.post(
        "/pipelines/{name}/pause",
        response_model=PauseResponse,
        responses=_errors(404),
        tags=["pipelines"],
        summary="Pause a pipeline's schedules (every daemon, from its next tick)",
    )
    def pause_pipeline(svc: Service, name: PipelineName) -> PauseResponse:
        return svc.pause(name)

    @v1.post(
        "/pipelines/{name}/unpause",
        response_model=PauseResponse,
        responses={202: {"model": PauseResponse}, **_errors(404, 409)},
        tags=["pipelines"],
        summary="Resume a paused pipeline's schedules (202 when catching up what it skipped)",
    )
    def unpause_pipeline(
        svc: Service,
        name: PipelineName,
        response: Response,
        body: Annotated[UnpauseRequest | None, Body()] = None,
    ) -> PauseResponse:
        asked = body if body is not None else UnpauseRequest()
        done = svc.unpause(name, catchup=asked.catchup, since=asked.since, parallel=asked.parallel)
        if done.follow is not None:
            response.status_code = 202
            response.headers["Location"] = done.follow
        return done

    @v1.post(
        "/pipelines/{name}/runs",
        response_model=TriggerResponse,
        status_code=202,
        responses=_errors(404, 409, 413),
        tags=["runs"],
        summary="Trigger a run (202 with the run id and a Location header)",
    )
    def trigger(
        svc: Service,
        name: PipelineName,
        response: Response,
        body: Annotated[TriggerRequest | None, Body()] = None,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                pattern=IDEMPOTENCY_KEY_PATTERN,
                description="reusing a key answers 409 with the run it created",
            ),
        ] = None,
    ) -> TriggerResponse:
        params = body.params if body is not None else {}
        accepted = svc.trigger(name, params, idempotency_key)
        response.headers["Location"] = run_path(accepted.run_id)
        return accepted

    @v1.get("/runs", response_model=RunPage, tags=["runs"], summary="Run history, newest first")
    def list_runs(
        *,
        svc: Service,
        pipeline: Annotated[
            str | None, Query(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)
        ] = None,
        status: Annotated[list[Status] | None, Query(description="any of these")] = None,
        trigger: TriggerKind | None = None,
        since: Annotated[
            datetime | None, Query(description="created at or after (naive = UTC)")
        ] = None,
        until: Annotated[datetime | None, Query(description="created before (naive = UTC)")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> RunPage:
        return svc.runs(
            pipeline=pipeline,
            status=status,
            trigger=trigger,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )

    @v1.get(
        "/runs/{run_id}",
        response_model=RunDetail,
        responses=_errors(404),
        tags=["runs"],
        summary="Run status and result (secrets masked)",
    )
    async def show_run(
        svc: Service,
        run_id: RunId,
        wait: Annotated[
            float,
            Query(
                ge=0,
                le=MAX_WAIT_SECONDS,
                description="long-poll: wait up to this many seconds for the run to end",
            ),
        ] = 0.0,
    ) -> RunDetail:
        # async: a long-poll waits on the event loop, not on a pool thread.
        detail = await run_in_threadpool(svc.run, run_id)
        if wait > 0 and not detail.status.is_terminal:
            await svc.wait_async(run_id, wait)
            detail = await run_in_threadpool(svc.run, run_id)
        return detail

    @v1.post(
        "/runs/{run_id}/rerun",
        response_model=TriggerResponse,
        status_code=202,
        responses=_errors(404, 409),
        tags=["runs"],
        summary="Rerun from failure: a new run reusing the outputs of the jobs that succeeded",
    )
    def rerun(
        svc: Service,
        run_id: RunId,
        response: Response,
        body: Annotated[RerunRequest | None, Body()] = None,
    ) -> TriggerResponse:
        asked = body if body is not None else RerunRequest()
        accepted = svc.rerun(run_id, asked.from_job, asked.force)
        response.headers["Location"] = run_path(accepted.run_id)
        return accepted

    @v1.get(
        "/runs/{run_id}/logs",
        response_model=RunLogs,
        responses=_errors(404),
        tags=["runs"],
        summary="Log lines of one run, oldest first",
    )
    def run_logs(
        svc: Service,
        run_id: RunId,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_LOG_LINES)] = 1000,
    ) -> RunLogs:
        return svc.logs(run_id, offset, limit)

    @v1.post(
        "/prune",
        response_model=PruneResponse,
        tags=["runs"],
        summary="Delete ended runs (records, claims, log files) older than the retention",
    )
    def prune_runs(
        svc: Service, body: Annotated[PruneRequest | None, Body()] = None
    ) -> PruneResponse:
        request = body if body is not None else PruneRequest()
        return svc.prune(request.older_than_days, request.dry_run)

    @v1.post(
        "/runs/{run_id}/cancel",
        response_model=CancelResponse,
        status_code=202,
        responses=_errors(404, 409),
        tags=["runs"],
        summary="Cancel a run wherever it executes (409 when it already ended)",
    )
    def cancel_run(
        svc: Service,
        run_id: RunId,
        body: Annotated[CancelRequest | None, Body()] = None,
    ) -> CancelResponse:
        return svc.cancel(run_id, body.reason if body is not None else None)

    @v1.post(
        "/pipelines/{name}/backfill",
        response_model=BackfillAccepted,
        status_code=202,
        responses={200: {"model": BackfillPlan}, **_errors(404, 409, 413)},
        tags=["runs"],
        summary="Run a pipeline's past releases in [start, end) (202; dry_run lists them: 200)",
    )
    def backfill(
        svc: Service, name: PipelineName, body: BackfillRequest, response: Response
    ) -> Any:
        result = svc.backfill(
            name, start=body.start, end=body.end, parallel=body.parallel, dry_run=body.dry_run
        )
        if isinstance(result, BackfillPlan):
            return JSONResponse(result.model_dump(mode="json"), status_code=200)
        response.headers["Location"] = result.follow
        return result

    return [open_router, v1]
