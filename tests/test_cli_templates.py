"""CLI verbs ``validate``, ``list`` and ``next`` (with fake template classes).

The fake ``On`` of ``tests/fixtures_pkg`` fires every ``every`` minutes since the
epoch; the fake ``Pipeline`` builds its ``on`` list through the loader and reports
a warning for a required param without default when it is scheduled.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.cli import CliContext, main
from ddeutil.workflow.cli import templates as cli_templates
from ddeutil.workflow.clock import FakeClock, SystemClock
from ddeutil.workflow.errors import TemplateNotFound
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.settings import Settings

TESTS = Path(__file__).parent
WriteConf = Callable[[str, str], Path]
REAL_DEFAULT_CLOCK = cli_templates.default_clock

GOOD = """\
every_5:
  type: on.On
  every: 5
  timezone: Asia/Bangkok
hourly_ny:
  type: On
  every: 60
  timezone: America/New_York
pipe_a:
  type: pipeline.Pipeline
  on: [every_5, hourly_ny]
  params:
    mode: {default: full}
pipe_manual:
  type: Pipeline
  params:
    required-one: {}
thing:
  type: things.Thing
"""


@pytest.fixture(autouse=True)
def fixtures_pkg(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> FakeClock:
    """Fake template classes importable, and ``now`` = 2024-01-01 00:00 UTC."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setattr(cli_templates, "default_clock", lambda: clock)
    return clock


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(WORKFLOW_CORE_REGISTRY="fixtures_pkg")


Run = Callable[..., tuple[int, str]]


@pytest.fixture
def run(settings: Settings) -> Run:
    """Parse ``argv`` with only this module's verbs and call the handler."""

    def _run(*argv: str, masker: Masker | None = None) -> tuple[int, str]:
        parser = argparse.ArgumentParser(prog="workflow")
        cli_templates.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        out = io.StringIO()
        ctx = CliContext(settings=settings, masker=masker or Masker(), out=out)
        code: int = args.handler(args, ctx)
        return code, out.getvalue()

    return _run


def as_json(text: str) -> Any:
    return json.loads(text)


# ------------------------------------------------------------------------ validate


def test_validate_all_good_prints_the_count_and_exits_0(write_conf: WriteConf, run: Run) -> None:
    write_conf("good.yml", GOOD)
    code, out = run("validate")
    assert code == 0
    assert out.splitlines()[-1] == "5 templates OK"
    assert "error" not in out


def test_validate_prints_warnings_without_failing(write_conf: WriteConf, run: Run) -> None:
    write_conf(
        "p.yml",
        """\
        every_5: {type: on.On, every: 5}
        scheduled: {type: Pipeline, on: every_5, params: {need: {}}}
        manual: {type: Pipeline, params: {need: {}}}
        """,
    )
    code, out = run("validate")
    assert code == 0
    (warning,) = [line for line in out.splitlines() if line.startswith("warning:")]
    assert "template 'scheduled'" in warning
    assert "p.yml" in warning
    assert "param 'need' is required and has no default" in warning
    assert out.splitlines()[-1] == "3 templates OK"


BROKEN = """\
ok: {type: on.On, every: 5}
bad_every: {type: on.On, every: 0}
bad_ref: {type: Pipeline, on: [ok, nope]}
no_builder: {type: things.NotATemplate}
buggy: {type: things.Buggy}
cond: {type: things.Conditional}
unresolvable: {type: nothing.Here}
notype: {every: 5}
"""


def test_validate_reports_every_error_with_file_template_and_key(
    write_conf: WriteConf, run: Run
) -> None:
    path = write_conf("broken.yml", BROKEN)
    syntax = write_conf("syntax.yml", "x: [1,\n")
    write_conf("dup1.yml", "twice: {type: on.On, every: 1}\n")
    write_conf("dup2.yml", "twice: {type: on.On, every: 1}\n")
    code, out = run("validate")
    assert code == 1
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    by_template = {
        name: line for line in errors for name in BROKEN_NAMES if f"template '{name}'" in line
    }
    assert (
        f"error: {path}: template 'bad_every': key 'every': `every` must be"
        in by_template["bad_every"]
    )
    assert "key 'on[1]': unknown schedule 'nope'" in by_template["bad_ref"]
    assert "it has no from_template()" in by_template["no_builder"]
    assert "key 'type'" in by_template["no_builder"]
    assert "unexpected ZeroDivisionError" in by_template["buggy"]
    assert "calls are not allowed in condition" in by_template["cond"]
    assert "key 'type': type 'nothing.Here' resolves to nothing" in by_template["unresolvable"]
    assert "key 'type'" in by_template["notype"]
    assert any(str(syntax) in line and "line 2" in line for line in errors)
    assert any("'twice' is defined more than once" in line for line in errors)
    assert len(errors) == 9
    assert out.splitlines()[-1] == "1 templates OK, 9 errors"


BROKEN_NAMES = ["bad_every", "bad_ref", "no_builder", "buggy", "cond", "unresolvable", "notype"]


def test_validate_json_is_machine_readable(write_conf: WriteConf, run: Run) -> None:
    write_conf("broken.yml", BROKEN)
    write_conf("p.yml", "warned: {type: Pipeline, on: ok, params: {need: {}}}\n")
    code, out = run("validate", "--json")
    assert code == 1
    doc = as_json(out)
    assert doc["ok"] is False
    assert doc["templates_ok"] == 2
    bad_every = next(e for e in doc["errors"] if e["template"] == "bad_every")
    assert bad_every["key"] == "every"
    assert bad_every["file"].endswith("broken.yml")
    assert bad_every["error"] == "ConfigError"
    assert [w["template"] for w in doc["warnings"]] == ["warned"]
    valid = {t["name"]: t["valid"] for t in doc["templates"]}
    assert valid["ok"] is True
    assert valid["buggy"] is False
    assert {t["name"]: t["kind"] for t in doc["templates"]}["warned"] == "pipeline"


def test_validate_with_an_empty_conf_folder_is_ok(run: Run) -> None:
    code, out = run("validate", "--json")
    assert code == 0
    assert as_json(out)["templates_ok"] == 0


def test_validate_masks_secrets_in_messages(write_conf: WriteConf, run: Run) -> None:
    write_conf("t.yml", "leak: {type: on.On, every: hunter2-secret}\n")
    code, out = run("validate", masker=Masker(frozenset({"hunter2-secret"})))
    assert code == 1
    assert "hunter2-secret" not in out
    assert "***" in out


# ---------------------------------------------------------------------------- list


def test_list_groups_by_kind_with_next_fire_times(write_conf: WriteConf, run: Run) -> None:
    write_conf("good.yml", GOOD)
    code, out = run("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "pipelines (2):"
    assert lines.index("schedules (2):") == 3
    assert lines.index("other templates (1):") == 6
    pipe_a = next(line for line in lines if "pipe_a" in line)
    assert "next 2024-01-01 07:05:00+07:00 (2024-01-01 00:05:00Z)" in pipe_a
    assert "not scheduled" in next(line for line in lines if "pipe_manual" in line)
    hourly = next(line for line in lines if "hourly_ny" in line)
    assert "*/60 * * * * (America/New_York)" in hourly
    assert "next 2023-12-31 20:00:00-05:00 (2024-01-01 01:00:00Z)" in hourly
    assert "type things.Thing" in next(line for line in lines if "thing" in line)


def test_list_shows_invalid_templates_and_points_to_validate(
    write_conf: WriteConf, run: Run
) -> None:
    write_conf("t.yml", "ok: {type: on.On, every: 5}\nbad: {type: on.On, every: -1}\n")
    write_conf("syntax.yml", "[\n")
    code, out = run("list")
    assert code == 0
    assert "INVALID: `every` must be a positive number" in next(
        line for line in out.splitlines() if "bad" in line
    )
    assert "2 problem(s) in the conf folder; run `workflow validate`" in out


def test_list_of_an_empty_conf_folder_says_so(run: Run, settings: Settings) -> None:
    code, out = run("list")
    assert code == 0
    assert out.strip() == f"no templates in {settings.conf_path}"


def test_list_json(write_conf: WriteConf, run: Run) -> None:
    write_conf("good.yml", GOOD)
    write_conf("syntax.yml", "[\n")
    code, out = run("list", "--json")
    assert code == 0
    doc = as_json(out)
    assert doc["now"] == "2024-01-01T00:00:00+00:00"
    rows = {r["name"]: r for r in doc["templates"]}
    assert rows["pipe_a"]["kind"] == "pipeline"
    assert rows["pipe_a"]["next"] == "2024-01-01T00:05:00+00:00"
    assert rows["pipe_manual"]["next"] is None
    assert rows["every_5"]["cron"] == "*/5 * * * *"
    assert rows["every_5"]["timezone"] == "Asia/Bangkok"
    assert rows["thing"]["kind"] == "other"
    assert "next" not in rows["thing"]
    assert len(doc["errors"]) == 1


def test_list_reads_now_from_the_clock(write_conf: WriteConf, run: Run, clock: FakeClock) -> None:
    write_conf("good.yml", GOOD)
    clock.set(datetime(2024, 6, 1, 12, 7, tzinfo=timezone.utc))
    rows = {r["name"]: r for r in as_json(run("list", "--json")[1])["templates"]}
    assert rows["every_5"]["next"] == "2024-06-01T12:10:00+00:00"


# ---------------------------------------------------------------------------- next


def test_next_of_a_schedule_prints_local_and_utc(write_conf: WriteConf, run: Run) -> None:
    write_conf("good.yml", GOOD)
    code, out = run("next", "every_5", "-n", "3")
    assert code == 0
    assert out.splitlines() == [
        "every_5: */5 * * * * (Asia/Bangkok)",
        "  2024-01-01 07:05:00+07:00  =  2024-01-01 00:05:00Z",
        "  2024-01-01 07:10:00+07:00  =  2024-01-01 00:10:00Z",
        "  2024-01-01 07:15:00+07:00  =  2024-01-01 00:15:00Z",
    ]


def test_next_of_a_pipeline_lists_every_schedule(write_conf: WriteConf, run: Run) -> None:
    write_conf("good.yml", GOOD)
    write_conf("inline.yml", "inline: {type: Pipeline, on: [{every: 30, timezone: UTC}]}\n")
    code, out = run("next", "pipe_a", "-n", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "every_5: */5 * * * * (Asia/Bangkok)"
    assert lines[3] == "hourly_ny: */60 * * * * (America/New_York)"
    assert lines[4] == "  2023-12-31 20:00:00-05:00  =  2024-01-01 01:00:00Z"
    assert len(lines) == 6
    code, out = run("next", "inline", "-n", "1")
    assert out.splitlines() == [
        "inline schedule: */30 * * * * (UTC)",
        "  2024-01-01 00:30:00+00:00  =  2024-01-01 00:30:00Z",
    ]


def test_next_defaults_to_five_fire_times(write_conf: WriteConf, run: Run) -> None:
    write_conf("good.yml", GOOD)
    assert len(run("next", "every_5")[1].splitlines()) == 6


def test_next_after_an_explicit_instant(write_conf: WriteConf, run: Run) -> None:
    write_conf("good.yml", GOOD)
    _, out = run("next", "every_5", "-n", "1", "--after", "2025-03-09T06:58Z")
    assert out.splitlines()[1].endswith("2025-03-09 07:00:00Z")
    _, out = run("next", "every_5", "-n", "1", "--after", "2025-03-09T13:58:00")
    assert out.splitlines()[1].endswith("2025-03-09 07:00:00Z")  # naive: Asia/Bangkok time
    _, out = run("next", "every_5", "-n", "1", "--after", "2025-03-09T13:58+07:00")
    assert out.splitlines()[1].endswith("2025-03-09 07:00:00Z")


def test_next_reads_a_naive_after_in_each_schedules_own_zone(
    write_conf: WriteConf, run: Run
) -> None:
    write_conf("good.yml", GOOD)
    code, out = run("next", "pipe_a", "-n", "1", "--after", "2025-03-09T06:58", "--json")
    assert code == 0
    doc = as_json(out)
    assert doc["after"] == "2025-03-09T06:58:00"
    bangkok, new_york = doc["schedules"]
    assert bangkok["after"] == "2025-03-09T06:58:00+07:00"
    assert bangkok["fire_times"][0]["local"] == "2025-03-09T07:00:00+07:00"
    assert new_york["after"] == "2025-03-09T06:58:00-04:00"
    assert new_york["fire_times"][0]["local"] == "2025-03-09T07:00:00-04:00"


def test_next_json(write_conf: WriteConf, run: Run) -> None:
    write_conf("good.yml", GOOD)
    code, out = run("next", "hourly_ny", "-n", "2", "--json")
    assert code == 0
    doc = as_json(out)
    assert doc["name"] == "hourly_ny"
    assert doc["kind"] == "on"
    assert doc["after"] == "2024-01-01T00:00:00+00:00"
    (schedule,) = doc["schedules"]
    assert schedule["timezone"] == "America/New_York"
    assert schedule["fire_times"] == [
        {"utc": "2024-01-01T01:00:00+00:00", "local": "2023-12-31T20:00:00-05:00"},
        {"utc": "2024-01-01T02:00:00+00:00", "local": "2023-12-31T21:00:00-05:00"},
    ]


def test_next_of_an_unknown_name_raises_template_not_found(write_conf: WriteConf, run: Run) -> None:
    write_conf("good.yml", GOOD)
    with pytest.raises(TemplateNotFound, match="'nope'"):
        run("next", "nope")


def test_next_of_a_template_that_is_no_schedule_is_bad_input(
    write_conf: WriteConf, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    write_conf("good.yml", GOOD)
    assert run("next", "thing")[0] == 2
    assert "'thing' (type things.Thing) is neither a schedule nor a pipeline" in (
        capsys.readouterr().err
    )
    assert run("next", "pipe_manual")[0] == 2
    assert "pipeline 'pipe_manual' has no schedule" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["-n", "0"], ["-n", "x"], ["--after", "yesterday"]])
def test_next_rejects_bad_arguments(run: Run, bad: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run("next", "every_5", *bad)
    assert info.value.code == 2


# ------------------------------------------------------------------- through main


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, root: Path) -> Iterator[None]:
    """Environment for ``main()``; removes main's log handler afterwards."""
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.setenv("WORKFLOW_CORE_REGISTRY", "fixtures_pkg")
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "UTC")
    yield
    rootlog = logging.getLogger()
    for handler in [h for h in rootlog.handlers if getattr(h, "_ddeutil_workflow", False)]:
        rootlog.removeHandler(handler)


@pytest.mark.usefixtures("cli_env")
def test_main_unknown_name_exits_2_naming_it(
    write_conf: WriteConf, capsys: pytest.CaptureFixture[str]
) -> None:
    write_conf("good.yml", GOOD)
    out = io.StringIO()
    assert main(["--log-format", "text", "next", "no-such-schedule"], out=out) == 2
    assert "no template named 'no-such-schedule'" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_env")
def test_main_validate_exit_codes(write_conf: WriteConf) -> None:
    write_conf("good.yml", GOOD)
    out = io.StringIO()
    assert main(["--log-format", "text", "validate"], out=out) == 0
    assert "5 templates OK" in out.getvalue()
    write_conf("bad.yml", "bad: {type: on.On, every: 0}\n")
    assert main(["--log-format", "text", "validate"], out=io.StringIO()) == 1


@pytest.mark.usefixtures("cli_env")
def test_main_next_of_a_template_that_does_not_build_exits_2(
    write_conf: WriteConf, capsys: pytest.CaptureFixture[str]
) -> None:
    write_conf("bad.yml", "bad: {type: on.On, every: 0}\n")
    assert main(["--log-format", "text", "next", "bad"], out=io.StringIO()) == 2
    assert "template 'bad': key 'every'" in capsys.readouterr().err


# ------------------------------------------------------------------ building API


def test_build_template_locates_errors_of_template_classes(
    write_conf: WriteConf, settings: Settings
) -> None:
    path = write_conf("t.yml", "bad_ref: {type: Pipeline, on: nope}\n")
    loader = Loader.from_settings(settings)
    built = cli_templates.build_template(loader.get("bad_ref"), loader=loader, settings=settings)
    assert built.obj is None
    assert built.kind == "pipeline"
    assert built.error is not None
    assert (built.error.file, built.error.template, built.error.key) == (
        str(path),
        "bad_ref",
        "on[0]",
    )


def test_template_kind_follows_the_class_hierarchy() -> None:
    from fixtures_pkg.on import On
    from fixtures_pkg.pipeline import Pipeline, SubPipeline
    from fixtures_pkg.things import Thing

    assert cli_templates.template_kind(Pipeline) == "pipeline"
    assert cli_templates.template_kind(SubPipeline) == "pipeline"
    assert cli_templates.template_kind(On) == "on"
    assert cli_templates.template_kind(Thing) == "other"


def test_default_clock_is_the_system_clock() -> None:
    assert isinstance(REAL_DEFAULT_CLOCK(), SystemClock)


def test_a_pipeline_whose_class_does_not_resolve_is_still_listed_as_a_pipeline(
    write_conf: WriteConf, run: Run
) -> None:
    write_conf("t.yml", "p: {type: nowhere.Pipeline}\n")
    rows = as_json(run("list", "--json")[1])["templates"]
    assert [(r["name"], r["kind"], r["valid"]) for r in rows] == [("p", "pipeline", False)]


# ---------------------------------------------------------- with the real On class

REAL_ON = """\
ny_0230: {type: on.On, cron: "30 2 * * *", timezone: America/New_York}
ny_0130: {type: On, cronjob: "30 1 * * *", timezone: America/New_York}
ny_hourly: {type: ddeutil.workflow.on.On, cron: "0 * * * *", timezone: America/New_York}
every_5_default_zone: {type: on.On, cron: "*/5 * * * *"}
"""


@pytest.fixture
def real_run(make_settings: Callable[..., Settings]) -> Run:
    """Like ``run`` but with the default registry, where the real On lives."""
    pytest.importorskip("ddeutil.workflow.on", reason="on.py not written yet")
    settings = make_settings(WORKFLOW_CORE_TIMEZONE="Asia/Bangkok")

    def _run(*argv: str) -> tuple[int, str]:
        parser = argparse.ArgumentParser(prog="workflow")
        cli_templates.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        out = io.StringIO()
        code: int = args.handler(args, CliContext(settings=settings, masker=Masker(), out=out))
        return code, out.getvalue()

    return _run


def test_real_on_next_runs_a_spring_forward_gap_time_at_the_first_valid_instant(
    write_conf: WriteConf, real_run: Run
) -> None:
    write_conf("on.yml", REAL_ON)
    code, out = real_run("next", "ny_0230", "-n", "2", "--after", "2025-03-08T12:00Z")
    assert code == 0
    assert out.splitlines() == [
        "ny_0230: 30 2 * * * (America/New_York)",
        "  2025-03-09 03:00:00-04:00  =  2025-03-09 07:00:00Z",
        "  2025-03-10 02:30:00-04:00  =  2025-03-10 06:30:00Z",
    ]


def test_real_on_next_shows_both_copies_of_a_repeated_hour_with_their_offsets(
    write_conf: WriteConf, real_run: Run
) -> None:
    write_conf("on.yml", REAL_ON)
    _, out = real_run("next", "ny_hourly", "-n", "3", "--after", "2025-11-02T04:00Z")
    assert out.splitlines()[1:] == [
        "  2025-11-02 01:00:00-04:00  =  2025-11-02 05:00:00Z",
        "  2025-11-02 01:00:00-05:00  =  2025-11-02 06:00:00Z",
        "  2025-11-02 02:00:00-05:00  =  2025-11-02 07:00:00Z",
    ]
    _, out = real_run("next", "ny_0130", "-n", "2", "--after", "2025-11-01T12:00Z", "--json")
    utc = [t["utc"] for t in as_json(out)["schedules"][0]["fire_times"]]
    assert utc == ["2025-11-02T05:30:00+00:00", "2025-11-03T06:30:00+00:00"]


def test_real_on_list_and_validate(write_conf: WriteConf, real_run: Run) -> None:
    write_conf("on.yml", REAL_ON)
    code, out = real_run("validate")
    assert (code, out.splitlines()[-1]) == (0, "4 templates OK")
    rows = {r["name"]: r for r in as_json(real_run("list", "--json")[1])["templates"]}
    assert rows["every_5_default_zone"]["timezone"] == "Asia/Bangkok"
    assert rows["ny_0130"]["cron"] == "30 1 * * *"
    assert {r["kind"] for r in rows.values()} == {"on"}


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ('{type: on.On, cron: "61 * * * *"}', "cron", "61"),
        ('{type: on.On, cron: "*/0 * * * *"}', "cron", ""),
        ('{type: on.On, cron: "0 0 * * * *"}', "cron", ""),
        ('{type: on.On, cron: "* * * * *", timezone: Mars/Olympus}', "timezone", "Mars/Olympus"),
    ],
)
def test_real_on_validate_reports_bad_schedules_with_file_template_and_key(
    write_conf: WriteConf, real_run: Run, body: str, key: str, words: str
) -> None:
    path = write_conf("bad.yml", f"ok: {{type: on.On, cron: '* * * * *'}}\nbad: {body}\n")
    code, out = real_run("validate", "--json")
    assert code == 1
    doc = as_json(out)
    (error,) = doc["errors"]
    assert (error["file"], error["template"], error["key"]) == (str(path), "bad", key)
    assert words in error["message"]
    assert doc["templates_ok"] == 1
