"""The dashboard's routes under ``/ui/``: server-rendered pages and htmx fragments.

Every page reads through :class:`~ddeutil.workflow.api.service.ApiService` and
every action calls its methods (trigger, rerun, cancel, pause, unpause), so the
dashboard and the REST API share one behaviour. Policies:

* **Sessions** as :mod:`.session` says; a page asked without a session redirects
  to the login form (303), a POST without a matching CSRF field is 403.
* **Secrets never leave**: values are masked before rendering and the rendered
  page is masked again (the API token included).
* **Bounded**: history pages hold :data:`~.forms.PAGE_SIZE` runs, a log fragment
  at most :data:`LOG_LINES` lines; a running run's page polls its status and log
  fragments every :data:`POLL_SECONDS` seconds, at most :data:`MAX_POLLS` times,
  and stops polling once the run ended.
* The routes stay out of the OpenAPI schema (they are not API).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from ...masking import Masker
from ...result import Status
from ...schedules.hashed import cron_label
from ...store.base import TriggerKind
from ..errors import ApiError
from ..security import MAX_NAME_LENGTH, NAME_PATTERN, RUN_ID_PATTERN
from ..service import ApiService
from .forms import PAGE_SIZE, form_params, history_filter
from .gantt import gantt
from .session import Session, SessionPolicy

__all__ = ["LOG_LINES", "MAX_POLLS", "POLL_SECONDS", "UI_PREFIX", "build_ui_router"]

UI_PREFIX = "/ui"
LOG_LINES = 500
POLL_SECONDS = 1
MAX_POLLS = 3600
TEMPLATES = Path(__file__).parent / "templates"

Name = Annotated[str, PathParam(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)]
RunId = Annotated[str, PathParam(pattern=RUN_ID_PATTERN, max_length=MAX_NAME_LENGTH)]
MAX_FIELDS = 1000
_Page = Callable[[Request, Session], Awaitable[Response]]


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a url-encoded form body (first value of each; bounded)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = (await request.body()).decode("utf-8", "replace")
    fields: dict[str, str] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS):
        fields.setdefault(key, value)
    return fields


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        auto_reload=False,
    )
    env.filters["when"] = lambda v: "" if v is None else v.strftime("%Y-%m-%d %H:%M:%S")
    env.filters["cron"] = lambda s: cron_label(s.cron, s.written)
    return env


def build_ui_router(policy: SessionPolicy, masker: Masker) -> APIRouter:
    """The ``/ui`` router (see the module docstring)."""
    env = _environment()
    router = APIRouter(prefix=UI_PREFIX, include_in_schema=False)

    def svc(request: Request) -> ApiService:
        service: ApiService = request.app.state.service
        return service

    def render(
        request: Request,
        template: str,
        session: Session,
        *,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        csrf = session.csrf or policy.new_csrf()
        page = env.get_template(template).render(
            request_path=request.url.path,
            csrf=csrf,
            signed_in=session.authenticated,
            auth=policy.token is not None,
            statuses=[s.value for s in Status],
            triggers=[t.value for t in TriggerKind],
            **masker.data(values),
        )
        response = HTMLResponse(masker.text(page), status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
        )
        if session.csrf is None:
            policy.set_csrf(response, csrf)
        return response

    def to_login(request: Request) -> Response:
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": f"{UI_PREFIX}/login"})
        return RedirectResponse(f"{UI_PREFIX}/login", status_code=303)

    def failure(request: Request, session: Session, exc: ApiError) -> HTMLResponse:
        return render(
            request,
            "error.html",
            session,
            status=exc.status,
            message=exc.message,
            details=[f"{d.name or d.location}: {d.message}" for d in exc.details],
        )

    def guarded(page: _Page) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            session = policy.session(request)
            if not session.authenticated:
                return to_login(request)
            try:
                return await page(request, session)
            except ApiError as exc:
                return failure(request, session, exc)

        return run

    async def posted(request: Request, csrf: str | None = None) -> Session | Response:
        if csrf is None:
            csrf = (await read_form(request)).get("csrf", "")
        session = policy.session(request)
        if not session.authenticated:
            return to_login(request)
        if not policy.csrf_ok(session, csrf):
            return render(
                request,
                "error.html",
                session,
                status=403,
                message="the form's CSRF token does not match this session: reload the page",
                details=[],
            )
        return session

    # ---------------------------------------------------------------- login

    @router.get("/", response_class=HTMLResponse)
    async def home() -> Response:
        return RedirectResponse(f"{UI_PREFIX}/pipelines", status_code=303)

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        session = policy.session(request)
        if session.authenticated and policy.token is not None:
            return RedirectResponse(f"{UI_PREFIX}/pipelines", status_code=303)
        return render(request, "login.html", session, error=None)

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        token = (await read_form(request)).get("token", "")
        session = policy.session(request)
        if policy.token is None or not policy.check_token(token):
            return render(
                request,
                "login.html",
                Session(authenticated=False, csrf=session.csrf),
                status=401,
                error="wrong token" if policy.token is not None else "authentication is off",
            )
        response = RedirectResponse(f"{UI_PREFIX}/pipelines", status_code=303)
        policy.sign_in(response, token)
        return response

    @router.post("/logout", response_class=HTMLResponse)
    async def logout(request: Request) -> Response:
        checked = await posted(request)
        if isinstance(checked, Response):
            return checked
        response = RedirectResponse(f"{UI_PREFIX}/login", status_code=303)
        policy.sign_out(response)
        return response

    # ------------------------------------------------------------ pipelines

    @router.get("/pipelines", response_class=HTMLResponse)
    async def pipelines(request: Request) -> Response:
        async def page(request: Request, session: Session) -> Response:
            service = svc(request)
            listed = await run_in_threadpool(service.pipelines, 1)
            last = await run_in_threadpool(service.last_runs, [p.name for p in listed.items])
            return render(
                request,
                "pipelines.html",
                session,
                pipelines=listed.items,
                problems=listed.problems,
                last=last,
            )

        return await guarded(page)(request)

    @router.get("/pipelines/{name}", response_class=HTMLResponse)
    async def pipeline(request: Request, name: Name) -> Response:
        async def page(request: Request, session: Session) -> Response:
            return await _pipeline_page(request, session, name, {}, {})

        return await guarded(page)(request)

    async def _pipeline_page(
        request: Request,
        session: Session,
        name: str,
        values: dict[str, str],
        problems: dict[str, str],
        *,
        status: int = 200,
        message: str | None = None,
    ) -> Response:
        service = svc(request)
        detail = await run_in_threadpool(service.pipeline, name, 5)
        recent = await run_in_threadpool(
            lambda: service.runs(
                pipeline=name,
                status=None,
                trigger=None,
                since=None,
                until=None,
                limit=10,
                offset=0,
            )
        )
        return render(
            request,
            "pipeline.html",
            session,
            status=status,
            pipeline=detail,
            recent=recent,
            values=values,
            problems=problems,
            message=message,
        )

    @router.post("/pipelines/{name}/trigger", response_class=HTMLResponse)
    async def trigger(request: Request, name: Name) -> Response:
        fields = await read_form(request)
        checked = await posted(request, fields.get("csrf", ""))
        if isinstance(checked, Response):
            return checked
        session = checked
        service = svc(request)
        try:
            detail = await run_in_threadpool(service.pipeline, name, 1)
            params, problems = form_params(detail.params, fields)
            if problems:
                return await _pipeline_page(
                    request, session, name, fields, problems, status=422, message="invalid params"
                )
            accepted = await run_in_threadpool(service.trigger, name, params, None)
        except ApiError as exc:
            if exc.status == 422 and exc.details:
                found = {d.name or "": d.message for d in exc.details}
                return await _pipeline_page(
                    request, session, name, fields, found, status=422, message=exc.message
                )
            return failure(request, session, exc)
        return RedirectResponse(f"{UI_PREFIX}/runs/{accepted.run_id}", status_code=303)

    def _action(path: str, act: Callable[[ApiService, str], Any], back: str) -> None:
        @router.post(path, response_class=HTMLResponse)
        async def action(request: Request, key: Name) -> Response:
            checked = await posted(request)
            if isinstance(checked, Response):
                return checked
            try:
                target = await run_in_threadpool(act, svc(request), key)
            except ApiError as exc:
                return failure(request, checked, exc)
            return RedirectResponse(back.format(key=key, target=target), status_code=303)

    _action("/pipelines/{key}/pause", lambda s, k: s.pause(k), UI_PREFIX + "/pipelines/{key}")
    _action("/pipelines/{key}/unpause", lambda s, k: s.unpause(k), UI_PREFIX + "/pipelines/{key}")
    _action(
        "/runs/{key}/cancel",
        lambda s, k: s.cancel(k, "cancelled from the dashboard"),
        UI_PREFIX + "/runs/{key}",
    )
    _action(
        "/runs/{key}/rerun",
        lambda s, k: s.rerun(k, None, False).run_id,
        UI_PREFIX + "/runs/{target}",
    )

    # ----------------------------------------------------------------- runs

    @router.get("/runs", response_class=HTMLResponse)
    async def runs(
        *,
        request: Request,
        pipeline: Annotated[str | None, Query(max_length=200)] = None,
        status: Annotated[list[str] | None, Query(max_length=20)] = None,
        trigger: Annotated[str | None, Query(max_length=20)] = None,
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
        offset: Annotated[str | None, Query(max_length=20)] = None,
    ) -> Response:
        async def page(request: Request, session: Session) -> Response:
            asked = history_filter(
                pipeline=pipeline,
                status=(status or [])[:10],
                trigger=trigger,
                since=since,
                until=until,
                offset=offset,
            )
            service = svc(request)
            found = await run_in_threadpool(
                lambda: service.runs(
                    pipeline=asked.pipeline,
                    status=list(asked.status) or None,
                    trigger=asked.trigger,
                    since=asked.since,
                    until=asked.until,
                    limit=PAGE_SIZE,
                    offset=asked.offset,
                )
            )
            pages = max(1, math.ceil(found.total / PAGE_SIZE))
            here = asked.offset // PAGE_SIZE + 1
            prev_url = next_url = None
            if asked.offset > 0:
                prev_url = "?" + urlencode(asked.query(max(asked.offset - PAGE_SIZE, 0)))
            if asked.offset + PAGE_SIZE < found.total:
                next_url = "?" + urlencode(asked.query(asked.offset + PAGE_SIZE))
            return render(
                request,
                "runs.html",
                session,
                runs=found.items,
                total=found.total,
                asked=asked,
                page=here,
                pages=pages,
                prev_url=prev_url,
                next_url=next_url,
            )

        return await guarded(page)(request)

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run(request: Request, run_id: RunId) -> Response:
        async def page(request: Request, session: Session) -> Response:
            return await _run_view(request, session, run_id, "run.html", 0)

        return await guarded(page)(request)

    @router.get("/runs/{run_id}/status", response_class=HTMLResponse)
    async def run_status(
        request: Request, run_id: RunId, poll: Annotated[int, Query(ge=0, le=MAX_POLLS)] = 0
    ) -> Response:
        async def page(request: Request, session: Session) -> Response:
            return await _run_view(request, session, run_id, "run_status.html", poll)

        return await guarded(page)(request)

    async def _run_view(
        request: Request, session: Session, run_id: str, template: str, poll: int
    ) -> Response:
        detail = await run_in_threadpool(svc(request).run, run_id)
        return render(
            request,
            template,
            session,
            run=detail,
            gantt=gantt(detail.context),
            poll=poll,
            follow=not detail.status.is_terminal and poll < MAX_POLLS,
            poll_seconds=POLL_SECONDS,
        )

    @router.get("/runs/{run_id}/logs", response_class=HTMLResponse)
    async def run_logs(
        request: Request,
        run_id: RunId,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
        poll: Annotated[int, Query(ge=0, le=MAX_POLLS)] = 0,
    ) -> Response:
        async def page(request: Request, session: Session) -> Response:
            service = svc(request)
            logs = await run_in_threadpool(service.logs, run_id, offset, LOG_LINES)
            detail = await run_in_threadpool(service.run, run_id)
            upto = offset + len(logs.lines)
            more = upto < logs.total
            follow = (more or not detail.status.is_terminal) and poll < MAX_POLLS
            return render(
                request,
                "run_logs.html",
                session,
                run_id=run_id,
                lines=logs.lines,
                next_offset=upto,
                follow=follow,
                poll=poll + 1,
                poll_seconds=0 if more else POLL_SECONDS,
            )

        return await guarded(page)(request)

    return router
