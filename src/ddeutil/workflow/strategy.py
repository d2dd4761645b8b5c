"""The matrix strategy of a job: which combinations run, and how many at once.

```yaml
strategy:
  max-parallel: 2
  fail-fast: true
  matrix:
    table: [customer, sales]
    system: [csv]
    partition: [1, 2, 3]
  exclude:
    - {table: customer, system: csv, partition: 1}
    - {table: sales, partition: 3}
  include:
    - {table: customer, system: csv, partition: 4}
```

Combinations are the cross product of ``matrix`` (keys in the order written),
minus every combination that matches an ``exclude`` entry on *all* of that
entry's keys, plus each ``include`` entry as a combination of its own (an entry
equal to a combination already present is not added twice). The example gives
five combinations. The list is computed once, when the job is loaded.

Each combination has a stable id (:func:`combination_id`): the same values give
the same id in every run and process, whatever the key order.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .context import stash

__all__ = ["Strategy", "combination_id"]

Combination = dict[str, Any]
"""One combination: matrix key to value. Shared by every run: treat as read-only."""


def combination_id(matrix: Mapping[str, Any]) -> str:
    """A stable id for one combination: 10 hex digits of a hash of its values.

    Key order does not matter; values are compared by their JSON text, so the
    id is the same across runs, processes and machines.
    """
    text = json.dumps(matrix, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:10]


def _matches(combination: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return all(key in combination and combination[key] == value for key, value in entry.items())


def _no_entries() -> list[dict[str, Any]]:
    # Not the ``list`` builtin: pydantic reads a factory's signature, and
    # ``inspect.signature(list)`` compiles tokenize's regex (~1.5 ms of a cold start).
    return []


class Strategy(BaseModel):
    """A job's ``strategy``: the matrix and how its combinations run.

    Attributes:
        matrix: Key to the list of its values; the cross product is taken.
        include: Extra combinations, each added as written.
        exclude: Partial combinations; every combination matching all keys of an
            entry is removed.
        max_parallel: (``max-parallel``) combinations running at once, on
            threads; default 1 runs them one after another.
        fail_fast: (``fail-fast``) when a combination fails, the ones not yet
            started are cancelled; the running ones finish.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    include: list[dict[str, Any]] = Field(default_factory=_no_entries)
    exclude: list[dict[str, Any]] = Field(default_factory=_no_entries)
    max_parallel: int = Field(default=1, ge=1, alias="max-parallel")
    fail_fast: bool = Field(default=False, alias="fail-fast")

    _combinations: ClassVar[tuple[Combination, ...]] = ()

    @field_validator("matrix")
    @classmethod
    def _values_not_empty(cls, matrix: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in matrix.items():
            if not values:
                raise ValueError(f"matrix key {key!r} has no values")
        return matrix

    @field_validator("include", "exclude")
    @classmethod
    def _entries_not_empty(cls, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, entry in enumerate(entries):
            if not entry:
                raise ValueError(f"entry {index} is empty")
        return entries

    def model_post_init(self, context: Any, /) -> None:
        stash(self, _combinations=self._compute())

    def _compute(self) -> tuple[Combination, ...]:
        found: list[dict[str, Any]] = []
        if self.matrix:
            keys = list(self.matrix)
            for values in itertools.product(*(self.matrix[k] for k in keys)):
                combination = dict(zip(keys, values, strict=True))
                if not any(_matches(combination, entry) for entry in self.exclude):
                    found.append(combination)
        for entry in self.include:
            if entry not in found:
                found.append(dict(entry))
        return tuple(found) or ({},)

    @property
    def combinations(self) -> tuple[Combination, ...]:
        """Every combination to run, in order (one empty combination without a matrix)."""
        return self._combinations

    @property
    def is_multi(self) -> bool:
        """True when more than one combination runs (results go under ``strategies``)."""
        return len(self._combinations) > 1

    def keys(self) -> set[str]:
        """Every key a combination may have (for checking ``matrix.<key>`` references)."""
        found = set(self.matrix)
        for entry in self.include:
            found.update(entry)
        return found
