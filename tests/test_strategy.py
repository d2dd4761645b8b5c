"""The matrix strategy: which combinations run (SPEC 3.3)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ddeutil.workflow.engine.strategy import Strategy, combination_id

SEED = {
    "matrix": {"table": ["customer", "sales"], "system": ["csv"], "partition": [1, 2, 3]},
    "exclude": [
        {"table": "customer", "system": "csv", "partition": 1},
        {"table": "sales", "partition": 3},
    ],
    "include": [{"table": "customer", "system": "csv", "partition": 4}],
}


def test_seed_example_gives_five_combinations() -> None:
    combos = Strategy.model_validate(SEED).combinations
    assert combos == (
        {"table": "customer", "system": "csv", "partition": 2},
        {"table": "customer", "system": "csv", "partition": 3},
        {"table": "sales", "system": "csv", "partition": 1},
        {"table": "sales", "system": "csv", "partition": 2},
        {"table": "customer", "system": "csv", "partition": 4},
    )


def test_exclude_matches_on_all_keys_of_the_entry_only() -> None:
    strategy = Strategy.model_validate(
        {"matrix": {"a": [1, 2], "b": ["x", "y"]}, "exclude": [{"a": 1, "b": "x"}, {"a": 3}]}
    )
    assert {"a": 1, "b": "x"} not in strategy.combinations
    assert {"a": 1, "b": "y"} in strategy.combinations
    assert len(strategy.combinations) == 3


def test_include_adds_new_combinations_and_skips_duplicates() -> None:
    strategy = Strategy.model_validate(
        {"matrix": {"a": [1]}, "include": [{"a": 1}, {"a": 2, "extra": True}]}
    )
    assert strategy.combinations == ({"a": 1}, {"a": 2, "extra": True})
    assert strategy.keys() == {"a", "extra"}


def test_without_matrix_one_empty_combination_runs() -> None:
    strategy = Strategy()
    assert strategy.combinations == ({},)


def test_include_alone_defines_the_combinations() -> None:
    strategy = Strategy.model_validate({"include": [{"a": 1}, {"a": 2}]})
    assert strategy.combinations == ({"a": 1}, {"a": 2})


def test_yaml_spellings_of_parallel_and_fail_fast() -> None:
    strategy = Strategy.model_validate({"max-parallel": 8, "fail-fast": True})
    assert (strategy.max_parallel, strategy.fail_fast) == (8, True)
    assert (Strategy().max_parallel, Strategy().fail_fast) == (1, False)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"matrix": {"a": []}}, "has no values"),
        ({"max-parallel": 0}, "greater than or equal to 1"),
        ({"exclude": [{}]}, "entry 0 is empty"),
        ({"matrix": {"a": [1]}, "maxparallel": 2}, "Extra inputs"),
    ],
)
def test_invalid_strategies_are_rejected(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Strategy.model_validate(data)


def test_combination_id_is_stable_and_order_independent() -> None:
    first = combination_id({"table": "sales", "partition": 1})
    assert first == combination_id({"partition": 1, "table": "sales"})
    assert first != combination_id({"table": "sales", "partition": 2})
    assert len(first) == 10
    assert first == "c5f59b07ff"  # same in every process and release
