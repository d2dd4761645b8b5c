"""Hashed cron items (``H``): resolution, stability, spread, errors and per-pipeline seeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.engine.conf_schema import yaml_schema
from ddeutil.workflow.errors import ConfigError, ScheduleError
from ddeutil.workflow.loader import Loader, load_yaml
from ddeutil.workflow.on import On
from ddeutil.workflow.pipeline import Pipeline
from ddeutil.workflow.schedules.cron import CronExpression
from ddeutil.workflow.schedules.cron_schedule import CronSchedule
from ddeutil.workflow.schedules.hashed import cron_label, has_hash, resolve_hashes
from ddeutil.workflow.settings import Settings

WriteConf = Callable[[str, str], Path]
UTC = timezone.utc

CONF = """
nightly:
  type: on.On
  cron: "H H(1-4) * * *"
  timezone: UTC

etl_a:
  type: Pipeline
  on: nightly
  jobs:
    main:
      stages:
        - name: nothing

etl_b:
  type: Pipeline
  on: nightly
  jobs:
    main:
      stages:
        - name: nothing

quarter_hour:
  type: Pipeline
  on:
    - cron: "H/15 * * * *"
      timezone: UTC
  jobs:
    main:
      stages:
        - name: nothing
"""


# ------------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    ("text", "seed", "expected"),
    [
        # Pinned: the values must never change between versions, processes or machines.
        ("H H * * *", "etl_a", "19 15 * * *"),
        ("H H * * *", "etl_b", "55 21 * * *"),
        ("H H(1-4) * * *", "etl_a", "19 4 * * *"),
        ("H/15 * * * *", "etl_a", "4-59/15 * * * *"),
        ("H(0-29)/10 H H H H", "etl_a", "9-29/10 15 1 12 2"),
        ("H(0-29)/10 H H H H", "nightly", "1-29/10 19 22 10 1"),
        # The README's examples.
        ("H H(1-4) * * *", "load_orders", "6 4 * * *"),
        ("H H(1-4) * * *", "load_customers", "49 1 * * *"),
        ("H H * * *", "load_orders", "6 7 * * *"),
        ("H/15 * * * *", "load_orders", "6-59/15 * * * *"),
    ],
)
def test_h_resolves_to_pinned_plain_values(text: str, seed: str, expected: str) -> None:
    assert resolve_hashes(text, seed) == expected


def test_each_form_stays_inside_its_bounds() -> None:
    for i in range(500):
        seed = f"p{i}"
        minute, hour, dom, month, dow = resolve_hashes("H H H H H", seed).split()
        assert 0 <= int(minute) <= 59
        assert 0 <= int(hour) <= 23
        assert 1 <= int(dom) <= 28  # exists in every month
        assert 1 <= int(month) <= 12
        assert 0 <= int(dow) <= 6
        assert 10 <= int(resolve_hashes("H(10-20) * * * *", seed).split()[0]) <= 20
        step = resolve_hashes("H/15 * * * *", seed).split()[0]
        start, _, rest = step.partition("-")
        assert 0 <= int(start) < 15
        assert rest == "59/15"
        ranged = resolve_hashes("H(30-59)/10 * * * *", seed).split()[0]
        assert ranged.endswith("-59/10")
        assert 30 <= int(ranged.split("-")[0]) < 40


def test_h_step_as_wide_as_the_field_is_one_value() -> None:
    resolved = resolve_hashes("* * * * H/7", "x").split()[4]
    assert resolved.isdigit()
    assert 0 <= int(resolved) <= 6


def test_h_may_be_any_item_of_a_list_and_each_item_is_hashed_on_its_own() -> None:
    resolved = resolve_hashes("H(0-29),H(30-59) * * * *", "etl_a").split()[0]
    first, second = (int(v) for v in resolved.split(","))
    assert 0 <= first <= 29
    assert 30 <= second <= 59
    assert resolve_hashes("H,30 * * * *", "etl_a") == "19,30 * * * *"


def test_expressions_without_h_are_returned_unchanged() -> None:
    for text in ("*/5  * * * *", "0 0 * * THU", "0 0 * MAR,OCT THU-SAT", "@hourly", "@HOURLY"):
        assert resolve_hashes(text, "x") is text
        assert not has_hash(text)
    assert has_hash("H * * * *")


def test_fields_are_independent_and_seeds_differ() -> None:
    a = resolve_hashes("H H H H H", "pipeline-one").split()
    b = resolve_hashes("H H H H H", "pipeline-two").split()
    assert a != b
    # The same value range hashed in two fields does not give the same number every time.
    same = sum(
        len(set(resolve_hashes("H(1-12) H(1-12) * H(1-12) *", f"s{i}").split()) - {"*"}) == 1
        for i in range(300)
    )
    assert same < 30  # about 300 / 144 if independent


def test_the_same_seed_gives_the_same_value_in_another_process() -> None:
    code = (
        "from ddeutil.workflow.schedules.hashed import resolve_hashes;"
        "print(resolve_hashes('H H(1-4) * * H', 'etl_a'))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == resolve_hashes("H H(1-4) * * H", "etl_a")


def test_ten_thousand_pipelines_spread_over_the_minutes_of_the_day() -> None:
    counts = Counter(resolve_hashes("H H * * *", f"pipeline-{i}") for i in range(10_000))
    mean = 10_000 / 1440
    assert max(counts.values()) <= 5 * mean
    assert len(counts) > 1440 * 0.95  # nearly every minute of the day is used
    hours = Counter(key.split()[1] for key in counts.elements())
    assert len(hours) == 24


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("H(5-2) * * * *", "minute: range in 'H(5-2)' goes backwards"),
        ("H(0-99) * * * *", "minute: 'H(0-99)' is out of range 0-59"),
        ("* H(0-24) * * *", "hour: 'H(0-24)' is out of range 0-23"),
        ("* * * * H(1-7)", "day-of-week: 'H(1-7)' is out of range 0-6"),
        ("H/0 * * * *", "minute: step 0 in 'H/0' must be 1-60"),
        ("* H/25 * * *", "hour: step 25 in 'H/25' must be 1-24"),
        ("HH * * * *", "minute: cannot read 'HH'"),
        ("H(1-4 * * * *", "minute: cannot read 'H(1-4'"),
        ("H5 * * * *", "minute: cannot read 'H5'"),
        ("* * * H(JAN-MAR) *", "month: cannot read 'H(JAN-MAR)'"),
        ("H 1-H * * *", "hour: H must start an item, got '1-H'"),
        ("H(1 - 4) * * * *", "expected 5 fields"),
        ("H H * *", "expected 5 fields"),
    ],
)
def test_bad_h_forms_are_schedule_errors_naming_the_key_value_and_reason(
    text: str, reason: str
) -> None:
    with pytest.raises(ScheduleError) as info:
        On.parse({"cron": text}, default_tz="UTC")
    assert info.value.key == "cron"
    assert repr(text) in info.value.message
    assert reason in info.value.message


def test_a_bad_h_in_a_template_names_the_file_template_and_key(
    write_conf: WriteConf, settings: Settings
) -> None:
    write_conf("bad.yml", "broken:\n  type: on.On\n  cronjob: 'H/0 * * * *'\n")
    with pytest.raises(ConfigError) as info:
        On.from_loader("broken", settings=settings)
    assert info.value.template == "broken"
    assert info.value.key == "cronjob"
    assert info.value.file is not None
    assert info.value.file.endswith("bad.yml")
    assert "step 0 in 'H/0'" in info.value.message


def test_a_bad_h_inline_in_a_pipeline_names_the_pipeline_and_the_on_key(
    write_conf: WriteConf, settings: Settings
) -> None:
    write_conf(
        "bad.yml",
        "late:\n  type: Pipeline\n  on:\n    - cron: '0 0 * * *'\n    - cron: 'H(1-4 * * * *'\n",
    )
    with pytest.raises(ConfigError) as info:
        Pipeline.from_loader("late", settings=settings)
    assert info.value.template == "late"
    assert info.value.key == "on[1].cron"
    assert "minute: cannot read 'H(1-4'" in info.value.message


# ----------------------------------------------------------------- On and seeds


def test_on_keeps_the_text_as_written_and_uses_the_resolved_expression() -> None:
    on = On.parse({"cron": "H  H(1-4) * * *", "timezone": "UTC"}, seed="etl_a")
    assert str(on.cronjob) == "19 4 * * *"
    assert on.written == "H H(1-4) * * *"
    assert on.key == "19 4 * * *@UTC"
    assert on.label == "H H(1-4) * * * (= 19 4 * * *)"
    assert "written" not in on.model_dump()
    assert next(on.fire_times(datetime(2024, 1, 1, tzinfo=UTC))) == datetime(
        2024, 1, 1, 4, 19, tzinfo=UTC
    )
    # The scheduler rebuilds schedules from the resolved text, without H.
    record = CronSchedule.of(on)
    assert record.key == on.key
    assert CronSchedule.parse(str(on.cronjob), "UTC").key == on.key
    # A copy with another zone keeps both texts.
    moved = on.model_copy(update={"timezone": "Asia/Bangkok"})
    assert (str(moved.cronjob), moved.written) == ("19 4 * * *", "H H(1-4) * * *")


def test_plain_schedules_have_no_written_text() -> None:
    on = On.parse({"cron": "*/5 * * * *"}, default_tz="UTC", seed="etl_a")
    assert on.written is None
    assert on.label == "*/5 * * * *"
    assert cron_label("*/5 * * * *", None) == "*/5 * * * *"


def test_without_a_pipeline_the_seed_is_the_template_name_else_the_expression(
    write_conf: WriteConf, settings: Settings
) -> None:
    write_conf("on.yml", CONF)
    template = On.from_loader("nightly", settings=settings)
    assert str(template.cronjob) == resolve_hashes("H H(1-4) * * *", "nightly")
    bare = On.parse({"cron": "H  H(1-4) * * *"}, default_tz="UTC")
    assert str(bare.cronjob) == resolve_hashes("H H(1-4) * * *", "H H(1-4) * * *")


def test_pipelines_sharing_an_h_template_resolve_differently(
    write_conf: WriteConf, settings: Settings
) -> None:
    write_conf("pipes.yml", CONF)
    loader = Loader.from_settings(settings)
    a = Pipeline.from_loader("etl_a", settings=settings, loader=loader)
    b = Pipeline.from_loader("etl_b", settings=settings, loader=loader)
    inline = Pipeline.from_loader("quarter_hour", settings=settings, loader=loader)
    assert str(a.on[0].cronjob) == "19 4 * * *"
    assert str(b.on[0].cronjob) == "55 2 * * *"
    assert a.on[0].name == b.on[0].name == "nightly"
    assert a.on[0].written == b.on[0].written == "H H(1-4) * * *"
    assert a.on[0].key != b.on[0].key
    assert str(inline.on[0].cronjob) == resolve_hashes("H/15 * * * *", "quarter_hour")
    # Loading again (another process, another day) gives the same times.
    again = Pipeline.from_loader("etl_a", settings=settings, loader=Loader.from_settings(settings))
    assert again.on[0].key == a.on[0].key


def test_the_dst_policy_follows_the_resolved_expression() -> None:
    fixed = On.parse({"cron": "H H * * *", "timezone": "Europe/Berlin"}, seed="etl_a")
    wildcard = On.parse({"cron": "H * * * *", "timezone": "Europe/Berlin"}, seed="etl_a")
    assert isinstance(fixed.cronjob, CronExpression)
    assert fixed.cronjob.fixed_time
    assert not wildcard.cronjob.fixed_time


# -------------------------------------------------------------- shown to people


def _next(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env |= {"WORKFLOW_ROOT_PATH": str(root), "WORKFLOW_CORE_TIMEZONE": "UTC"}
    return subprocess.run(
        [sys.executable, "-m", "ddeutil.workflow", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=60,
        check=False,
    )


def test_workflow_next_and_list_show_h_and_what_it_resolved_to(
    write_conf: WriteConf, root: Path
) -> None:
    write_conf("pipes.yml", CONF)
    out = _next(root, "next", "etl_a", "-n", "2", "--after", "2024-01-01T00:00Z")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "nightly: H H(1-4) * * * (= 19 4 * * *) (UTC)",
        "  2024-01-01 04:19:00+00:00  =  2024-01-01 04:19:00Z",
        "  2024-01-02 04:19:00+00:00  =  2024-01-02 04:19:00Z",
    ]
    as_json = _next(root, "next", "etl_b", "-n", "1", "--after", "2024-01-01T00:00Z", "--json")
    schedule = json.loads(as_json.stdout)["schedules"][0]
    assert schedule["cron"] == "55 2 * * *"
    assert schedule["written"] == "H H(1-4) * * *"
    assert schedule["fire_times"][0]["utc"] == "2024-01-01T02:55:00+00:00"
    listed = _next(root, "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.strip().startswith("nightly"))
    assert "H H(1-4) * * * (= 51 4 * * *) (UTC)" in row  # the template alone: its own name


def test_the_api_and_ui_show_h_and_what_it_resolved_to(
    write_conf: WriteConf, settings: Settings
) -> None:
    pytest.importorskip("fastapi")
    from ddeutil.workflow.api.ui.pages import _environment
    from ddeutil.workflow.api.views import pipeline_summary

    write_conf("pipes.yml", CONF)
    pipeline = Pipeline.from_loader("etl_a", settings=settings)
    summary = pipeline_summary(pipeline, datetime(2024, 1, 1, tzinfo=UTC), 1)
    info = summary.schedules[0]
    assert (info.cron, info.written) == ("19 4 * * *", "H H(1-4) * * *")
    assert info.next == [datetime(2024, 1, 1, 4, 19, tzinfo=UTC)]
    render = _environment().from_string("{{ s|cron }}").render
    assert render(s=info) == "H H(1-4) * * * (= 19 4 * * *)"
    plain = info.model_copy(update={"cron": "*/5 * * * *", "written": None})
    assert render(s=plain) == "*/5 * * * *"


def test_the_json_schema_accepts_h() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = yaml_schema()
    assert "H" in schema["$defs"]["OnTemplate"]["properties"]["cron"]["description"]
    data: Any = load_yaml(CONF)
    assert data["nightly"]["cron"] == "H H(1-4) * * *"
    jsonschema.validate(data, schema)


@pytest.mark.parametrize(
    "char", [c for c in map(chr, range(0x3000 + 1)) if c.isspace() and c not in " \t"]
)
def test_a_unicode_space_between_h_items_is_rejected_not_taken_for_a_separator(char: str) -> None:
    with pytest.raises(ScheduleError, match=rf"U\+{ord(char):04X}"):
        resolve_hashes(f"H{char}H * * *", "etl_a")
    with pytest.raises(ScheduleError, match=rf"U\+{ord(char):04X}"):
        On.parse({"cron": f"H H * * *{char}"}, name="nightly")


def test_a_unicode_digit_in_an_h_range_is_rejected() -> None:
    with pytest.raises(ScheduleError, match="U\\+0665"):
        resolve_hashes("H(1-\u0665) * * * *", "etl_a")
