"""Params: declaration at load, coercion and defaults at run time, one error per call."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from ddeutil.workflow.engine.params import (
    PARAM_TYPES,
    BoolParam,
    ChoiceParam,
    DateParam,
    DatetimeParam,
    IntParam,
    Param,
    ParamSet,
    StrParam,
    parse_params,
)
from ddeutil.workflow.errors import ConfigError, ParamError

SEED_PARAMS = {
    "author-run": "str",
    "run-date": {"type": "datetime", "default": "2024-01-01", "desc": "logical date"},
    "mode": {"type": "choice", "options": ["full", "delta"]},
}


def one(type_name: str, **extra: Any) -> Param:
    return parse_params({"p": {"type": type_name, **extra}})["p"]


# --------------------------------------------------------------------------- declaration


def test_seed_params_parse_short_and_long_form() -> None:
    params = parse_params(SEED_PARAMS)
    assert list(params) == ["author-run", "run-date", "mode"]
    assert isinstance(params["author-run"], StrParam)
    assert isinstance(params["run-date"], DatetimeParam)
    assert params["run-date"].desc == "logical date"
    assert isinstance(params["mode"], ChoiceParam)
    assert params["mode"].options == ("full", "delta")


@pytest.mark.parametrize("type_name", [t for t in PARAM_TYPES if t != "choice"])
def test_every_type_but_choice_has_a_short_form(type_name: str) -> None:
    param = parse_params({"x": type_name})["x"]
    assert type(param) is PARAM_TYPES[type_name]
    assert param.type == type_name


@pytest.mark.parametrize(
    ("spec", "required"),
    [
        ("str", True),
        ({"type": "str"}, True),
        ({"type": "str", "default": "a"}, False),
        ({"type": "str", "required": False}, False),
        ({"type": "str", "default": "a", "required": True}, True),
        ({"type": "str", "default": None}, True),
    ],
)
def test_required_defaults_to_true_unless_a_default_is_given(spec: Any, required: bool) -> None:
    assert parse_params({"x": spec})["x"].required is required


def test_default_is_coerced_at_load() -> None:
    params = parse_params(SEED_PARAMS)
    assert params["run-date"].default == datetime(2024, 1, 1)


def test_no_params_is_an_empty_mapping() -> None:
    assert parse_params(None) == {}
    assert len(ParamSet.from_raw(None)) == 0


def test_unknown_type_names_the_key_and_the_allowed_types() -> None:
    with pytest.raises(ConfigError) as info:
        parse_params({"ok": "str", "when": {"type": "timestamp"}})
    assert info.value.key == "params.when"
    assert "'timestamp'" in str(info.value)
    for allowed in PARAM_TYPES:
        assert allowed in info.value.message


def test_unknown_short_form_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown param type 'string'") as info:
        parse_params({"name": "string"})
    assert info.value.key == "params.name"


def test_missing_type_in_long_form_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="missing param type") as info:
        parse_params({"x": {"default": 1}})
    assert info.value.key == "params.x"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"type": "datetime", "default": "yesterday"}, "default 'yesterday' is invalid"),
        ({"type": "int", "default": "five"}, "default 'five' is invalid"),
        ({"type": "bool", "default": "maybe"}, "default 'maybe' is invalid"),
        ({"type": "choice", "options": ["a", "b"], "default": "c"}, "not one of the options: a, b"),
        ({"type": "list", "default": "{not json"}, "JSON array"),
        ({"type": "date", "default": "2024-02-30"}, "not a valid date"),
    ],
)
def test_bad_default_is_a_config_error_naming_the_param(
    spec: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_params({"run-date": spec})
    assert info.value.key == "params.run-date"
    assert fragment in str(info.value)


def test_unknown_key_in_long_form_names_it_and_the_allowed_keys() -> None:
    with pytest.raises(ConfigError) as info:
        parse_params({"x": {"type": "str", "defualt": "a"}})
    assert info.value.key == "params.x.defualt"
    assert "unknown key 'defualt'" in str(info.value)
    assert "default" in info.value.message


@pytest.mark.parametrize(
    ("spec", "fragment", "key"),
    [
        ({"type": "choice"}, "options", "params.x.options"),
        ("choice", "options", "params.x.options"),
        ({"type": "choice", "options": []}, "at least one option", "params.x.options"),
        ({"type": "str", "required": "perhaps"}, "required", "params.x.required"),
    ],
)
def test_invalid_long_form_fields(spec: dict[str, Any], fragment: str, key: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        parse_params({"x": spec})
    assert info.value.key == key


@pytest.mark.parametrize("raw", [["str"], "str", 5])
def test_params_must_be_a_mapping(raw: Any) -> None:
    with pytest.raises(ConfigError, match="mapping") as info:
        parse_params(raw)
    assert info.value.key == "params"


@pytest.mark.parametrize("name", [1, ""])
def test_param_names_must_be_non_empty_strings(name: Any) -> None:
    with pytest.raises(ConfigError, match="param name must be a non-empty string"):
        parse_params({name: "str"})


def test_param_set_membership_and_size() -> None:
    params = ParamSet.from_raw(SEED_PARAMS)
    assert "mode" in params
    assert "nope" not in params
    assert len(params) == 3


@pytest.mark.parametrize("spec", [5, None, ["str"]])
def test_a_param_spec_must_be_a_type_name_or_a_mapping(spec: Any) -> None:
    with pytest.raises(ConfigError, match="expected a type name") as info:
        parse_params({"x": spec})
    assert info.value.key == "params.x"


def test_param_models_are_frozen() -> None:
    param = one("str")
    with pytest.raises(Exception, match="frozen"):
        param.desc = "changed"  # type: ignore[misc]


# ------------------------------------------------------------------------------ coercion


@pytest.mark.parametrize(
    ("type_name", "given", "expected"),
    [
        ("str", "abc", "abc"),
        ("str", 5, "5"),
        ("str", 2.5, "2.5"),
        ("int", "5", 5),
        ("int", " -12 ", -12),
        ("int", 7, 7),
        ("int", 3.0, 3),
        ("float", "2.5", 2.5),
        ("float", 3, 3.0),
        ("bool", "true", True),
        ("bool", "False", False),
        ("bool", "1", True),
        ("bool", "0", False),
        ("bool", "yes", True),
        ("bool", "NO", False),
        ("bool", 1, True),
        ("bool", False, False),
        ("date", "2024-01-31", date(2024, 1, 31)),
        ("date", date(2024, 1, 31), date(2024, 1, 31)),
        ("date", datetime(2024, 1, 31), date(2024, 1, 31)),
        ("date", "2024-01-31T00:00:00", date(2024, 1, 31)),
        ("datetime", "2024-01-01", datetime(2024, 1, 1)),
        ("datetime", "2024-01-01 10:30", datetime(2024, 1, 1, 10, 30)),
        ("datetime", "2024-01-01T10:30:05.25", datetime(2024, 1, 1, 10, 30, 5, 250000)),
        (
            "datetime",
            "2024-01-01T10:30:00+07:00",
            datetime(2024, 1, 1, 10, 30, tzinfo=timezone(timedelta(hours=7))),
        ),
        ("datetime", "2024-01-01T10:30:00Z", datetime(2024, 1, 1, 10, 30, tzinfo=timezone.utc)),
        (
            "datetime",
            "2024-01-01T10:30:00-0330",
            datetime(2024, 1, 1, 10, 30, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
        ),
        ("datetime", date(2024, 5, 6), datetime(2024, 5, 6)),
        ("list", ["a", "b"], ["a", "b"]),
        ("list", ("a",), ["a"]),
        ("list", '["a", 1]', ["a", 1]),
        ("map", {"a": 1}, {"a": 1}),
        ("map", '{"a": [1, 2]}', {"a": [1, 2]}),
    ],
)
def test_values_are_coerced(type_name: str, given: Any, expected: Any) -> None:
    result = ParamSet.from_raw({"p": type_name}).resolve({"p": given})["p"]
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(expected, datetime):
        assert result.tzinfo == expected.tzinfo


def test_naive_datetime_stays_naive_and_offset_is_kept() -> None:
    params = ParamSet.from_raw({"a": "datetime", "b": "datetime"})
    out = params.resolve({"a": "2024-01-01T00:00:00", "b": "2024-01-01T00:00:00+07:00"})
    assert out["a"].tzinfo is None
    assert out["b"].utcoffset() == timedelta(hours=7)


@pytest.mark.parametrize(
    ("type_name", "given", "fragment"),
    [
        ("str", ["a"], "expected a string"),
        ("str", True, "expected a string"),
        ("int", "5.5", "whole number"),
        ("int", True, "whole number"),
        ("int", 2.5, "whole number"),
        ("float", "abc", "finite number"),
        ("float", "nan", "finite number"),
        ("bool", "maybe", "boolean"),
        ("bool", 2, "boolean"),
        ("date", "2024-01-31T10:00:00", "time of day"),
        ("date", "31/01/2024", "ISO 8601"),
        ("date", 20240131, "expected a date"),
        ("datetime", "2024-13-01", "not a valid date"),
        ("datetime", "2024-01-01T00:00:00+25:00", "offset"),
        ("datetime", 1704067200, "ISO 8601"),
        ("list", "a,b", "JSON array"),
        ("list", '{"a": 1}', "expected a list"),
        ("list", 5, "expected a list"),
        ("map", "[1]", "expected a mapping"),
        ("map", "nope", "JSON object"),
    ],
)
def test_bad_values_are_problems_naming_the_param(
    type_name: str, given: Any, fragment: str
) -> None:
    params = ParamSet.from_raw({"the-param": type_name})
    with pytest.raises(ParamError) as info:
        params.resolve({"the-param": given})
    (problem,) = info.value.problems
    assert problem.name == "the-param"
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("options", "given", "expected"),
    [
        (["full", "delta"], "delta", "delta"),
        ([1, 2, 3], "2", 2),
        ([1, 2, 3], 3, 3),
        ([True, False], True, True),
    ],
)
def test_choice_accepts_an_option_or_its_text(
    options: list[Any], given: Any, expected: Any
) -> None:
    result = ParamSet.from_raw({"c": {"type": "choice", "options": options}}).resolve({"c": given})
    assert result["c"] == expected
    assert type(result["c"]) is type(expected)


def test_choice_outside_options_names_the_options() -> None:
    params = ParamSet.from_raw({"mode": {"type": "choice", "options": ["full", "delta"]}})
    with pytest.raises(ParamError, match=r"mode: 'half' is not one of the options: full, delta"):
        params.resolve({"mode": "half"})


def test_choice_does_not_confuse_one_with_true() -> None:
    params = ParamSet.from_raw({"c": {"type": "choice", "options": [True, 2]}})
    with pytest.raises(ParamError):
        params.resolve({"c": 1})


# ------------------------------------------------------------------------------- resolve


def test_all_problems_of_one_call_are_reported_together() -> None:
    params = ParamSet.from_raw({**SEED_PARAMS, "n": "int", "flag": "bool"})
    with pytest.raises(ParamError) as info:
        params.resolve({"mode": "half", "n": "x", "flag": "perhaps"}, pipeline="etl")
    err = info.value
    assert [p.name for p in err.problems] == ["author-run", "mode", "n", "flag"]
    assert err.pipeline == "etl"
    text = str(err)
    assert text.startswith("invalid params for pipeline 'etl'")
    assert "author-run: is required (str)" in text
    assert "run-date" not in text  # defaulted, not a problem


def test_defaults_fill_missing_and_none_values() -> None:
    params = ParamSet.from_raw(SEED_PARAMS)
    out = params.resolve({"author-run": "me", "mode": "full", "run-date": None})
    assert out == {"author-run": "me", "run-date": datetime(2024, 1, 1), "mode": "full"}
    assert list(out) == ["author-run", "run-date", "mode"]


def test_optional_param_without_default_resolves_to_none() -> None:
    params = ParamSet.from_raw({"x": {"type": "int", "required": False}})
    assert params.resolve({}) == {"x": None}
    assert params.resolve(None) == {"x": None}


def test_given_value_wins_over_default() -> None:
    params = ParamSet.from_raw(SEED_PARAMS)
    out = params.resolve({"author-run": "me", "mode": "delta", "run-date": "2025-06-01"})
    assert out["run-date"] == datetime(2025, 6, 1)


def test_list_and_map_defaults_are_copied_per_run() -> None:
    params = ParamSet.from_raw({"items": {"type": "list", "default": [{"a": 1}]}})
    first = params.resolve({})
    first["items"][0]["a"] = 99
    first["items"].append(2)
    assert params.resolve({}) == {"items": [{"a": 1}]}


def test_unknown_param_is_a_problem_when_strict() -> None:
    params = ParamSet.from_raw({"a": "str"})
    with pytest.raises(ParamError) as info:
        params.resolve({"a": "x", "b": 1, "c": 2}, strict=True)
    assert [(p.name, p.message) for p in info.value.problems] == [
        ("b", "is not a declared param; declared: a"),
        ("c", "is not a declared param; declared: a"),
    ]


def test_unknown_param_is_kept_with_a_warning_when_not_strict(
    caplog: pytest.LogCaptureFixture,
) -> None:
    params = ParamSet.from_raw({"a": "str"})
    with caplog.at_level(logging.WARNING, logger="ddeutil.workflow.engine.params"):
        out = params.resolve({"a": "x", "extra": {"raw": 1}}, pipeline="etl")
    assert out == {"a": "x", "extra": {"raw": 1}}
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "'extra'" in record.getMessage()
    assert "'etl'" in record.getMessage()
    assert record.pipeline == "etl"  # type: ignore[attr-defined]


def test_required_without_default_lists_what_a_caller_must_pass() -> None:
    params = ParamSet.from_raw(
        {
            **SEED_PARAMS,
            "opt": {"type": "int", "required": False},
            "req-with-default": {"type": "int", "required": True, "default": 1},
        }
    )
    assert params.required_without_default() == ["author-run", "mode"]


def test_json_schema_for_the_api() -> None:
    params = ParamSet.from_raw(
        {
            **SEED_PARAMS,
            "n": {"type": "int", "default": "3"},
            "ratio": "float",
            "flag": {"type": "bool", "default": False},
            "day": {"type": "date", "required": False},
            "tags": "list",
            "opts": "map",
        }
    )
    assert params.json_schema() == {
        "type": "object",
        "properties": {
            "author-run": {"type": "string"},
            "run-date": {
                "type": "string",
                "format": "date-time",
                "description": "logical date",
                "default": "2024-01-01T00:00:00",
            },
            "mode": {"enum": ["full", "delta"]},
            "n": {"type": "integer", "default": 3},
            "ratio": {"type": "number"},
            "flag": {"type": "boolean", "default": False},
            "day": {"type": "string", "format": "date"},
            "tags": {"type": "array"},
            "opts": {"type": "object"},
        },
        "required": ["author-run", "mode", "ratio", "tags", "opts"],
        "additionalProperties": False,
    }


# -------------------------------------------------------------------- pydantic integration


class _Holder(BaseModel):
    params: ParamSet = ParamSet()


def test_param_set_validates_raw_yaml_inside_a_pydantic_model() -> None:
    holder = _Holder.model_validate({"params": SEED_PARAMS})
    assert isinstance(holder.params, ParamSet)
    assert holder.params.required_without_default() == ["author-run", "mode"]
    assert _Holder.model_validate({"params": holder.params}).params is holder.params


def test_param_set_config_error_escapes_pydantic_with_its_key() -> None:
    with pytest.raises(ConfigError) as info:
        _Holder.model_validate({"params": {"x": "nope"}})
    assert info.value.key == "params.x"


def test_param_set_serialises_to_the_long_form() -> None:
    holder = _Holder.model_validate({"params": SEED_PARAMS})
    dumped = holder.model_dump(mode="json")["params"]
    assert dumped["run-date"] == {
        "type": "datetime",
        "desc": "logical date",
        "default": "2024-01-01T00:00:00",
        "required": False,
    }
    assert ParamSet.from_raw(dumped).params == holder.params.params


def test_param_set_json_schema_describes_the_yaml_forms() -> None:
    schema = _Holder.model_json_schema()
    forms = schema["properties"]["params"]["additionalProperties"]["anyOf"]
    assert forms[0] == {"enum": list(PARAM_TYPES)}
    assert {f["properties"]["type"]["const"] for f in forms[1:]} == set(PARAM_TYPES)


# ---------------------------------------------------------------------------- properties


@given(st.integers())
def test_int_text_round_trips(n: int) -> None:
    assert IntParam().coerce(str(n)) == n


@given(st.booleans(), st.sampled_from([str.lower, str.upper, str.title]))
def test_bool_text_round_trips_in_any_case(value: bool, case: Any) -> None:
    assert BoolParam().coerce(case(str(value))) is value


_offsets = st.one_of(
    st.none(),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
        lambda m: timezone(timedelta(minutes=m))
    ),
)


# hypothesis types datetimes() as all naive or all aware; this mixes both
@given(st.datetimes(min_value=datetime(1000, 1, 1), timezones=_offsets))  # type: ignore[arg-type]
def test_datetime_iso_text_round_trips_and_keeps_naivety(value: datetime) -> None:
    result = DatetimeParam().coerce(value.isoformat())
    assert result == value
    assert (result.tzinfo is None) == (value.tzinfo is None)
    assert result.utcoffset() == value.utcoffset()


@given(st.dates(min_value=date(1000, 1, 1)))
def test_date_iso_text_round_trips(value: date) -> None:
    assert DateParam().coerce(value.isoformat()) == value


def test_the_param_kinds_stay_importable_from_params() -> None:
    from ddeutil.workflow.engine import param_types, params

    for name in param_types.__all__:
        assert getattr(params, name) is getattr(param_types, name)
    assert set(param_types.__all__) < set(params.__all__) <= set(dir(params))
    with pytest.raises(AttributeError, match="no attribute 'NoSuchParam'"):
        _ = params.NoSuchParam
