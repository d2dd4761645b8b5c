"""``if`` conditions: the allow-list, value binding, and that values never execute."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ddeutil.workflow.engine.conditions import Condition
from ddeutil.workflow.engine.templating import BUILTIN_FILTERS
from ddeutil.workflow.errors import ConditionError, TemplateError


@pytest.fixture
def ctx() -> dict[str, Any]:
    return {
        "params": {
            "mode": "full",
            "n": 5,
            "items": ["a", "b"],
            "none": None,
            "flag": False,
            "text": 'it\'s "quoted"',
        },
        "matrix": {"table": "sales"},
        "stages": {"extract": {"outputs": {"rows": 0}}},
    }


def ev(expr: Any, ctx: dict[str, Any], environ: dict[str, str] | None = None) -> bool:
    return Condition.parse(expr).evaluate(ctx, filters=BUILTIN_FILTERS, environ=environ or {})


# -------------------------------------------------------------------------- allowed forms


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("${{ params.mode }} == 'full'", True),
        ("${{ params.mode }} == 'delta'", False),
        ("${{ params.mode }} != 'delta'", True),
        ("'${{ params.mode }}' == 'full'", True),
        ('"${{ params.mode }}" == "full"', True),
        ("'mode=${{ params.mode }}' == 'mode=full'", True),
        ("${{ params.n }} == 5", True),
        ("${{ params.n }} == '5'", False),
        ("'${{ params.n }}' == '5'", True),
        ("${{ params.n }} > 3 and ${{ params.n }} <= 5", True),
        ("1 < ${{ params.n }} < 5", False),
        ("1 < ${{ params.n }} <= 5", True),
        ("${{ params.n }} >= 6 or ${{ params.mode }} == 'full'", True),
        ("not ${{ params.flag }}", True),
        ("not (${{ params.n }} == 5 or ${{ params.flag }})", False),
        ("'a' in ${{ params.items }}", True),
        ("'c' not in ${{ params.items }}", True),
        ("${{ params.mode }} in ['full', 'delta']", True),
        ("${{ params.mode }} in ('x', 'y')", False),
        ("${{ params.mode }} in {'full'}", True),
        ("${{ params.none }} is None", True),
        ("${{ params.none }} is not None", False),
        ("${{ params.flag }} is False", True),
        ("${{ params.flag }} == false", True),
        ("${{ params.none }} == null", True),
        ("${{ stages.extract.outputs.rows }} > -1", True),
        ("+${{ params.n }} == 5", True),
        ("${{ params.flag }} or ${{ params.none }} or ''", False),
        ("${{ params.n }} and ${{ params.none }}", False),
        ("${{ stages.extract.outputs.rows }}", False),
        ("${{ params.items }}", True),
        ("${{ params.none | coalesce('x') }} == 'x'", True),
        ("'${{ params.mode | upper }}' == 'FULL'", True),
        ("True", True),
        ("False or 0", False),
        ("1", True),
        ("''", False),
        ("${{ params.text }} == 'it\\'s \"quoted\"'", True),
        ("'${{ params.text }}' == 'it\\'s \"quoted\"'", True),
        ("${{ params.mode }} == 'full'\n  and ${{ params.n }} == 5\n", True),
    ],
)
def test_allowed_conditions_evaluate(expr: str, expected: bool, ctx: dict[str, Any]) -> None:
    assert ev(expr, ctx) is expected


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False)])
def test_yaml_booleans_are_conditions(value: bool, expected: bool, ctx: dict[str, Any]) -> None:
    assert ev(value, ctx) is expected


@pytest.mark.parametrize(
    ("expr", "environ", "expected"),
    [
        ("${DEPLOY_ENV} == 'prod'", {"DEPLOY_ENV": "prod"}, True),
        ("'${DEPLOY_ENV}' == 'prod'", {"DEPLOY_ENV": "dev"}, False),
        ("${DEPLOY_ENV:-dev} == 'dev'", {}, True),
    ],
)
def test_environment_variables_are_bound_as_values(
    expr: str, environ: dict[str, str], expected: bool, ctx: dict[str, Any]
) -> None:
    assert ev(expr, ctx, environ) is expected


def test_a_literal_that_looks_like_a_placeholder_is_left_alone(ctx: dict[str, Any]) -> None:
    assert ev("'__ddw0__' == '__ddw0__' and ${{ params.mode }} == 'full'", ctx) is True
    assert ev("'__ddw0__' != '${{ params.mode }}'", ctx) is True


def test_parse_is_cached_and_reports_references() -> None:
    text = "${{ params.mode }} == 'full' and '${{ matrix.table }}' != ''"
    assert Condition.parse(text) is Condition.parse(text)
    assert Condition.parse(text).references == {"params.mode", "matrix.table"}


# ----------------------------------------------------------------------- rejected at parse


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("__import__('os').system('id')", "function calls not allowed"),
        ("${{ params.mode }}.upper() == 'FULL'", "not allowed"),
        ("len(${{ params.items }}) > 1", "function calls not allowed"),
        ("${{ params.items }}[0] == 'a'", "subscripts not allowed"),
        ("${{ params.n }} + 1 == 6", "arithmetic not allowed"),
        ("mode == 'full'", "name 'mode' not allowed"),
        ("os", "name 'os' not allowed"),
        ("lambda: 1", "lambdas not allowed"),
        ("[x for x in 'ab']", "comprehensions not allowed"),
        ("(x for x in 'ab')", "comprehensions not allowed"),
        ("f'{1}' == '1'", "f-strings not allowed"),
        ("(y := 1)", "assignment expressions not allowed"),
        ("1 if True else 2", "conditional expressions not allowed"),
        ("{'a': 1} == {}", "dict displays not allowed"),
        ("~1", "'~' not allowed"),
        ("...", "literal Ellipsis not allowed"),
        ("b'x' == b'x'", "not allowed"),
        ("${{ params.mode }} is 'full'", "'is' / 'is not' only compare with None"),
        ("import os", "invalid syntax"),
        ("1 ==", "invalid syntax"),
        ("a = 1", "invalid syntax"),
        ("", "empty condition"),
        ("   ", "empty condition"),
        ("${{ params.mode }}${{ params.n }}", "not allowed"),
        ("1) or (__import__('os')", "function calls not allowed"),
    ],
)
def test_disallowed_syntax_is_rejected_at_parse(expr: str, fragment: str) -> None:
    with pytest.raises(ConditionError) as info:
        Condition.parse(expr)
    assert fragment in str(info.value)
    assert info.value.expr == expr


def test_deeply_nested_condition_is_rejected_cleanly() -> None:
    with pytest.raises(ConditionError):
        Condition.parse("(" * 5000 + "1" + ")" * 5000)


def test_non_string_condition_is_rejected() -> None:
    with pytest.raises(ConditionError, match="must be a string"):
        Condition.parse(5)  # type: ignore[arg-type]


def test_malformed_template_in_condition_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="unterminated"):
        Condition.parse("${{ params.mode == 'full'")


# ------------------------------------------------------------------------- runtime errors


def test_unknown_path_in_condition_is_a_template_error(ctx: dict[str, Any]) -> None:
    cond = Condition.parse("${{ params.mdoe }} == 'full'")
    with pytest.raises(TemplateError) as info:
        cond.evaluate(ctx, filters=BUILTIN_FILTERS, environ={}, stage="gate")
    assert "params has no key 'mdoe'" in str(info.value)
    assert info.value.stage == "gate"


@pytest.mark.parametrize(
    "expr",
    [
        "${{ params.none }} < 1",
        "'a' in ${{ params.n }}",
        "-${{ params.mode }} == 1",
        "'x' in ${{ params.none }}",
    ],
)
def test_unsupported_operation_on_values_is_a_condition_error(
    expr: str, ctx: dict[str, Any]
) -> None:
    with pytest.raises(ConditionError, match="cannot evaluate: TypeError") as info:
        ev(expr, ctx)
    assert info.value.expr == expr


def test_unhashable_value_in_a_set_display_is_a_condition_error(ctx: dict[str, Any]) -> None:
    with pytest.raises(ConditionError, match="unhashable"):
        ev("'a' in {${{ params.items }}}", ctx)


# ------------------------------------------------------------------------ values never run

INJECTIONS = [
    '" or __import__("os").system("id") or "',
    "' or __import__('os').system('id') or '",
    "__import__('os').system('id')",
    "1) or __import__('os').system('id') or (1",
    '${{ __import__("os").system("id") }}',
    "exec(\"import os; os.system('id')\")",
]


@pytest.fixture
def system_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every os.system / subprocess.run / os.popen call instead of running it."""
    calls: list[Any] = []

    def record(*args: Any, **kwargs: Any) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr(os, "system", record)
    monkeypatch.setattr(os, "popen", record)
    monkeypatch.setattr(subprocess, "run", record)
    monkeypatch.setattr(subprocess, "Popen", record)
    return calls


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${{ params.mode }} == 'full'", False),
        ("'${{ params.mode }}' == 'full'", False),
        ('"${{ params.mode }}" == "full"', False),
        ("${{ params.mode }} != 'full'", True),
        ("${{ params.mode }}", True),
        ("${{ params.mode }} in ['full', 'delta']", False),
    ],
)
def test_param_value_never_executes(
    payload: str, template: str, expected: bool, system_calls: list[Any]
) -> None:
    ctx = {"params": {"mode": payload}}
    assert ev(template, ctx) is expected
    assert system_calls == []


def test_the_recorder_would_see_an_execution(system_calls: list[Any]) -> None:
    """Guard for the test above: the monkeypatched os.system does record calls."""
    os.system("id")
    assert system_calls == [("id",)]


@pytest.mark.parametrize("quote", ["'", '"'])
@pytest.mark.parametrize("form", ["{q}{v}{q} == 'x'", "{v} == 'x'", "{q}a{v}b{q} != 'x'"])
def test_param_value_cannot_create_a_file(tmp_path: Path, quote: str, form: str) -> None:
    target = tmp_path / "pwned"
    payloads = [
        f"{quote} or __import__('pathlib').Path({str(target)!r}).touch() or {quote}",
        f'{quote} or open({str(target)!r}, "w").close() or {quote}',
        f"{quote} or __import__('pathlib').Path({str(target)!r}).write_text('x') or {quote}",
    ]
    for payload in payloads:
        expr = form.format(q=quote, v="${{ params.value }}")
        result = ev(expr, {"params": {"value": payload}})
        assert result is ("!=" in form)
    assert not target.exists()


def test_payload_written_as_code_would_create_the_file(tmp_path: Path) -> None:
    """Guard: the same text written into the condition itself is rejected, not run."""
    target = tmp_path / "pwned"
    with pytest.raises(ConditionError, match="function calls"):
        Condition.parse(f"'' or __import__('pathlib').Path({str(target)!r}).touch() or ''")
    assert not target.exists()


@given(st.text())
def test_any_text_value_is_compared_as_text(value: str) -> None:
    ctx = {"params": {"v": value}}
    assert ev("${{ params.v }} == '${{ params.v }}'", ctx) is True
    assert ev("${{ params.v }} == 'fixed'", ctx) is (value == "fixed")
