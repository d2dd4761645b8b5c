"""The python stage: run + vars, outputs, errors, compile once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ddeutil.workflow.engine.stages.python import compile_run, is_jsonable
from ddeutil.workflow.errors import ConfigError
from ddeutil.workflow.masking import Masker
from ddeutil.workflow.result import Result, Status

if TYPE_CHECKING:
    from hooks_pkg.engine import Engine


def _one(
    engine: Engine,
    run: str,
    vars_: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    declare: dict[str, Any] | None = None,
) -> Result:
    stage = {"name": "code", "vars": vars_ or {}, "run": run.strip("\n")}
    pipe = engine.load_data(
        {"py": {"type": "Pipeline", "params": declare or {}, "jobs": {"j": {"stages": [stage]}}}}
    )
    return pipe.execute(params, settings=engine.settings)


def test_outputs_are_new_or_rebound_jsonable_names(engine: Engine) -> None:
    result = _one(
        engine,
        """
import os
import json as js
def helper():
    return 1
class Thing:
    pass
__hidden = 1
copy = keep
rebound = 5
rows = [1, 2, {"a": (1, None)}]
thing = Thing()
label = f"{rebound} rows"
        """,
        vars_={"keep": 1, "rebound": 2},
    )
    assert result.status is Status.SUCCESS
    outputs = result.context["jobs"]["j"]["stages"]["code"]["outputs"]
    # `keep` is injected and not re-bound: not an output; `copy` is new: an output
    assert outputs == {
        "copy": 1,
        "rebound": 5,
        "rows": [1, 2, {"a": (1, None)}],
        "label": "5 rows",
    }


def test_vars_are_rendered_and_injected(engine: Engine) -> None:
    result = _one(
        engine,
        "total = sum(rows) * factor",
        vars_={"rows": "${{ params.rows }}", "factor": 2},
        params={"rows": [1, 2, 3]},
        declare={"rows": "list"},
    )
    assert result.context["jobs"]["j"]["stages"]["code"]["outputs"]["total"] == 12


def test_run_body_renders_expressions_but_not_environment_variables(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WF_TEST_VAR", "from-env")
    result = _one(
        engine,
        'name = "${{ params.who }}"\nraw = "${WF_TEST_VAR}"',
        params={"who": "me"},
        declare={"who": "str"},
    )
    outputs = result.context["jobs"]["j"]["stages"]["code"]["outputs"]
    assert outputs == {"name": "me", "raw": "${WF_TEST_VAR}"}


def test_an_exception_fails_the_stage_with_a_traceback_summary(engine: Engine) -> None:
    result = _one(engine, "a = 1\nb = {}\nc = b['missing']")
    assert result.status is Status.FAILED
    error = result.errors[0]
    assert (error.job, error.stage, error.kind) == ("j", "code", "StageError")
    assert error.message == "KeyError: 'missing' (line 3 of run: c = b['missing'])"


def test_an_exception_inside_called_code_names_the_innermost_frame(engine: Engine) -> None:
    result = _one(engine, "import json\njson.loads('{')")
    message = result.errors[0].message
    assert message.startswith("JSONDecodeError: ")
    assert "(line 2 of run: json.loads('{'))" in message
    assert "json" in message.split("[in ")[1]


def test_a_syntax_error_in_a_static_run_is_a_load_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="syntax error in run, line 2") as info:
        _one(engine, "x = 1\nif x\n  y = 2")
    assert info.value.key == "jobs.j.stages[0].run"


def test_a_secret_in_an_error_message_is_masked(engine: Engine) -> None:
    pipe = engine.load(
        """
        leak:
          type: Pipeline
          jobs:
            j:
              stages:
                - name: leak
                  run: raise ValueError("token is s3cr3t-value")
        """
    )
    result = pipe.execute(settings=engine.settings, masker=Masker(frozenset({"s3cr3t-value"})))
    assert (
        result.errors[0].message
        == 'ValueError: token is *** (line 1 of run: raise ValueError("token is ***"))'
    )


def test_exit_in_user_code_fails_the_stage_and_not_the_process(engine: Engine) -> None:
    result = _one(engine, "raise SystemExit(3)")
    assert result.status is Status.FAILED
    assert result.errors[0].message.startswith("SystemExit: 3")


def test_code_is_compiled_once_per_text_not_per_value(engine: Engine) -> None:
    compile_run.cache_clear()
    pipe = engine.load(
        """
        cached:
          type: Pipeline
          params: {n: int}
          jobs:
            j:
              stages:
                - name: static
                  run: x = 1
                - name: templated
                  run: y = ${{ params.n }}
        """
    )
    loaded = compile_run.cache_info()
    assert loaded.misses == 2  # both bodies, at load
    for n in (7, 8, 9):
        assert pipe.execute({"n": n}, settings=engine.settings).status is Status.SUCCESS
    assert compile_run.cache_info() == loaded  # runs use the bound bodies: no compile, no lookup


def test_is_jsonable() -> None:
    from datetime import date, datetime

    assert is_jsonable({"a": [1, 2.5, None, True, "x", (date(2024, 1, 1), datetime(2024, 1, 1))]})
    assert not is_jsonable({1: "int key"})
    assert not is_jsonable(object())
    assert not is_jsonable(int)
    assert not is_jsonable([{1, 2}])
