"""The trigger stage: child runs in-process, and loops refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ddeutil.workflow.engine.pipeline import RunEvent
from ddeutil.workflow.errors import ConfigError
from ddeutil.workflow.result import Status

if TYPE_CHECKING:
    from hooks_pkg.engine import Engine


def test_a_trigger_runs_the_other_pipeline_as_a_child(engine: Engine) -> None:
    events: list[RunEvent] = []
    pipe = engine.load(
        """
        parent:
          type: Pipeline
          params: {day: str}
          jobs:
            j:
              stages:
                - name: child
                  id: child
                  trigger: child
                  params:
                    day: "${{ params.day }}"
                    n: 2
        child:
          type: Pipeline
          params: {day: str, n: int}
          jobs:
            work:
              stages:
                - name: calc
                  run: total = n * 10
                  vars: {n: "${{ params.n }}"}
                - name: parent id
                  run: seen = "${{ run_id }}"
        """
    )
    result = pipe.execute({"day": "mon"}, settings=engine.settings, on_event=events.append)
    assert result.status is Status.SUCCESS
    outputs = result.context["jobs"]["j"]["stages"]["child"]["outputs"]
    assert outputs["params"] == {"day": "mon", "n": 2}
    assert outputs["jobs"]["work"]["stages"]["calc"]["outputs"] == {"total": 20}
    child_run = outputs["run_id"]
    assert child_run != result.run_id
    assert outputs["jobs"]["work"]["stages"]["parent-id"]["outputs"] == {"seen": child_run}
    assert {e.pipeline for e in events} == {"parent", "child"}


def test_a_child_failure_fails_the_trigger_stage(engine: Engine) -> None:
    result = engine.run(
        """
        parent:
          type: Pipeline
          jobs:
            j:
              stages:
                - {name: go, trigger: broken}
        broken:
          type: Pipeline
          jobs:
            work:
              stages:
                - {name: boom, run: "1/0"}
        """
    )
    assert result.status is Status.FAILED
    message = result.errors[0].message
    assert message.startswith("triggered pipeline 'broken' run ")
    assert "FAILED (job work, stage boom): ZeroDivisionError" in message


def test_bad_child_params_fail_the_stage(engine: Engine) -> None:
    result = engine.run(
        """
        parent:
          type: Pipeline
          jobs:
            j:
              stages:
                - {name: go, trigger: child, params: {n: many}}
        child:
          type: Pipeline
          params: {n: int}
        """
    )
    assert result.status is Status.FAILED
    assert "trigger 'child': invalid params for pipeline 'child': n:" in result.errors[0].message


@pytest.mark.parametrize(
    ("text", "chain"),
    [
        (
            """
            selfish:
              type: Pipeline
              jobs:
                j:
                  stages:
                    - {name: again, trigger: selfish}
            """,
            "selfish -> selfish",
        ),
        (
            """
            selfish:
              type: Pipeline
              jobs:
                j:
                  stages:
                    - {name: go, trigger: other}
            other:
              type: Pipeline
              jobs:
                k:
                  stages:
                    - {name: back, trigger: selfish}
            """,
            "selfish -> other -> selfish",
        ),
    ],
)
def test_a_static_trigger_loop_is_a_load_error_naming_the_chain(
    engine: Engine, text: str, chain: str
) -> None:
    with pytest.raises(ConfigError, match=f"trigger loop refused: {chain}") as info:
        engine.load(text)
    assert info.value.key == "jobs.j.stages[0].trigger"


def test_a_templated_trigger_loop_is_refused_at_run(engine: Engine) -> None:
    result = engine.run(
        """
        a:
          type: Pipeline
          params: {next: {type: str, default: b}}
          jobs:
            j:
              stages:
                - {name: go, trigger: "${{ params.next }}"}
        b:
          type: Pipeline
          jobs:
            k:
              stages:
                - {name: back, trigger: a}
        """
    )
    # b -> a is static inside b but a -> b is templated: refused when it happens
    assert result.status is Status.FAILED
    message = result.errors[0].message
    assert "trigger loop refused: a -> b -> a" in message


def test_an_unknown_trigger_target_is_a_load_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="trigger target 'ghost': no pipeline template") as info:
        engine.load(
            """
            a:
              type: Pipeline
              jobs:
                j:
                  stages:
                    - {name: go, trigger: ghost}
            """
        )
    assert info.value.key == "jobs.j.stages[0].trigger"


def test_an_unknown_templated_target_fails_the_stage_naming_it(engine: Engine) -> None:
    result = engine.run(
        """
        a:
          type: Pipeline
          params: {target: str}
          jobs:
            j:
              stages:
                - {name: go, trigger: "${{ params.target }}"}
        """,
        {"target": "ghost"},
    )
    assert result.status is Status.FAILED
    assert "'ghost'" in result.errors[0].message


def test_a_trigger_to_a_schedule_template_is_a_load_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="is a On, not a pipeline"):
        engine.load(
            """
            a:
              type: Pipeline
              jobs:
                j:
                  stages:
                    - {name: go, trigger: every5}
            every5:
              type: on.On
              cron: "*/5 * * * *"
            """
        )
