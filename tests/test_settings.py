"""Settings are read once from the environment and validated with clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ddeutil.workflow.errors import ConfigError, SettingsError, WorkflowError
from ddeutil.workflow.settings import ENV_VARS, Settings, env_table


def test_defaults_match_the_spec(tmp_path: Path) -> None:
    s = Settings.from_env({"WORKFLOW_ROOT_PATH": str(tmp_path)})
    assert s.root_path == tmp_path.resolve()
    assert s.conf_path == tmp_path.resolve() / "conf"
    assert s.registry == ("ddeutil.workflow",)
    assert s.registry_filter == ("ddeutil.workflow.templating",)
    assert s.timezone == ZoneInfo("Asia/Bangkok")
    assert s.stage_default_id is True
    assert s.stage_raise_error is True
    assert s.max_pipeline_poking == 4
    assert s.max_job_parallel == 2
    assert s.log_enable_write is True
    assert s.app_process_worker == 2
    assert s.app_pipeline_per_process == 100
    assert s.api_db_url == f"sqlite:///{tmp_path.resolve() / '.workflow' / 'runs.db'}"
    assert s.api_token is None


def test_values_are_parsed_and_typed(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "WORKFLOW_ROOT_PATH": str(tmp_path),
            "WORKFLOW_CORE_PATH_CONF": "templates",
            "WORKFLOW_CORE_REGISTRY": "ddeutil.workflow, my.hooks ,",
            "WORKFLOW_CORE_TIMEZONE": "America/New_York",
            "WORKFLOW_CORE_STAGE_RAISE_ERROR": "false",
            "WORKFLOW_CORE_MAX_JOB_PARALLEL": "8",
            "WORKFLOW_APP_STOP_TIMEOUT": "2.5",
            "WORKFLOW_LOG_LEVEL": "debug",
            "WORKFLOW_API_DB_URL": "postgresql+psycopg://u@localhost/db",
        }
    )
    assert s.conf_path == tmp_path.resolve() / "templates"
    assert s.registry == ("ddeutil.workflow", "my.hooks")
    assert s.timezone.key == "America/New_York"
    assert s.stage_raise_error is False
    assert s.max_job_parallel == 8
    assert s.app_stop_timeout == 2.5
    assert s.log_level == "DEBUG"
    assert s.api_db_url.startswith("postgresql+psycopg://")


def test_absolute_conf_path_is_kept(tmp_path: Path) -> None:
    conf = tmp_path / "elsewhere"
    s = Settings.from_env({"WORKFLOW_ROOT_PATH": "/", "WORKFLOW_CORE_PATH_CONF": str(conf)})
    assert s.conf_path == conf


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("WORKFLOW_CORE_MAX_JOB_PARALLEL", "abc", "whole number"),
        ("WORKFLOW_CORE_MAX_JOB_PARALLEL", "0", "at least 1"),
        ("WORKFLOW_APP_PROCESS_WORKER", "-2", "at least 1"),
        ("WORKFLOW_CORE_TIMEZONE", "Mars/Olympus", "unknown IANA timezone"),
        ("WORKFLOW_CORE_STAGE_RAISE_ERROR", "maybe", "boolean"),
        ("WORKFLOW_APP_STOP_TIMEOUT", "soon", "number of seconds"),
        ("WORKFLOW_APP_STOP_TIMEOUT", "inf", "finite"),
        ("WORKFLOW_CORE_REGISTRY", " , ", "at least one"),
        ("WORKFLOW_API_DB_URL", "mysql://x", "sqlite"),
        ("WORKFLOW_LOG_LEVEL", "LOUD", "DEBUG"),
    ],
)
def test_bad_value_names_variable_and_value(variable: str, value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({variable: value})
    err = info.value
    assert err.variable == variable
    assert err.value == value
    assert variable in str(err)
    assert repr(value) in str(err)
    assert reason in str(err)
    assert isinstance(err, ConfigError)
    assert isinstance(err, WorkflowError)


def test_settings_are_frozen_and_evolve_returns_a_copy(settings: Settings) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.max_job_parallel = 9  # type: ignore[misc]
    changed = settings.evolve(max_job_parallel=9)
    assert changed.max_job_parallel == 9
    assert settings.max_job_parallel == 2


def test_api_token_is_not_in_repr() -> None:
    s = Settings.from_env({"WORKFLOW_API_TOKEN": "s3cr3t-value"})
    assert s.api_token == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(s)


def test_empty_value_falls_back_to_default() -> None:
    assert Settings.from_env({"WORKFLOW_CORE_MAX_JOB_PARALLEL": ""}).max_job_parallel == 2


def test_env_table_lists_every_variable_once() -> None:
    names = [row[0] for row in env_table()]
    assert len(names) == len(set(names)) == len(ENV_VARS)
    for required in (
        "WORKFLOW_ROOT_PATH",
        "WORKFLOW_CORE_PATH_CONF",
        "WORKFLOW_CORE_REGISTRY",
        "WORKFLOW_CORE_REGISTRY_FILTER",
        "WORKFLOW_CORE_TIMEZONE",
        "WORKFLOW_CORE_STAGE_DEFAULT_ID",
        "WORKFLOW_CORE_STAGE_RAISE_ERROR",
        "WORKFLOW_CORE_MAX_PIPELINE_POKING",
        "WORKFLOW_CORE_MAX_JOB_PARALLEL",
        "WORKFLOW_LOG_ENABLE_WRITE",
        "WORKFLOW_APP_PROCESS_WORKER",
        "WORKFLOW_APP_PIPELINE_PER_PROCESS",
        "WORKFLOW_API_DB_URL",
    ):
        assert required in names


def test_readme_documents_every_variable() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    missing = [name for name in ENV_VARS if f"`{name}`" not in readme]
    assert not missing, f"README lacks {missing}"
