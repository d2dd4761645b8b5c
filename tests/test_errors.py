"""The exception tree: one root, structured fields, readable messages."""

from __future__ import annotations

import inspect

import pytest

from ddeutil.workflow import errors
from ddeutil.workflow.errors import (
    ConfigError,
    ParamError,
    ParamProblem,
    ScheduleError,
    StageCancelled,
    StageError,
    StoreLockedError,
    TemplateError,
    TemplateNotFound,
    WorkflowError,
)


def test_every_exported_exception_derives_from_workflow_error() -> None:
    classes = [
        obj
        for name in errors.__all__
        if inspect.isclass(obj := getattr(errors, name)) and issubclass(obj, BaseException)
    ]
    assert len(classes) >= 12
    assert all(issubclass(cls, WorkflowError) for cls in classes)


def test_tree_is_documented_in_the_module_docstring() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        if name != "ParamProblem":
            assert name in doc, name


def test_config_error_message_names_file_template_and_key() -> None:
    err = ConfigError("unknown key 'bsh'", file="conf/a.yml", template="etl", key="jobs.x")
    assert str(err) == "conf/a.yml: template 'etl': key 'jobs.x': unknown key 'bsh'"


def test_located_fills_missing_fields_and_keeps_the_class() -> None:
    inner = ScheduleError("bad cron", key="cron")
    outer = inner.located(file="conf/on.yml", template="on_x", key_prefix="on[0]")
    assert isinstance(outer, ScheduleError)
    assert (outer.file, outer.template, outer.key) == ("conf/on.yml", "on_x", "on[0].cron")
    assert inner.file is None  # the original is untouched
    assert "conf/on.yml" in str(outer)


def test_template_not_found_names_the_template() -> None:
    err = TemplateNotFound("nightly", kind="pipeline")
    assert err.name == "nightly"
    assert "'nightly'" in str(err)
    assert "pipeline" in str(err)


def test_param_error_lists_every_problem() -> None:
    err = ParamError(
        [
            ParamProblem("run-date", "not a datetime"),
            ParamProblem("mode", "not one of full, delta"),
        ],
        pipeline="ingest",
    )
    text = str(err)
    assert "ingest" in text
    assert "run-date: not a datetime" in text
    assert "mode: not one of full, delta" in text
    assert [p.name for p in err.problems] == ["run-date", "mode"]


def test_template_error_names_stage_and_expression() -> None:
    err = TemplateError("unknown path 'params.x'", expr="${{ params.x }}", stage="load")
    assert str(err) == "stage 'load': unknown path 'params.x' in '${{ params.x }}'"


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (StageCancelled, StageError),
        (StoreLockedError, errors.StoreError),
        (ScheduleError, ConfigError),
    ],
)
def test_subclassing(child: type, parent: type) -> None:
    assert issubclass(child, parent)
