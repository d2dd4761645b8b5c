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

Bounded (:mod:`~ddeutil.workflow.limits`): the cross product is counted by
multiplying before anything is expanded, and more than ``max_combinations`` (or a
final list longer than that) is a load error, as are more than ``max_include``
``include`` or ``exclude`` entries. ``exclude`` and ``include`` are matched by
hashing (values compared with ``==``, lists and mappings by content), so the cost
is linear in the combinations and entries.

Each combination has a stable id (:func:`combination_id`): the same values give
the same id in every run and process, whatever the key order.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Hashable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator

from ..limits import ConfLimits, LimitExceeded, limits_of
from .schema import LocatesErrors

__all__ = ["Strategy", "combination_id"]

Combination = dict[str, Any]
"""One combination: matrix key to value. Shared by every run: treat as read-only."""


def combination_id(matrix: Mapping[str, Any]) -> str:
    """A stable id for one combination: 10 hex digits of a hash of its values.

    Key order does not matter; values are compared by their JSON text, so the
    id is the same across runs, processes and machines. Mappings inside values
    whose keys cannot be sorted together (``{1: a, b: c}``) are keyed by their
    keys' text.
    """
    try:
        text = json.dumps(matrix, sort_keys=True, default=str, separators=(",", ":"))
    except TypeError:  # keys of mixed types: sort by their text instead
        text = json.dumps(_text_keys(matrix), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:10]


def _text_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_text_keys(v) for v in value]
    return value


class _Tag:
    """Marks a frozen list or mapping (so it never equals a plain tuple or frozenset)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_LIST = _Tag("list")
_MAP = _Tag("map")
_OTHER = _Tag("other")


def _frozen(value: Any) -> Hashable:
    """A hashable stand-in for a matrix value: equal exactly when the values are ``==``."""
    if isinstance(value, list):
        return (_LIST, tuple(_frozen(v) for v in value))
    if isinstance(value, Mapping):
        return (_MAP, _frozen_items(value))
    try:
        hash(value)
    except TypeError:  # not from YAML (a set, a bytearray...): compared by its text
        return (_OTHER, repr(value))
    return value  # type: ignore[no-any-return]


def _frozen_items(entry: Mapping[Any, Any]) -> frozenset[tuple[Any, Hashable]]:
    return frozenset((k, _frozen(v)) for k, v in entry.items())


def _no_entries() -> list[dict[str, Any]]:
    # Not the ``list`` builtin: pydantic reads a factory's signature, and
    # ``inspect.signature(list)`` compiles tokenize's regex (~1.5 ms of a cold start).
    return []


class Strategy(LocatesErrors, BaseModel):
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

    _combinations: tuple[Combination, ...] = PrivateAttr(default=({},))

    @field_validator("matrix")
    @classmethod
    def _values_not_empty(
        cls, matrix: dict[str, list[Any]], info: ValidationInfo
    ) -> dict[str, list[Any]]:
        limit = limits_of(info.context).max_combinations
        count = 1
        for key, values in matrix.items():
            if not values:
                raise ValueError(f"matrix key {key!r} has no values")
            count *= len(values)
            if count > limit:  # stop multiplying at once: the count stays small
                raise _too_many(f"the matrix has more than {limit:,} combinations", limit)
        return matrix

    @field_validator("include", "exclude")
    @classmethod
    def _entries_not_empty(
        cls, entries: list[dict[str, Any]], info: ValidationInfo
    ) -> list[dict[str, Any]]:
        limit = limits_of(info.context).max_include
        if len(entries) > limit:
            raise LimitExceeded(
                f"{len(entries):,} entries, more than the limit of {limit:,} "
                "(raise WORKFLOW_CORE_MATRIX_MAX_INCLUDE if this is intended)",
                setting="WORKFLOW_CORE_MATRIX_MAX_INCLUDE",
                limit=limit,
            )
        for index, entry in enumerate(entries):
            if not entry:
                raise ValueError(f"entry {index} is empty")
        return entries

    def model_post_init(self, context: Any, /) -> None:
        self._combinations = self._compute(limits_of(context))

    def _compute(self, limits: ConfLimits) -> tuple[Combination, ...]:
        found: list[dict[str, Any]] = []
        seen: set[frozenset[tuple[Any, Hashable]]] = set()
        if self.matrix:
            keys = list(self.matrix)
            excluded = self._excluded(keys)
            columns = [[(v, _frozen(v)) for v in self.matrix[k]] for k in keys]
            for row in itertools.product(*columns):
                frozen = tuple(f for _, f in row)
                if any(tuple(frozen[i] for i in at) in rows for at, rows in excluded):
                    continue
                found.append(dict(zip(keys, (v for v, _ in row), strict=True)))
                seen.add(frozenset(zip(keys, frozen, strict=True)))
        for entry in self.include:
            ident = _frozen_items(entry)
            if ident not in seen:
                seen.add(ident)
                found.append(dict(entry))
        if len(found) > limits.max_combinations:
            limit = limits.max_combinations
            raise _too_many(
                f"{len(found):,} combinations with `include`, more than the limit of {limit:,}",
                limit,
            )
        return tuple(found) or ({},)

    def _excluded(self, keys: list[str]) -> list[tuple[tuple[int, ...], set[tuple[Hashable, ...]]]]:
        """``exclude`` grouped by the matrix positions its entries name, as hash sets.

        An entry naming a key the matrix does not have never matches and is left out.
        """
        position = {k: i for i, k in enumerate(keys)}
        groups: dict[tuple[int, ...], set[tuple[Hashable, ...]]] = {}
        for entry in self.exclude:
            if any(k not in position for k in entry):
                continue
            named = sorted(entry, key=position.__getitem__)
            at = tuple(position[k] for k in named)
            groups.setdefault(at, set()).add(tuple(_frozen(entry[k]) for k in named))
        return list(groups.items())

    @property
    def combinations(self) -> tuple[Combination, ...]:
        """Every combination to run, in order (one empty combination without a matrix)."""
        return self._combinations

    def keys(self) -> set[str]:
        """Every key a combination may have (for checking ``matrix.<key>`` references)."""
        found = set(self.matrix)
        for entry in self.include:
            found.update(entry)
        return found


def _too_many(what: str, limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"{what} (raise WORKFLOW_CORE_MATRIX_MAX_COMBINATIONS if this is intended)",
        setting="WORKFLOW_CORE_MATRIX_MAX_COMBINATIONS",
        limit=limit,
    )
