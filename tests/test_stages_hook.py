"""The hook stage: @tag registry lookup, argument checks, outputs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ddeutil.workflow.engine.pipeline import Pipeline
from ddeutil.workflow.engine.stages import HookStage
from ddeutil.workflow.engine.stages.hook import BoundHook
from ddeutil.workflow.errors import ConfigError
from ddeutil.workflow.result import Status
from ddeutil.workflow.settings import Settings

if TYPE_CHECKING:
    from hooks_pkg.engine import Engine

TESTS = Path(__file__).parent


@pytest.fixture
def engine(
    write_conf: Callable[[str, str], Path],
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> Engine:
    monkeypatch.syspath_prepend(str(TESTS))
    from hooks_pkg import tasks
    from hooks_pkg.engine import Engine

    tasks.reset()
    return Engine(write_conf, make_settings(WORKFLOW_CORE_REGISTRY="ddeutil.workflow,hooks_pkg"))


def _hook(uses: str, with_: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": "hook", "uses": uses, "with": with_ or {}, **extra}


def _pipe(
    engine: Engine,
    *stages: dict[str, Any],
    strategy: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Pipeline:
    job: dict[str, Any] = {"stages": list(stages)}
    if strategy:
        job["strategy"] = strategy
    return engine.load_data(
        {"hooks": {"type": "Pipeline", "params": params or {}, "jobs": {"j": job}}}
    )


def test_a_hook_is_resolved_at_load_and_its_dict_becomes_the_outputs(engine: Engine) -> None:
    pipe = _pipe(
        engine,
        _hook(
            "tasks/postgres-to-delta@polars",
            {"source": {"table": "${{ params.table }}"}, "sink": {"path": "/tmp/x"}},
        ),
        params={"table": "str"},
    )
    assert isinstance(pipe.jobs["j"].stages[0], HookStage)
    assert pipe.plan is not None
    bound = pipe.plan.jobs["j"].stages[0].body
    assert isinstance(bound, BoundHook)
    assert bound.hook.name == "postgres-to-delta"
    result = pipe.execute({"table": "sales"}, settings=engine.settings)
    assert result.status is Status.SUCCESS
    assert result.context["jobs"]["j"]["stages"]["hook"]["outputs"] == {
        "source": {"table": "sales"},
        "sink": {"path": "/tmp/x"},
        "rows": 42,
    }


def test_an_underscore_parameter_is_passed_without_its_underscore(engine: Engine) -> None:
    """The seed's ``def odbc_mssql_procedure(_exec: str, params: dict)`` called with ``exec:``."""
    pipe = _pipe(engine, _hook("tasks/mssql-proc@odbc", {"exec": "dbo.load", "params": {"a": 1}}))
    result = pipe.execute(settings=engine.settings)
    assert result.context["jobs"]["j"]["stages"]["hook"]["outputs"] == {
        "exec": "dbo.load",
        "params": {"a": 1},
    }


@pytest.mark.parametrize(
    ("uses", "fragment"),
    [
        ("tasks/no-such-hook@v1", "unknown hook name 'no-such-hook'"),
        ("tasks/postgres-to-delta@v9", "unknown tag 'v9'"),
        ("nogroup/x@v1", "unknown hook group 'nogroup'"),
        ("not a uses string", "uses must look like"),
    ],
)
def test_an_unknown_hook_is_a_load_error(engine: Engine, uses: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        _pipe(engine, _hook(uses))
    assert info.value.key == "jobs.j.stages[0].uses"
    assert info.value.template == "hooks"


def test_a_missing_required_argument_is_a_load_error_naming_it(engine: Engine) -> None:
    with pytest.raises(ConfigError, match=r"missing required argument\(s\): exec") as info:
        _pipe(engine, _hook("tasks/mssql-proc@odbc", {"params": {}}))
    assert info.value.key == "jobs.j.stages[0].with"


def test_an_argument_the_function_does_not_take_is_a_load_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="takes no argument") as info:
        _pipe(engine, _hook("tasks/record@v1", {"value": 1, "colour": "red"}))
    assert info.value.key == "jobs.j.stages[0].with.colour"


def test_a_non_dict_return_fails_the_stage_naming_the_type(engine: Engine) -> None:
    result = _pipe(engine, _hook("tasks/returns_list@v1")).execute(settings=engine.settings)
    assert result.status is Status.FAILED
    assert result.errors[0].message == (
        "hook tasks/returns_list@v1 returned list, expected a dict of outputs"
    )


def test_an_exception_in_the_hook_fails_the_stage(engine: Engine) -> None:
    result = _pipe(engine, _hook("tasks/raises@v1", {"message": "bad row"})).execute(
        settings=engine.settings
    )
    assert result.status is Status.FAILED
    assert result.errors[0].message == "hook tasks/raises@v1 raised ValueError: bad row"


@pytest.mark.parametrize(
    ("kind", "name"),
    [("interrupt", "KeyboardInterrupt"), ("cancelled", "CancelledError"), ("exit", "SystemExit")],
)
def test_a_base_exception_in_the_hook_fails_the_stage(engine: Engine, kind: str, name: str) -> None:
    # on a thread, as the daemon and the API run pipelines (on the main thread
    # of a script a KeyboardInterrupt is taken for Ctrl-C and goes through)
    pipe = _pipe(engine, _hook("tasks/raises_base@v1", {"kind": kind}))
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(pipe.execute, settings=engine.settings).result(timeout=30)
    assert result.status is Status.FAILED
    assert result.errors[0].message == (
        f"hook tasks/raises_base@v1 raised {name}: {kind} from the hook"
    )


def test_a_templated_uses_is_resolved_per_matrix_combination(engine: Engine) -> None:
    from hooks_pkg import tasks

    pipe = _pipe(
        engine,
        _hook("tasks/el-${{ matrix.system }}-to-parquet@polars", {"table": "${{ matrix.table }}"}),
        strategy={"matrix": {"system": ["csv", "json"], "table": ["sales"]}},
    )
    assert isinstance(pipe.jobs["j"].stages[0], HookStage)
    assert pipe.plan is not None
    assert pipe.plan.jobs["j"].stages[0].body is None  # not resolvable before the matrix exists
    result = pipe.execute(settings=engine.settings)
    assert result.status is Status.SUCCESS
    assert sorted(tasks.CALLS) == [("csv", "sales"), ("json", "sales")]
    outputs = [
        s["stages"]["hook"]["outputs"] for s in result.context["jobs"]["j"]["strategies"].values()
    ]
    assert sorted(o["system"] for o in outputs) == ["csv", "json"]


def test_a_templated_uses_that_resolves_to_nothing_fails_at_run(engine: Engine) -> None:
    pipe = _pipe(
        engine,
        _hook("tasks/el-${{ matrix.system }}-to-parquet@polars", {"table": "x"}),
        strategy={"matrix": {"system": ["xml"]}},
    )
    result = pipe.execute(settings=engine.settings)
    assert result.status is Status.FAILED
    assert "unknown hook name 'el-xml-to-parquet'" in result.errors[0].message


def test_a_value_cannot_choose_the_module_a_templated_uses_imports(engine: Engine) -> None:
    with pytest.raises(ConfigError, match=r"hook group of uses .* must be written literally"):
        engine.load_data(
            {
                "p": {
                    "type": "Pipeline",
                    "params": {"group": "str"},
                    "jobs": {
                        "j": {"stages": [_hook("${{ params.group }}/x@y", {})]},
                    },
                }
            }
        )
