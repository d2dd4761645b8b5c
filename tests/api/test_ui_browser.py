"""The dashboard in a real browser: headless Chromium (Debian's) driven by Selenium.

A real ``workflow api`` (uvicorn) runs in a subprocess on a free port with a
temporary root and conf folder. Skipped, with the reason, when Chromium, its
driver or Selenium is missing. Screenshots are saved under the test's tmp folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _apitest import TOKEN

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

CONF = """
on_hourly:
  type: on.On
  cron: "0 * * * *"
  timezone: UTC

greet:
  type: Pipeline
  desc: say hello to someone
  on: on_hourly
  params:
    who:
      type: str
      default: world
    mode:
      type: choice
      options: [full, delta]
  jobs:
    hello:
      stages:
        - name: say hello
          echo: "hello ${{ params.who }} in ${{ params.mode }} mode"
    after:
      needs: [hello]
      stages:
        - name: wrap up
          run: |
            import time
            time.sleep(0.2)
"""


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra)"
    return None


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
    pytest.mark.timeout(120),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"workflow api exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer /health within {timeout}s")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "root"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "pipelines.yml").write_text(CONF, encoding="utf-8")
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WORKFLOW_") and not key.startswith("COV_")
    }
    env.update(WORKFLOW_ROOT_PATH=str(root), WORKFLOW_API_TOKEN=TOKEN)
    command = [sys.executable, "-m", "ddeutil.workflow", "api", "--port", str(port)]
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _until(driver: Any, check: Callable[[Any], Any], timeout: float = 20.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(check)


def test_the_dashboard_in_chromium(server: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    shots = tmp_path / "screenshots"
    shots.mkdir()

    # Not signed in: the pipeline list sends the browser to the login form.
    browser.get(f"{server}/ui/pipelines")
    _until(browser, lambda d: d.current_url.endswith("/ui/login"))

    # A wrong token is refused.
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _until(browser, lambda d: d.find_elements(By.ID, "login-error"))
    assert "wrong token" in browser.find_element(By.ID, "login-error").text
    browser.save_screenshot(str(shots / "1-wrong-token.png"))

    # The right one signs in; the token is in no URL and no cookie script can read.
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _until(browser, lambda d: d.current_url.endswith("/ui/pipelines"))
    assert TOKEN not in browser.current_url
    assert browser.execute_script("return document.cookie") == ""
    row = browser.find_element(By.XPATH, "//tr[th/a[text()='greet']]")
    assert "say hello to someone" in row.text
    assert "0 * * * *" in row.text
    assert "never run" in row.text
    browser.save_screenshot(str(shots / "2-pipelines.png"))

    # Trigger with params through the form built from the declared params.
    row.find_element(By.LINK_TEXT, "greet").click()
    who = _until(browser, lambda d: d.find_element(By.NAME, "param.who"))
    who.clear()
    who.send_keys("browser")
    Select(browser.find_element(By.NAME, "param.mode")).select_by_visible_text("full")
    browser.find_element(By.CSS_SELECTOR, "#trigger-form button[type=submit]").click()
    _until(browser, lambda d: "/ui/runs/" in d.current_url)

    # The run page follows the run (htmx polling) until it ends, with its timeline.
    _until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline .g-bar"), timeout=30)
    status = browser.find_element(By.ID, "run-status").text
    assert "SUCCESS" in status
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#timeline .g-label")]
    assert labels == ["hello", "say hello", "after", "wrap up"]
    assert "who" in browser.find_element(By.TAG_NAME, "main").text
    browser.save_screenshot(str(shots / "3-run.png"))

    # Its logs.
    browser.find_element(By.CSS_SELECTOR, "#logs-box summary").click()
    _until(browser, lambda d: "hello browser in full mode" in d.find_element(By.ID, "logs").text)
    browser.save_screenshot(str(shots / "4-logs.png"))

    # The history lists it.
    browser.get(f"{server}/ui/runs?pipeline=greet")
    assert "1 run;" in browser.find_element(By.ID, "count").text
