"""Values of sensitive environment variables never appear in output."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.logs import MaskingFilter, RunLogRouter, configure_logging, run_log_path
from ddeutil.workflow.masking import MASK, Masker


@pytest.mark.parametrize(
    "name",
    [
        "API_TOKEN",
        "DB_SECRET",
        "PG_PASSWORD",
        "FTP_PASSWD",
        "AWS_ACCESS_KEY_ID",
        "GCP_CREDENTIALS",
        "BASIC_AUTH",
    ],
)
def test_sensitive_names_are_masked(name: str) -> None:
    masker = Masker.from_env({name: "hunter2-value", "HOME": "/home/me"})
    assert masker.text("connect with hunter2-value now") == f"connect with {MASK} now"
    assert masker.text("/home/me") == "/home/me"


def test_nested_data_is_masked_without_touching_other_values() -> None:
    masker = Masker(frozenset({"p4ssw0rd"}))
    data = {"a": ["x p4ssw0rd y", 3, None], "b": {"c": "p4ssw0rd"}, "d": 1.5}
    assert masker.data(data) == {"a": [f"x {MASK} y", 3, None], "b": {"c": MASK}, "d": 1.5}


def test_longest_secret_wins_and_short_values_are_ignored() -> None:
    masker = Masker(frozenset({"abcd", "abcdef", "on"}))
    assert masker.text("abcdef on") == f"{MASK} on"


def test_with_values_adds_secrets() -> None:
    masker = Masker().with_values("tok-123456")
    assert masker.active
    assert masker.text("tok-123456") == MASK


def test_masking_filter_masks_rendered_message_and_context() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter(Masker(frozenset({"sekrit-1"}))))
    logger = logging.getLogger("test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token is %s", "sekrit-1", extra={"stage": "use sekrit-1"})
    finally:
        logger.removeHandler(handler)
    assert "sekrit-1" not in stream.getvalue()
    assert MASK in stream.getvalue()


def test_json_logging_emits_one_object_per_line_with_context() -> None:
    stream = io.StringIO()
    handler = configure_logging(fmt="json", level="INFO", stream=stream)
    try:
        logging.getLogger("ddeutil.workflow.test").info(
            "stage done", extra={"run_id": "r1", "pipeline": "p", "job": "j", "stage": "s"}
        )
    finally:
        logging.getLogger().removeHandler(handler)
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["message"] == "stage done"
    assert line["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert (line["run_id"], line["pipeline"], line["job"], line["stage"]) == ("r1", "p", "j", "s")


def test_text_logging_shows_run_context() -> None:
    stream = io.StringIO()
    handler = configure_logging(fmt="text", level="INFO", stream=stream)
    try:
        logging.getLogger("ddeutil.workflow.test").info(
            "hello", extra={"run_id": "r9", "pipeline": "p", "job": "j"}
        )
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    assert "[r9 p/j]" in out
    assert out.rstrip().endswith("hello")


def test_configure_logging_replaces_its_previous_handler() -> None:
    root = logging.getLogger()
    first = configure_logging(fmt="text", stream=io.StringIO())
    second = configure_logging(fmt="json", stream=io.StringIO())
    try:
        assert first not in root.handlers
        assert second in root.handlers
    finally:
        root.removeHandler(second)


def test_run_log_router_writes_only_open_runs(tmp_path: Path) -> None:
    logger = logging.getLogger("ddeutil.workflow.test.router")
    logger.setLevel(logging.INFO)
    with RunLogRouter.installed(tmp_path, Masker(frozenset({"pw-123456"}))) as router:
        with router.capture("run-1", "child-1") as path:
            logger.info("first pw-123456", extra={"run_id": "run-1", "stage": "s1"})
            logger.info("from child", extra={"run_id": "child-1"})
            logger.info("other run", extra={"run_id": "run-2"})
            logger.info("no run at all")
        logger.info("after close", extra={"run_id": "run-1"})
    assert path == run_log_path(tmp_path, "run-1")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["message"] for x in lines] == [f"first {MASK}", "from child"]
    assert lines[0]["stage"] == "s1"
    assert not run_log_path(tmp_path, "run-2").exists()


def test_run_log_path_is_safe() -> None:
    assert run_log_path(Path("/logs"), "../../etc/passwd").parent == Path("/logs")


# --------------------------------------------------------------- issue 9 regressions


def test_dict_keys_are_masked() -> None:
    masker = Masker(frozenset({"k3y-s3cr3t"}))
    data = {"k3y-s3cr3t": 1, "inner": {"user k3y-s3cr3t": ["k3y-s3cr3t"]}, 7: {"k3y-s3cr3t"}}
    assert masker.data(data) == {MASK: 1, "inner": {f"user {MASK}": [MASK]}, 7: [MASK]}


def test_a_filter_error_masks_a_long_secret_before_shortening_the_value(engine: Any) -> None:
    secret = "long-s3cr3t-" + "x" * 108
    result = engine.run(
        """
        shorten:
          type: Pipeline
          params:
            token: str
          jobs:
            j:
              stages:
                - name: convert
                  vars:
                    n: ${{ params.token | int }}
                  run: m = n
        """,
        {"token": secret},
        masker=Masker(frozenset({secret})),
    )
    message = result.errors[0].message
    assert "filter 'int' failed on str '***'" in message
    assert "long-s3cr3t" not in message


@pytest.mark.parametrize("secret", ['it\'s "s3cr3t"', 'say "s3cr3t"', "back\\slash-s3cr3t"])
def test_a_secret_is_masked_in_its_escaped_forms(engine: Any, secret: str) -> None:
    result = engine.run(
        """
        escaped:
          type: Pipeline
          params:
            token: str
          jobs:
            j:
              stages:
                - name: lookup
                  vars:
                    token: ${{ params.token }}
                  run: raise KeyError(token)
        """,
        {"token": secret},
        masker=Masker(frozenset({secret})),
    )
    message = result.errors[0].message
    assert message.startswith("KeyError: ")
    assert MASK in message
    assert "s3cr3t" not in message
    masker = Masker(frozenset({secret}))
    in_json = masker.text(json.dumps({"m": repr(secret)}))  # a repr inside a JSON line
    assert "s3cr3t" not in in_json
    assert MASK in json.loads(in_json)["m"]


def test_short_secrets_are_masked_only_as_whole_values_and_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="ddeutil.workflow.masking"):
        masker = Masker.from_env({"FEATURE_KEY": "on", "API_TOKEN": "long-enough"})
    assert "FEATURE_KEY" in caplog.text
    assert "on" not in caplog.text.replace("FEATURE_KEY", "").replace("only", "")
    assert masker.text("on") == MASK
    assert masker.text("first\non\r\nlast") == f"first\n{MASK}\r\nlast"
    assert masker.text("turn it on, moon") == "turn it on, moon"
    assert masker.data({"on": "on", "mode": "moon", "flags": ["on"]}) == {
        MASK: MASK,
        "mode": "moon",
        "flags": [MASK],
    }


def test_console_lines_are_masked_after_formatting(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    secret = 'quote"d-s3cr3t'
    handler = configure_logging(
        fmt="json", level="INFO", masker=Masker(frozenset({secret})), stream=stream
    )
    try:
        try:
            raise ValueError(secret)
        except ValueError:
            logging.getLogger("ddeutil.workflow.test").exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "s3cr3t" not in stream.getvalue()
    assert json.loads(stream.getvalue().splitlines()[-1])["exc_info"].endswith(
        f"ValueError: {MASK}"
    )
