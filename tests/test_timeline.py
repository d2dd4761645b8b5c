"""The run context's ``timeline``: one span per job and per stage, bounded."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ddeutil.workflow.engine.timeline import Timeline
from ddeutil.workflow.result import Status

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_a_run_records_a_span_per_job_and_per_stage(engine: Any) -> None:
    result = engine.run(
        """
        p:
          type: Pipeline
          jobs:
            first:
              stages:
                - {id: a, name: A, echo: one}
                - {id: b, name: B, echo: two}
            second:
              needs: [first]
              stages:
                - {id: c, name: C, bash: "exit 3"}
        """
    )

    spans = result.context["timeline"]["spans"]
    assert [(s["job"], s["stage"], s["status"]) for s in spans] == [
        ("first", None, "SUCCESS"),
        ("first", "a", "SUCCESS"),
        ("first", "b", "SUCCESS"),
        ("second", None, "FAILED"),
        ("second", "c", "FAILED"),
    ]
    for span in spans:
        assert datetime.fromisoformat(span["start"]) <= datetime.fromisoformat(span["end"])
    assert "dropped" not in result.context["timeline"]


def test_a_pipeline_without_jobs_has_no_timeline(engine: Any) -> None:
    result = engine.run("p:\n  type: Pipeline\n")
    assert "timeline" not in result.context


def test_spans_start_at_end_minus_duration_and_are_bounded() -> None:
    timeline = Timeline(limit=2)
    for i in range(4):
        timeline.add(
            job="j",
            stage=f"s{i}",
            strategy=None,
            name=f"s{i}",
            status=Status.SUCCESS,
            end=T0,
            duration=1.5 - i,
        )

    stored = timeline.to_context()
    assert [s["stage"] for s in stored["spans"]] == ["s0", "s1"]
    assert stored["spans"][0]["start"] == "2023-12-31T23:59:58.500000+00:00"
    assert stored["spans"][1]["end"] == T0.isoformat()
    assert stored["dropped"] == 2
