"""Template expressions: paths, filters, types, ``${VAR}`` / ``$$``, caching, errors."""

from __future__ import annotations

import sys
import textwrap
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ddeutil.workflow.engine.templating import (
    BUILTIN_FILTERS,
    Template,
    has_expressions,
    references,
    render,
)
from ddeutil.workflow.errors import TemplateError
from ddeutil.workflow.registry import load_filters

LOGICAL = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def ctx() -> dict[str, Any]:
    return {
        "params": {
            "run-date": datetime(2024, 1, 1),
            "author": "ddeutil",
            "items": ["a", "b", "c"],
            "n": -5,
            "none": None,
            "nested": {"deep": {"k": "v"}},
            "by-year": {2024: "leap"},
        },
        "matrix": {"table": "sales", "partition": 2},
        "stages": {"extract": {"outputs": {"rows": 10, "path": "/tmp/x"}}},
        "jobs": {"first-job": {"stages": {"load": {"outputs": {"ok": True}}}}},
        "release": {"logical_date": LOGICAL},
        "run_id": "20240101T000000-abcd1234",
    }


def r(value: Any, ctx: dict[str, Any], *, environ: dict[str, str] | None = None, **kw: Any) -> Any:
    return render(value, ctx, filters=BUILTIN_FILTERS, environ=environ or {}, **kw)


# ---------------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{ params.author }}", "ddeutil"),
        ("${{ params.run-date }}", datetime(2024, 1, 1)),
        ("${{ matrix.partition }}", 2),
        ("${{ stages.extract.outputs.rows }}", 10),
        ("${{ jobs.first-job.stages.load.outputs.ok }}", True),
        ("${{ release.logical_date }}", LOGICAL),
        ("${{ run_id }}", "20240101T000000-abcd1234"),
        ("${{ params.items.0 }}", "a"),
        ("${{ params.items.2 }}", "c"),
        ("${{ params.nested.deep.k }}", "v"),
        ("${{ params.by-year.2024 }}", "leap"),
        ("${{ params.none }}", None),
        ("${{ params.items }}", ["a", "b", "c"]),
    ],
)
def test_lone_expression_keeps_the_value_type(
    text: str, expected: Any, ctx: dict[str, Any]
) -> None:
    result = r(text, ctx)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "text", ["${{params.n}}", "${{ params.n }}", "${{   params.n\t}}", "${{\n params.n\n}}"]
)
def test_whitespace_inside_braces_is_ignored(text: str, ctx: dict[str, Any]) -> None:
    assert r(text, ctx) == -5


def test_lone_expression_returns_the_context_object_without_copy(ctx: dict[str, Any]) -> None:
    assert r("${{ params.items }}", ctx) is ctx["params"]["items"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("date=${{ params.run-date }}", "date=2024-01-01 00:00:00"),
        (" ${{ params.n }}", " -5"),
        ("${{ params.n }} ", "-5 "),
        ("${{ matrix.table }}-${{ matrix.partition }}", "sales-2"),
        ("none=${{ params.none }}", "none=None"),
        ("${{ params.items }}!", "['a', 'b', 'c']!"),
        ("at ${{ release.logical_date }}", "at 2024-01-01 00:00:00+00:00"),
    ],
)
def test_expression_inside_a_longer_string_is_formatted_with_str(
    text: str, expected: str, ctx: dict[str, Any]
) -> None:
    assert r(text, ctx) == expected


def test_rendered_values_are_never_rendered_again(ctx: dict[str, Any]) -> None:
    ctx["params"]["author"] = "${{ run_id }} ${HOME} $$"
    assert r("by ${{ params.author }}", ctx) == "by ${{ run_id }} ${HOME} $$"
    assert r("${{ params.author }}", ctx) == "${{ run_id }} ${HOME} $$"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            "${{ params.rundate }}",
            [
                "unknown path 'params.rundate'",
                "params has no key 'rundate'",
                "known: run-date, author",
            ],
        ),
        (
            "${{ parms.author }}",
            ["the context has no key 'parms'", "known: params, matrix, stages"],
        ),
        ("${{ stages.load.outputs.rows }}", ["stages has no key 'load'", "known: extract"]),
        (
            "${{ stages.extract.outputs.row }}",
            ["stages.extract.outputs has no key 'row'", "rows, path"],
        ),
        ("${{ params.items.3 }}", ["params.items has no index 3 (length 3)"]),
        ("${{ params.items.first }}", ["params.items is a list; use a whole-number index"]),
        ("${{ params.author.name }}", ["params.author is a str value and has no key 'name'"]),
        ("${{ params.none.x }}", ["params.none is a NoneType value"]),
        ("x ${{ matrix.nope }} y", ["matrix has no key 'nope'; known: table, partition"]),
    ],
)
def test_unknown_path_names_the_path_the_segment_and_the_stage(
    text: str, fragments: list[str], ctx: dict[str, Any]
) -> None:
    with pytest.raises(TemplateError) as info:
        r(text, ctx, stage="load-stage")
    err = info.value
    assert err.stage == "load-stage"
    assert err.expr is not None
    assert err.expr.startswith("${{")
    message = str(err)
    assert "stage 'load-stage'" in message
    for fragment in fragments:
        assert fragment in message


def test_empty_mapping_says_so() -> None:
    with pytest.raises(TemplateError, match=r"params has no key 'x'; known: \(none\)"):
        r("${{ params.x }}", {"params": {}})


def test_template_error_raised_by_a_filter_is_kept(ctx: dict[str, Any]) -> None:
    def strict(value: Any) -> Any:
        raise TemplateError("strict filter says no")

    with pytest.raises(TemplateError, match="strict filter says no"):
        render("${{ params.author | strict }}", ctx, filters={"strict": strict}, environ={})


def test_known_keys_are_truncated_for_large_mappings() -> None:
    big = {"params": {f"k{i}": i for i in range(50)}}
    with pytest.raises(TemplateError) as info:
        r("${{ params.missing }}", big)
    assert "k0, k1" in str(info.value)
    assert "k49" not in str(info.value)
    assert ", ..." in str(info.value)


def test_attributes_are_not_followed(ctx: dict[str, Any]) -> None:
    ctx["params"]["obj"] = datetime(2024, 1, 1)
    with pytest.raises(TemplateError, match="has no key 'year'"):
        r("${{ params.obj.year }}", ctx)


# -------------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{ params.n | abs }}", 5),
        ("${{ params.n | str }}", "-5"),
        ("${{ matrix.partition | str | int }}", 2),
        ("${{ stages.extract.outputs.path | upper }}", "/TMP/X"),
        ("${{ params.author | upper | lower }}", "ddeutil"),
        ("${{ params.run-date | fmt('%Y%m%d') }}", "20240101"),
        ("${{ params.run-date | fmt }}", "2024-01-01 00:00:00"),
        ("${{ params.run-date | fmt() }}", "2024-01-01 00:00:00"),
        ("${{ params.run-date | fmt(fmt='%Y') }}", "2024"),
        ("${{ params.run-date | fmt('%Y|%m') }}", "2024|01"),
        ("${{ params.run-date | str | fmt('%d') }}", "01"),
        ("${{ release.logical_date | fmt('%Y-%m-%dT%H:%M%z') }}", "2024-01-01T00:00+0000"),
        ("${{ params.none | coalesce('fallback') }}", "fallback"),
        ("${{ params.none | coalesce('}}') }}", "}}"),
        ("${{ params.none | coalesce('it\\'s }}') }}", "it's }}"),
        ('${{ params.none | coalesce("a|b\\"c") }}', 'a|b"c'),
        ("${{ params.author | coalesce('fallback') }}", "ddeutil"),
        ("${{ params.none | coalesce([1, 2]) }}", [1, 2]),
        ("${{ params.none | coalesce({'a': (1, 2)}) }}", {"a": (1, 2)}),
        ("${{ params.none | coalesce(-1.5) }}", -1.5),
        ("${{ params.none | coalesce }}", None),
        ("day ${{ params.run-date | fmt('%d') }}", "day 01"),
    ],
)
def test_builtin_filters(text: str, expected: Any, ctx: dict[str, Any]) -> None:
    assert r(text, ctx) == expected


def test_fmt_accepts_a_date(ctx: dict[str, Any]) -> None:
    ctx["params"]["day"] = date(2024, 2, 29)
    assert r("${{ params.day | fmt('%d/%m/%Y') }}", ctx) == "29/02/2024"


def test_unknown_filter_names_it_and_lists_the_known_ones(ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as info:
        r("${{ params.author | titlecase }}", ctx, stage="s")
    message = str(info.value)
    assert "unknown filter 'titlecase'" in message
    assert "known filters: abs, coalesce, fmt, int, lower, str, upper" in message
    assert info.value.stage == "s"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${{ params.author | int }}", "filter 'int' failed on str 'ddeutil': ValueError"),
        ("${{ params.author | abs }}", "filter 'abs' failed on str"),
        ("${{ params.author | fmt('%Y') }}", "filter 'fmt' failed"),
        ("${{ params.n | fmt('%Y') }}", "fmt needs a date"),
        ("${{ params.author | coalesce(1, 2) }}", "TypeError"),
    ],
)
def test_failing_filter_is_a_template_error_with_the_cause(
    text: str, fragment: str, ctx: dict[str, Any]
) -> None:
    with pytest.raises(TemplateError) as info:
        r(text, ctx, stage="s")
    assert fragment in str(info.value)
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${{ params.x | fmt(name) }}", "must be literals"),
        ("${{ params.x | fmt(os.system('id')) }}", "got os.system('id')"),
        ("${{ params.x | fmt(__import__('os')) }}", "must be literals"),
        ("${{ params.x | fmt('a'.upper()) }}", "must be literals"),
        ("${{ params.x | fmt(*args) }}", "cannot use * or **"),
        ("${{ params.x | fmt(**kw) }}", "cannot use * or **"),
        ("${{ params.x | fmt(lambda: 1) }}", "must be literals"),
        ("${{ params.x | fmt('a')) + (1 }}", "bad filter"),
        ("${{ params.x | fmt('a'), 2) }}", "bad arguments"),
        ("${{ params.x | fmt('unclosed) }}", "unterminated"),
        ("${{ params.x | 9lives }}", "bad filter"),
        ("${{ params.x | fmt(1)(2) }}", "bad arguments"),
        ("${{ params.x | }}", "bad filter"),
    ],
)
def test_filter_arguments_must_be_literals(text: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template.parse(text)
    assert fragment in str(info.value)
    assert info.value.expr is not None


def test_custom_filters_come_from_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ctx: dict[str, Any]
) -> None:
    module = "ddw_test_custom_filters_mod"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            """
            from ddeutil.workflow.registry import custom_filter

            @custom_filter("surround")
            def surround(value, left="<", right=">"):
                return f"{left}{value}{right}"

            @custom_filter("upper")
            def shout(value):
                return str(value).upper() + "!"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    filters = load_filters(["ddeutil.workflow.templating", module])
    out = render(
        "${{ params.author | surround('[', right=']') }} ${{ params.author | upper }}",
        ctx,
        filters=filters,
        environ={},
    )
    assert out == "[ddeutil] DDEUTIL!"
    assert filters["fmt"] is BUILTIN_FILTERS["fmt"]


def test_builtin_filters_are_what_the_registry_finds_in_this_module() -> None:
    assert dict(load_filters(["ddeutil.workflow.templating"])) == dict(BUILTIN_FILTERS)


# --------------------------------------------------------------------- ${VAR} and $$


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${HOME}", {"HOME": "/home/me"}, "/home/me"),
        ("path=${HOME}/x", {"HOME": "/home/me"}, "path=/home/me/x"),
        ("${HOME:-/tmp}", {}, "/tmp"),
        ("${HOME:-/tmp}", {"HOME": ""}, "/tmp"),
        ("${HOME:-/tmp}", {"HOME": "/h"}, "/h"),
        ("${HOME:-}", {}, ""),
        ("${EMPTY}", {"EMPTY": ""}, ""),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("${X:-a b:c}", {}, "a b:c"),
        ("cost $$5", {}, "cost $5"),
        ("$$HOME", {"HOME": "/h"}, "$HOME"),
        ("$${HOME}", {"HOME": "/h"}, "${HOME}"),
        ("$${{ params.author }}", {}, "${{ params.author }}"),
        ("$$$${{ params.author }}", {}, "$${{ params.author }}"),
        ("$$$$${{ params.author }}", {}, "$$ddeutil"),
        ("$HOME and $", {"HOME": "/h"}, "$HOME and $"),
        ("a $ b", {}, "a $ b"),
        ("${USER}: ${{ params.author }}", {"USER": "me"}, "me: ddeutil"),
    ],
)
def test_environment_variables_and_dollar_escape(
    text: str, environ: dict[str, str], expected: str, ctx: dict[str, Any]
) -> None:
    assert r(text, ctx, environ=environ) == expected


def test_unset_variable_without_default_is_an_error_naming_it(ctx: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as info:
        r({"with": {"url": "https://${API_HOST}/v1"}}, ctx, stage="call-api")
    assert "environment variable 'API_HOST' is not set" in str(info.value)
    assert info.value.stage == "call-api"


@pytest.mark.parametrize("text", ["${ HOME }", "${1ABC}", "${HOME", "${HOME-x}", "${}"])
def test_malformed_variable_is_a_parse_error(text: str) -> None:
    with pytest.raises(TemplateError, match="malformed"):
        Template.parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("echo ${HOME} $$ $1", "echo ${HOME} $$ $1"),
        ("echo ${#arr[@]} ${x:+y}", "echo ${#arr[@]} ${x:+y}"),
        ("echo ${{ params.author }} ${USER}", "echo ddeutil ${USER}"),
        ("${{ params.n }}", -5),
    ],
)
def test_env_false_leaves_shell_syntax_alone_but_renders_expressions(
    text: str, expected: Any, ctx: dict[str, Any]
) -> None:
    assert r(text, ctx, environ={"HOME": "/h", "USER": "me"}, env=False) == expected


# ------------------------------------------------------------------------- parse errors


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${{ params.x", "unterminated"),
        ("a ${{ params.x } }", "unterminated"),
        ("${{ }}", "empty expression"),
        ("${{ | upper }}", "empty expression"),
        ("${{ params..x }}", "bad path"),
        ("${{ params.x y }}", "bad path"),
        ("${{ params['x'] }}", "bad path"),
        ("${{ .params }}", "bad path"),
        ("${{ -x }}", "bad path"),
    ],
)
def test_malformed_expressions_fail_at_parse(text: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as info:
        Template.parse(text)
    assert fragment in str(info.value)
    assert info.value.expr == text


# ------------------------------------------------------------------ parse once, render fast


def test_parse_is_cached_per_text_and_env() -> None:
    text = "cached ${{ params.author }}"
    assert Template.parse(text) is Template.parse(text)
    assert Template.parse(text, env=False) is not Template.parse(text)
    assert Template.parse(text, env=False) is Template.parse(text, env=False)


def test_template_structure() -> None:
    template = Template.parse("x ${{ params.a | upper }} ${HOME} ${{ matrix.b | fmt('%Y') }}")
    assert [e.path for e in template.expressions] == ["params.a", "matrix.b"]
    assert [[f[0] for f in e.filters] for e in template.expressions] == [["upper"], ["fmt"]]
    assert not template.is_static
    assert Template.parse("only ${HOME} and $$").is_static


def test_string_without_dollar_is_returned_as_is(ctx: dict[str, Any]) -> None:
    text = "".join(["plain ", "text"])
    assert r(text, ctx) is text


def test_render_recurses_into_containers(ctx: dict[str, Any]) -> None:
    marker = object()
    source = {
        "name": "Load ${{ matrix.table }}",
        "with": {
            "date": "${{ params.run-date | fmt('%Y%m%d') }}",
            "parts": ["${{ matrix.partition }}", 3, ("${{ params.n }}", "x")],
            "limit": 100,
            "obj": marker,
            "${{ params.author }}": "keys are not rendered",
        },
    }
    out = r(source, ctx)
    assert out == {
        "name": "Load sales",
        "with": {
            "date": "20240101",
            "parts": [2, 3, (-5, "x")],
            "limit": 100,
            "obj": marker,
            "${{ params.author }}": "keys are not rendered",
        },
    }
    assert out["with"]["obj"] is marker
    assert isinstance(out["with"]["parts"][2], tuple)


def test_other_mappings_and_str_subclasses_are_rendered(ctx: dict[str, Any]) -> None:
    from types import MappingProxyType

    class Text(str):
        pass

    out = r(MappingProxyType({"a": Text("${{ matrix.table }}"), "b": Text("plain")}), ctx)
    assert out == {"a": "sales", "b": "plain"}
    assert type(out) is dict


def test_rendered_containers_are_new_so_the_source_stays_untouched(ctx: dict[str, Any]) -> None:
    source = {"vars": {"rows": [1, 2]}, "name": "static"}
    out = r(source, ctx)
    out["vars"]["rows"].append(3)
    out["vars"]["new"] = 1
    assert source == {"vars": {"rows": [1, 2]}, "name": "static"}


@pytest.mark.parametrize("value", [1, 2.5, None, True, b"${{ x }}", date(2024, 1, 1)])
def test_non_container_values_pass_through(value: Any, ctx: dict[str, Any]) -> None:
    assert r(value, ctx) is value


# -------------------------------------------------------------------- has_expressions etc.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tasks/get-api@requests", False),
        ("tasks/el-${{ matrix.system }}-to-parquet@polars", True),
        ("$${{ not.an.expression }}", False),
        ({"a": ["x", {"b": "${{ params.x }}"}]}, True),
        ({"a": ["x", {"b": "${HOME}"}]}, False),
        (("${{ params.x }}",), True),
        (5, False),
    ],
)
def test_has_expressions(value: Any, expected: bool) -> None:
    assert has_expressions(value) is expected


def test_has_expressions_with_env_false_sees_through_dollar_dollar() -> None:
    assert has_expressions("$${{ params.x }}", env=False) is True


def test_references_lists_every_path() -> None:
    value = {
        "a": "${{ params.run-date | fmt('%Y') }}-${{ matrix.table }}",
        "b": ["${{ stages.extract.outputs.rows }}", "plain"],
    }
    assert references(value) == {"params.run-date", "matrix.table", "stages.extract.outputs.rows"}


# ----------------------------------------------------------------------------- properties


@given(st.text().filter(lambda s: "$" not in s))
def test_strings_without_dollar_render_to_themselves(text: str) -> None:
    assert render(text, {}, filters={}, environ={}) is text


@given(st.text())
def test_doubling_every_dollar_escapes_any_text(text: str) -> None:
    assert render(text.replace("$", "$$"), {}, filters={}, environ={}) == text


@given(st.text(), st.text())
def test_any_value_is_formatted_in_verbatim(prefix: str, value: str) -> None:
    escaped = prefix.replace("$", "$$")
    ctx = {"params": {"v": value}}
    assert render(f"{escaped}${{{{ params.v }}}}", ctx, filters={}, environ={}) == prefix + value
    assert render("${{ params.v }}", ctx, filters={}, environ={}) is value


@given(
    st.recursive(
        st.one_of(st.integers(), st.text(alphabet="ab$ {}"), st.none()),
        lambda children: st.lists(children) | st.dictionaries(st.text(max_size=3), children),
        max_leaves=20,
    )
)
def test_escaped_nested_data_renders_back_unchanged(value: Any) -> None:
    def escape(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace("$", "$$")
        if isinstance(v, list):
            return [escape(x) for x in v]
        if isinstance(v, dict):
            return {k: escape(x) for k, x in v.items()}
        return v

    assert render(escape(value), {}, filters={}, environ={}) == value
