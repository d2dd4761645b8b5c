"""The catalog's validators: in this process, and in a helper process (the daemon's).

Both must give the catalog the same facts and the same located errors; the helper
process must be restarted once when it dies, and must never make the caller wait
beyond its timeouts.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.errors import ConfigError
from ddeutil.workflow.loader import Loader, RawTemplate
from ddeutil.workflow.schedules.planner import Catchup
from ddeutil.workflow.scheduling.catalog import PipelineCatalog
from ddeutil.workflow.scheduling.validation import (
    Concurrency,
    InProcessValidator,
    PipelineFacts,
)
from ddeutil.workflow.scheduling.validator_process import ProcessValidator
from ddeutil.workflow.settings import Settings

WriteConf = Callable[[str, str], Path]

CONF = """
every-5:
  type: on.On
  cron: "*/5 * * * *"
  timezone: Asia/Bangkok

scheduled:
  type: Pipeline
  on: [every-5, {cron: "0 1 * * *"}]
  concurrency: skip
  catchup: all
  params:
    day: {type: date, default: "2024-01-02"}
    who: {type: str, default: team}
  jobs:
    j: {stages: [{name: a, run: "x = 1"}]}

needs-input:
  type: pipeline.Pipeline
  on: {cron: "* * * * *"}
  params: {source: str}

manual:
  type: ddeutil.workflow.pipeline.Pipeline
  params: {source: str}

bad-cron:
  type: Pipeline
  on: {cron: "not a cron"}

bad-key:
  type: Pipeline
  jobs:
    j: {stages: [{name: a, bsh: "echo"}]}
"""


@pytest.fixture
def validator() -> Iterator[ProcessValidator]:
    with ProcessValidator(timeout=60) as made:
        yield made


def outcomes(
    validator: InProcessValidator | ProcessValidator, loader: Loader, settings: Settings
) -> dict[str, PipelineFacts | ConfigError]:
    templates = loader.of_kind("pipeline")
    return {
        t.name: o
        for t, o in zip(templates, validator.validate(templates, loader, settings), strict=True)
    }


def test_both_validators_give_the_same_facts_and_errors(
    write_conf: WriteConf, settings: Settings, validator: ProcessValidator
) -> None:
    write_conf("conf.yml", CONF)
    loader = Loader.from_settings(settings)
    here = outcomes(InProcessValidator(), loader, settings)
    there = outcomes(validator, loader, settings)
    assert (
        sorted(here)
        == sorted(there)
        == [
            "bad-cron",
            "bad-key",
            "manual",
            "needs-input",
            "scheduled",
        ]
    )
    for name, mine in here.items():
        theirs = there[name]
        assert type(theirs) is type(mine), name
        if isinstance(mine, ConfigError):
            assert isinstance(theirs, ConfigError)
            assert (theirs.file, theirs.template, theirs.key, str(theirs)) == (
                mine.file,
                mine.template,
                mine.key,
                str(mine),
            )
        else:
            assert theirs == mine, name

    facts = there["scheduled"]
    assert isinstance(facts, PipelineFacts)
    assert [on.key for on in facts.schedules] == ["*/5 * * * *@Asia/Bangkok", "0 1 * * *@UTC"]
    assert facts.schedules[0].name == "every-5"
    assert facts.concurrency == "skip"  # what the scheduler compares
    assert facts.concurrency is Concurrency.SKIP
    assert facts.catchup is Catchup.ALL
    assert {k: str(v) for k, v in facts.defaults.items()} == {"day": "2024-01-02", "who": "team"}
    assert "source" in (there["needs-input"].unschedulable or "")  # type: ignore[union-attr]
    assert there["manual"].unschedulable is None  # type: ignore[union-attr]
    bad = there["bad-cron"]
    assert isinstance(bad, ConfigError)
    assert (bad.template, bad.key) == ("bad-cron", "on.cron")
    assert bad.file is not None
    assert bad.file.endswith("conf.yml")
    assert validator.starts == 1


def test_a_batch_size_smaller_than_the_conf_gives_the_same_outcomes(
    write_conf: WriteConf, settings: Settings
) -> None:
    write_conf("conf.yml", CONF)
    loader = Loader.from_settings(settings)
    with ProcessValidator(batch=2) as small:
        assert (
            outcomes(small, loader, settings).keys()
            == outcomes(InProcessValidator(), loader, settings).keys()
        )
        assert small.starts == 1


def test_a_killed_helper_is_restarted_once_and_the_catalog_is_unaffected(
    write_conf: WriteConf,
    settings: Settings,
    validator: ProcessValidator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_conf("conf.yml", CONF)
    catalog = PipelineCatalog(Loader.from_settings(settings), settings, validator)
    assert catalog.reload(force=False)
    before = {e.name: e.version for e in catalog}
    pid = validator.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with caplog.at_level(logging.ERROR, logger="ddeutil.workflow.scheduling.validator_process"):
        assert catalog.reload(force=True)
    assert "killed by SIGKILL" in caplog.text
    assert "restarting it once" in caplog.text
    assert validator.starts == 2
    assert validator.pid != pid
    assert {e.name: e.version for e in catalog} == before


def test_a_helper_that_keeps_dying_leaves_the_last_good_versions_and_says_why(
    write_conf: WriteConf,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook module that kills the process it is imported in: the helper, not the daemon."""
    pkg = tmp_path / "pkg" / "deadly"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text("import os\n\nos._exit(7)\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    settings = make_settings(WORKFLOW_CORE_REGISTRY="ddeutil.workflow,deadly")
    write_conf("a.yml", "steady:\n  type: Pipeline\n  on: {cron: '* * * * *'}\n")
    with ProcessValidator(method="spawn") as validator:
        catalog = PipelineCatalog(Loader.from_settings(settings), settings, validator)
        catalog.reload(force=False)
        assert [e.name for e in catalog] == ["steady"]
        write_conf(
            "b.yml",
            "hooked:\n  type: Pipeline\n  jobs: {j: {stages: [{name: h, uses: tasks/x@y}]}}\n",
        )
        with caplog.at_level(logging.ERROR):
            assert catalog.reload(force=False)
        assert validator.starts == 2  # the first (which died here), and one restart
        assert "exited with status 7" in caplog.text
        assert "failed again" in caplog.text
        assert "steady: new version is invalid, keeping the last good version" in caplog.text
        assert "hooked is invalid and is not scheduled" in caplog.text
        assert [e.name for e in catalog] == ["steady"]
        assert catalog.get("steady").schedules  # type: ignore[union-attr]


def test_a_helper_that_hangs_is_killed_after_the_timeout(
    write_conf: WriteConf,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pkg = tmp_path / "pkg" / "sleepy"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text("import time\n\ntime.sleep(60)\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    settings = make_settings(WORKFLOW_CORE_REGISTRY="ddeutil.workflow,sleepy")
    write_conf(
        "b.yml", "hooked:\n  type: Pipeline\n  jobs: {j: {stages: [{name: h, uses: tasks/x@y}]}}\n"
    )
    loader = Loader.from_settings(settings)
    with ProcessValidator(method="spawn", timeout=1.0) as validator:
        started = time.monotonic()
        with caplog.at_level(logging.ERROR):
            (outcome,) = validator.validate(loader.of_kind("pipeline"), loader, settings)
        elapsed = time.monotonic() - started
    assert isinstance(outcome, ConfigError)
    assert "cannot be validated" in outcome.message
    assert "no answer within 1s" in outcome.message
    assert (outcome.template, outcome.file) == ("hooked", str(loader.get("hooked").file))
    assert elapsed < 30  # two starts (spawn) and two 1 s waits, never the 60 s sleep


def test_nothing_to_validate_starts_no_process(settings: Settings) -> None:
    with ProcessValidator() as validator:
        assert validator.validate([], Loader.from_settings(settings), settings) == []
        assert validator.starts == 0
        assert validator.pid is None


def test_an_index_that_cannot_be_sent_is_an_error_per_template_not_a_crash(
    write_conf: WriteConf, settings: Settings, validator: ProcessValidator
) -> None:
    write_conf("conf.yml", CONF)
    loader = Loader.from_settings(settings)
    odd = RawTemplate("odd", Path("odd.yml"), {"type": "Pipeline", "f": lambda: 0}, "Pipeline")
    loader._templates["odd"] = odd
    got = validator.validate([loader.get("scheduled"), odd], loader, settings)
    assert [type(o) for o in got] == [ConfigError, ConfigError]
    assert all("cannot be sent to the validation process" in str(o) for o in got)
    assert (got[1].template, got[1].file) == ("odd", "odd.yml")  # type: ignore[union-attr]
    assert validator.starts == 0


def test_the_daemon_validates_with_the_helper_process_and_closes_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ddeutil.workflow.app import daemon as daemon_mod
    from ddeutil.workflow.masking import Masker
    from ddeutil.workflow.scheduling import validator_process

    seen: dict[str, object] = {}

    class Recording(ProcessValidator):
        def close(self) -> None:
            seen["closed"] = True
            super().close()

    def run(self: Any, *, once: bool = False, freeze: bool = False) -> int:
        seen["validator"] = self._scheduler._catalog._validator
        self._signals.restore()  # closes the wake-up sockets the daemon made
        return 0

    monkeypatch.setattr(validator_process, "ProcessValidator", Recording)
    executor = types.SimpleNamespace(cancel=lambda run_id, reason: False)
    monkeypatch.setattr(daemon_mod, "_build_executor", lambda *args, **kwargs: executor)
    monkeypatch.setattr(daemon_mod.Daemon, "run", run)
    assert daemon_mod.serve(settings, masker=Masker()) == 0
    assert isinstance(seen["validator"], Recording)
    assert seen["closed"] is True
