"""The dashboard under /ui/: login, cookies, CSRF, pages, filters, paging and actions."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from _apitest import SECRET_VALUE, TOKEN, Gate, TestClient, wait_terminal
from ddeutil.workflow.api.ui.forms import PAGE_SIZE
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings
from ddeutil.workflow.store import open_store
from ddeutil.workflow.store.base import TriggerKind

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def _login(client: TestClient) -> str:
    """Log in; return the CSRF token of the session."""
    response = client.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303
    page = client.get("/ui/pipelines")
    assert page.status_code == 200
    return _csrf(page.text)


@pytest.fixture
def ui(client: TestClient) -> TestClient:
    client.base_url = client.base_url.copy_with(scheme="https")  # Secure cookies travel
    return client


def test_pages_redirect_to_the_login_form_without_a_session(ui: TestClient) -> None:
    for path in ("/ui/pipelines", "/ui/runs", "/ui/pipelines/quick", "/ui/runs/x-1"):
        response = ui.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/ui/login"
    fragment = ui.get("/ui/runs/x-1/logs", headers={"HX-Request": "true"})
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"] == "/ui/login"
    assert ui.get("/ui/login").status_code == 200


def test_login_sets_secure_http_only_strict_cookies(ui: TestClient) -> None:
    response = ui.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)

    assert response.status_code == 303
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2
    for cookie in cookies:
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"secure", "httponly", "samesite=strict", "path=/ui"} <= flags
    assert TOKEN not in response.headers["location"]
    page = ui.get("/ui/pipelines")
    assert TOKEN not in page.text


def test_a_wrong_token_is_refused(ui: TestClient) -> None:
    response = ui.post("/ui/login", data={"token": "nope"}, follow_redirects=False)

    assert response.status_code == 401
    assert "wrong token" in response.text
    assert "workflow_session" not in response.headers.get("set-cookie", "")
    ui.cookies.set("workflow_session", "forged", domain="testserver.local", path="/ui")
    assert ui.get("/ui/pipelines", follow_redirects=False).status_code == 303


def test_posts_without_the_session_csrf_are_refused(ui: TestClient) -> None:
    csrf = _login(ui)

    for data in ({}, {"csrf": "x" + csrf}):
        response = ui.post("/ui/pipelines/quick/pause", data=data, follow_redirects=False)
        assert response.status_code == 403
    assert "paused" not in ui.get("/ui/pipelines").text.split("<tbody>")[1].split("quick")[1][:400]
    ok = ui.post("/ui/pipelines/quick/pause", data={"csrf": csrf}, follow_redirects=False)
    assert ok.status_code == 303


def test_logout_clears_the_session(ui: TestClient) -> None:
    csrf = _login(ui)

    response = ui.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)

    assert response.status_code == 303
    assert ui.get("/ui/pipelines", follow_redirects=False).status_code == 303


def test_pipelines_page_lists_schedules_last_run_and_pause(ui: TestClient) -> None:
    csrf = _login(ui)
    done = ui.post("/ui/pipelines/quick/trigger", data={"csrf": csrf}, follow_redirects=False)
    run_id = done.headers["location"].rsplit("/", 1)[1]
    wait_terminal(ui, run_id)
    ui.post("/ui/pipelines/typed/pause", data={"csrf": csrf})

    page = ui.get("/ui/pipelines").text

    quick = page.split('href="/ui/pipelines/quick"')[1].split("</tr>")[0]
    assert "three quick stages" in quick
    assert "*/5 * * * *" in quick
    assert "2024-01-01 00:05:00" in quick  # next fire after the fake clock's 00:02:30
    assert run_id in quick
    assert "s-success" in quick
    typed = page.split('href="/ui/pipelines/typed"')[1].split("</tr>")[0]
    assert "paused" in typed
    assert "never run" in typed


def test_trigger_form_is_built_from_the_declared_params(ui: TestClient) -> None:
    _login(ui)

    page = ui.get("/ui/pipelines/typed").text

    assert '<label for="param-1">count' in page
    assert '<option value="full"' in page
    assert '<option value="delta"' in page
    assert 'name="param.dry" type="checkbox"' in page
    assert 'name="param.label" value="x"' in page


def test_trigger_with_bad_params_shows_every_problem(ui: TestClient) -> None:
    csrf = _login(ui)

    response = ui.post(
        "/ui/pipelines/typed/trigger",
        data={"csrf": csrf, "param.count": "many", "param.mode": "full"},
    )

    assert response.status_code == 422
    assert "invalid params" in response.text
    assert 'aria-invalid="true"' in response.text
    assert "run-date" in response.text


def test_trigger_rerun_and_the_run_page(ui: TestClient) -> None:
    csrf = _login(ui)
    response = ui.post(
        "/ui/pipelines/typed/trigger",
        data={
            "csrf": csrf,
            "param.count": "3",
            "param.run-date": "2024-02-03",
            "param.mode": "delta",
            "param.dry": "true",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    run_id = response.headers["location"].rsplit("/", 1)[1]
    body = wait_terminal(ui, run_id)
    assert body["params"]["count"] == 3
    assert body["params"]["dry"] is True

    page = ui.get(f"/ui/runs/{run_id}").text
    assert 'id="timeline"' in page
    assert "g-bar s-success" in page
    assert "nothing" in page  # the stage's row
    assert 'hx-trigger="every' not in page  # an ended run is not polled
    logs = ui.get(f"/ui/runs/{run_id}/logs").text
    assert "pipeline &#39;typed&#39; SUCCESS" in logs or "SUCCESS" in logs
    assert "hx-get" not in logs  # all lines read, run ended: no more polling

    rerun = ui.post(f"/ui/runs/{run_id}/rerun", data={"csrf": csrf}, follow_redirects=False)
    assert rerun.status_code in (303, 409)


def test_a_running_run_is_followed_and_can_be_cancelled(ui: TestClient, gate: Gate) -> None:
    csrf = _login(ui)
    response = ui.post("/ui/pipelines/gated/trigger", data={"csrf": csrf}, follow_redirects=False)
    run_id = response.headers["location"].rsplit("/", 1)[1]
    assert gate.entered.wait(10)

    page = ui.get(f"/ui/runs/{run_id}").text
    assert f'hx-get="/ui/runs/{run_id}/status?poll=1"' in page
    status = ui.get(f"/ui/runs/{run_id}/status", params={"poll": 3}).text
    assert "poll=4" in status
    assert "poll=" not in ui.get(f"/ui/runs/{run_id}/status", params={"poll": 3600}).text
    assert "hx-get" in ui.get(f"/ui/runs/{run_id}/logs").text  # still running: keep following

    cancel = ui.post(f"/ui/runs/{run_id}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert cancel.status_code == 303
    gate.release.set()
    assert wait_terminal(ui, run_id)["status"] in ("CANCELLED", "SUCCESS")
    again = ui.post(f"/ui/runs/{run_id}/cancel", data={"csrf": csrf})
    assert again.status_code == 409


def test_history_filters_and_pages(
    make_client: Callable[..., TestClient], api_settings: Settings
) -> None:
    store = open_store(f"sqlite:///{api_settings.root_path / 'ui.db'}")
    for i in range(PAGE_SIZE + 5):
        run = store.create_run(
            run_id=f"r{i:04d}",
            pipeline="quick" if i % 2 else "typed",
            trigger=TriggerKind.SCHEDULE if i % 3 else TriggerKind.MANUAL,
            params={},
            now=T0 + timedelta(minutes=i),
        )
        store.finish(run.run_id, status=Status.SUCCESS if i % 5 else Status.FAILED, now=T0)
    ui = make_client(store=store)
    ui.base_url = ui.base_url.copy_with(scheme="https")
    _login(ui)

    first = ui.get("/ui/runs").text
    assert f"{PAGE_SIZE + 5} runs; page 1 of 2" in first
    assert "r0054" in first
    assert "r0004" not in first
    second = ui.get("/ui/runs", params={"offset": PAGE_SIZE}).text
    assert "r0004" in second
    assert "page 2 of 2" in second

    failed = ui.get("/ui/runs", params={"status": "FAILED", "pipeline": "typed"}).text
    assert "6 runs" in failed  # i = 0, 10, 20, 30, 40, 50
    manual = ui.get(
        "/ui/runs", params={"trigger": "manual", "since": "2024-01-01T00:10", "until": ""}
    ).text
    assert "15 runs" in manual  # i = 12, 15, ..., 54
    odd = ui.get("/ui/runs", params={"status": "NOPE", "since": "yesterday"}).text
    assert "Ignored invalid filter values: status, since" in odd
    store.close()


def test_secrets_are_masked_in_pages(ui: TestClient) -> None:
    csrf = _login(ui)
    response = ui.post("/ui/pipelines/echo-secret/trigger", data={"csrf": csrf})
    run_id = str(response.url).rsplit("/", 1)[1]
    wait_terminal(ui, run_id)

    assert SECRET_VALUE not in ui.get(f"/ui/runs/{run_id}").text
    assert SECRET_VALUE not in ui.get(f"/ui/runs/{run_id}/logs").text


def test_unknown_things_render_an_error_page(ui: TestClient) -> None:
    _login(ui)

    assert ui.get("/ui/pipelines/nope").status_code == 404
    assert ui.get("/ui/runs/nope-1").status_code == 404


def test_the_dashboard_can_be_turned_off(
    make_client: Callable[..., TestClient], make_settings: Callable[..., Settings]
) -> None:
    client = make_client(make_settings(WORKFLOW_API_TOKEN=TOKEN, WORKFLOW_API_UI="false"))
    assert client.get("/ui/login").status_code == 404
    assert client.get("/ui/static/htmx.min.js").status_code == 404


def test_static_files_and_the_schema(ui: TestClient) -> None:
    assert ui.get("/ui/static/htmx.min.js").status_code == 200
    assert ui.get("/ui/static/ui.css").status_code == 200
    assert not [p for p in ui.get("/openapi.json").json()["paths"] if p.startswith("/ui")]
