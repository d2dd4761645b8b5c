"""The JSON Schema of the YAML format, and validation errors in YAML terms."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from ddeutil.workflow.engine.conf_schema import yaml_schema
from ddeutil.workflow.engine.job import Job
from ddeutil.workflow.engine.schema import config_error, yaml_key
from ddeutil.workflow.loader import load_yaml

EXAMPLE = """
on_every_5_min:
  type: on.On
  cron: "*/5 * * * *"
  timezone: Asia/Bangkok

ingest:
  type: ddeutil.workflow.pipeline.Pipeline
  desc: Land the sales extracts.
  on: [on_every_5_min, {cron: "0 1 * * *"}]
  concurrency: skip
  catchup: all
  notify: {on: [failure, missed], webhook: "https://hooks.example.com/x", late_after: 60}
  params:
    author-run: str
    run-date: {type: datetime, default: "2024-01-01"}
    mode: {type: choice, options: [full, delta]}
  jobs:
    extract:
      runs-on: local
      strategy:
        max-parallel: 2
        fail-fast: true
        matrix: {table: [a, b]}
        exclude: [{table: b}]
        include: [{table: c}]
      stages:
        - name: empty
          echo: hi
          sleep: 1
        - name: py
          id: py
          if: "'${{ params.mode }}' == 'full'"
          retry: {attempts: 3, delay: 1, backoff: 2}
          timeout: 10
          run: x = 1
          vars: {a: 1}
        - name: sh
          bash: echo hi
          env: {A: "1"}
        - name: hook
          uses: tasks/x@y
          with: {exec: 1}
        - name: trigger
          trigger: other
          params: {a: 1}
    publish:
      needs: [extract]
      if: "true"
      stages: []
"""


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return yaml_schema()


def test_the_schema_describes_pipelines_stages_params_and_schedules(schema: dict[str, Any]) -> None:
    pipeline = schema["$defs"]["PipelineTemplate"]
    assert set(pipeline["properties"]) == {
        "type",
        "desc",
        "on",
        "params",
        "jobs",
        "concurrency",
        "catchup",
        "queue",
        "timeout",
        "notify",
    }
    assert pipeline["required"] == ["type"]
    queue_name = re.compile(pipeline["properties"]["queue"]["pattern"])
    assert queue_name.search("etl.big-1")
    assert not queue_name.search("etl; rm -rf /")
    job = schema["$defs"]["Job"]
    assert {"runs-on", "needs", "if", "strategy", "stages"} <= set(job["properties"])
    assert job["additionalProperties"] is False
    stage_refs = {
        ref["$ref"].rsplit("/", 1)[1] for ref in job["properties"]["stages"]["items"]["oneOf"]
    }
    assert stage_refs == {"EmptyStage", "PyStage", "BashStage", "HookStage", "TriggerStage"}
    assert "with" in schema["$defs"]["HookStage"]["properties"]
    assert schema["$defs"]["Strategy"]["properties"]["max-parallel"]["minimum"] == 1
    assert "cron" in schema["$defs"]["OnTemplate"]["properties"]


def test_a_realistic_conf_file_validates_and_typos_do_not(schema: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = load_yaml(EXAMPLE)
    jsonschema.validate(document, schema)
    document["ingest"]["jobs"]["extract"]["stages"][0]["bsh"] = "typo"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)
    document = load_yaml(EXAMPLE)
    document["ingest"]["concurrency"] = "sometimes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_yaml_key_drops_union_tags_and_formats_indexes() -> None:
    assert yaml_key(("jobs", "load", "stages", 2, "empty", "bsh")) == "jobs.load.stages[2].bsh"
    assert yaml_key(("stages", 0, "bash", "env", "A")) == "stages[0].env.A"
    assert yaml_key(("params", "function-after[_check()]", "x")) == "params.x"
    assert yaml_key((0,)) == "[0]"


def test_config_error_lists_every_problem_in_yaml_terms() -> None:
    with pytest.raises(ValidationError) as info:
        Job.model_validate(
            {
                "stages": [
                    {"name": "a", "bsh": 1},
                    {"bash": "x"},
                    {"name": "c", "retry": {"attempts": 0}},
                ]
            }
        )
    error = config_error(info.value)
    assert error.key == "stages[0].bsh"
    text = str(error)
    assert text.startswith(
        "key 'stages[0].bsh': unknown key 'bsh'; an empty stage takes: name, id, if"
    )
    assert "stages[1].name: missing required key 'name'" in text
    assert "stages[2].retry.attempts: Input should be greater than or equal to 1" in text
