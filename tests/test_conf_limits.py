"""Reading conf is bounded: alias bombs, huge matrices and odd values never stall or crash.

Each limit is a setting (:mod:`ddeutil.workflow.limits`); crossing one is a
``ConfLimitError`` naming the file, template, key and setting. Any failure while
building one template is a located ``ConfigError`` for that template only, so the
CLI, the API and the daemon keep serving the others.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from ddeutil.workflow.cli import main
from ddeutil.workflow.cli.templates import build_all
from ddeutil.workflow.engine.pipeline import Pipeline
from ddeutil.workflow.engine.strategy import Strategy
from ddeutil.workflow.errors import ConfigError, ConfLimitError, brief
from ddeutil.workflow.limits import ConfLimits
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.settings import Settings

WriteConf = Callable[[str, str], Path]

OK_PIPELINE = """\
ok:
  type: Pipeline
  jobs:
    only:
      stages:
        - name: nothing
"""


def laughs(levels: int, *, indent: str = "") -> str:
    """Anchors ``a0`` .. ``a<levels>``, each a list of ten aliases of the one before.

    ``a<n>`` expands to 10**(n+1) scalars; the text stays a few hundred bytes.
    """
    lines = [f"{indent}a0: &a0 [" + ", ".join(['"lol"'] * 10) + "]"]
    for n in range(1, levels + 1):
        lines.append(f"{indent}a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def param_bomb(levels: int) -> str:
    """A pipeline whose list param default expands to about 10**(levels+1) items."""
    return (
        "bomb:\n"
        "  type: Pipeline\n"
        "  params:\n"
        "    x:\n"
        "      type: list\n"
        "      default:\n" + "".join(f"        - &a{n} {_level(n)}\n" for n in range(levels + 1))
    )


def _level(n: int) -> str:
    if n == 0:
        return "[" + ", ".join(['"lol"'] * 10) + "]"
    return "[" + ", ".join([f"*a{n - 1}"] * 10) + "]"


class Bounded:
    """Wall time and traced peak memory of a block (both asserted generously)."""

    def __enter__(self) -> Bounded:
        tracemalloc.start()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self.peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, root: Path) -> Iterator[None]:
    """Environment for ``main()``; removes main's log handler afterwards."""
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "UTC")
    yield
    rootlog = logging.getLogger()
    for handler in [h for h in rootlog.handlers if getattr(h, "_ddeutil_workflow", False)]:
        rootlog.removeHandler(handler)


def validate_json() -> tuple[int, Any]:
    out = io.StringIO()
    code = main(["--log-format", "text", "validate", "--json"], out=out)
    return code, json.loads(out.getvalue())


# ------------------------------------------------------------- finding 11: alias bombs


@pytest.mark.usefixtures("cli_env")
def test_validate_refuses_a_top_level_alias_bomb_fast_in_constant_memory(
    write_conf: WriteConf,
) -> None:
    write_conf("ok.yml", OK_PIPELINE)
    write_conf("bomb.yml", laughs(7))  # 11 million nodes once expanded
    with Bounded() as bound:
        code, report = validate_json()
    assert code == 1
    assert report["templates_ok"] == 1
    (error,) = report["errors"]
    assert error["error"] == "ConfLimitError"
    assert error["file"].endswith("bomb.yml")
    assert error["template"] == "a5"  # where the file crosses 200,000 nodes
    assert "WORKFLOW_CORE_CONF_MAX_NODES" in error["message"]
    assert len(error["message"]) < 400
    assert bound.seconds < 5
    assert bound.peak_mb < 30


def test_a_bomb_as_a_param_default_is_refused_naming_template_and_key(
    write_conf: WriteConf, settings: Settings
) -> None:
    write_conf("bomb.yml", param_bomb(6))
    with Bounded() as bound:
        loader = Loader.from_settings(settings)
    (error,) = loader.errors
    assert isinstance(error, ConfLimitError)
    assert (error.template, error.key) == ("bomb", "params.x.default")
    assert error.setting == "WORKFLOW_CORE_CONF_MAX_NODES"
    assert error.limit == 200_000
    assert loader.names() == []
    with pytest.raises(ConfigError, match=r"cannot be used: .*200,000 YAML nodes"):
        loader.get("bomb")
    assert bound.seconds < 5
    assert bound.peak_mb < 20


def test_node_budget_counts_merge_keys_and_the_whole_file(
    write_conf: WriteConf, make_settings: Callable[..., Settings]
) -> None:
    merges = "m0: &m0 {type: x, " + ", ".join(f"k{i}: {i}" for i in range(20)) + "}\n"
    merges += "".join(f"m{n}: &m{n} {{<<: [*m{n - 1}, *m{n - 1}]}}\n" for n in range(1, 30))
    write_conf("merge.yml", merges)
    with Bounded() as bound:
        loader = Loader.from_settings(make_settings())
    (error,) = loader.errors
    assert isinstance(error, ConfLimitError)
    assert error.template is not None
    assert error.template.startswith("m")
    assert bound.seconds < 5


def test_a_file_just_under_the_node_budget_loads(
    write_conf: WriteConf, make_settings: Callable[..., Settings]
) -> None:
    write_conf("fine.yml", laughs(2) + OK_PIPELINE)  # 1,233 nodes + a few
    fine = Loader.from_settings(make_settings(WORKFLOW_CORE_CONF_MAX_NODES="1300"))
    assert not [e for e in fine.errors if isinstance(e, ConfLimitError)]
    assert fine.names() == ["ok"]  # a0..a2 are lists, not templates
    loader = Loader.from_settings(make_settings(WORKFLOW_CORE_CONF_MAX_NODES="1000"))
    (error,) = loader.errors
    assert isinstance(error, ConfLimitError)
    assert error.limit == 1000


def test_the_node_budget_covers_every_document_of_a_file(
    write_conf: WriteConf, make_settings: Callable[..., Settings]
) -> None:
    doc = laughs(2)  # 1,237 nodes per document
    conf = make_settings(WORKFLOW_CORE_CONF_MAX_NODES="2000")
    write_conf("one.yml", doc + OK_PIPELINE)
    assert not [e for e in Loader.from_settings(conf).errors if isinstance(e, ConfLimitError)]
    write_conf("one.yml", OK_PIPELINE + "---\n" + doc + "---\n" + doc.replace("a", "b"))
    loader = Loader.from_settings(conf)
    (error,) = [e for e in loader.errors if isinstance(e, ConfLimitError)]
    assert error.template == "b2"
    assert loader.names() == []  # the templates of earlier documents are refused too


def test_a_recursive_alias_is_a_located_error(write_conf: WriteConf, settings: Settings) -> None:
    write_conf("rec.yml", "ok: {type: Pipeline}\nloop: &loop {type: Pipeline, desc: [*loop]}\n")
    loader = Loader.from_settings(settings)
    (error,) = loader.errors
    assert "recursive" in error.message
    assert "line 2" in error.message
    with pytest.raises(ConfigError, match="cannot be used"):
        loader.get("ok")


@pytest.mark.parametrize("parser", ["libyaml", "python"])
def test_nesting_deeper_than_the_limit_is_refused_without_recursion_errors(
    write_conf: WriteConf,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    parser: str,
) -> None:
    from ddeutil.workflow import loader as loader_module

    if parser == "python":
        monkeypatch.setattr(loader_module, "YamlLoader", loader_module._PySafeLoader)
    deep = "deep: {type: Pipeline, desc: " + "[" * 500 + "]" * 500 + "}\n"
    write_conf("deep.yml", OK_PIPELINE.replace("ok:", "before:") + "---\n" + deep)
    write_conf("ok.yml", OK_PIPELINE)
    loader = Loader.from_settings(settings)
    (error,) = loader.errors
    assert isinstance(error, ConfLimitError)
    assert error.setting == "WORKFLOW_CORE_CONF_MAX_DEPTH"
    assert loader.names() == ["ok"]  # `before`, in the refused file, is refused too


def test_aliases_count_toward_the_depth_limit(write_conf: WriteConf, settings: Settings) -> None:
    chain = "".join(f"  - &d{n} [*d{n - 1}]\n" for n in range(1, 80))
    write_conf("deep.yml", "chain:\n  type: Pipeline\n  desc:\n  - &d0 [x]\n" + chain)
    (error,) = Loader.from_settings(settings).errors
    assert isinstance(error, ConfLimitError)
    assert (error.template, error.setting) == ("chain", "WORKFLOW_CORE_CONF_MAX_DEPTH")


def test_a_file_over_the_byte_limit_is_not_parsed(
    write_conf: WriteConf, make_settings: Callable[..., Settings]
) -> None:
    write_conf("big.yml", OK_PIPELINE + "  desc: " + "x" * 5000 + "\n")
    write_conf("small.yml", "small: {type: Pipeline}\n")
    loader = Loader.from_settings(make_settings(WORKFLOW_CORE_CONF_MAX_BYTES="4096"))
    (error,) = loader.errors
    assert isinstance(error, ConfLimitError)
    assert error.setting == "WORKFLOW_CORE_CONF_MAX_BYTES"
    assert error.file is not None
    assert error.file.endswith("big.yml")
    assert loader.names() == ["small"]


@pytest.mark.parametrize(
    ("variable", "raw", "problem"),
    [
        ("WORKFLOW_CORE_CONF_MAX_NODES", "0", "at least 1"),
        ("WORKFLOW_CORE_CONF_MAX_DEPTH", "101", "from 1 to 100"),
        ("WORKFLOW_CORE_MATRIX_MAX_COMBINATIONS", "many", "whole number"),
    ],
)
def test_limit_settings_are_validated(variable: str, raw: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Settings.from_env({variable: raw})


def test_settings_carry_the_limits_to_the_loader(make_settings: Callable[..., Settings]) -> None:
    conf = make_settings(
        WORKFLOW_CORE_CONF_MAX_BYTES="10",
        WORKFLOW_CORE_CONF_MAX_NODES="20",
        WORKFLOW_CORE_CONF_MAX_DEPTH="30",
        WORKFLOW_CORE_MATRIX_MAX_COMBINATIONS="40",
        WORKFLOW_CORE_MATRIX_MAX_INCLUDE="50",
    )
    assert conf.conf_limits == ConfLimits(10, 20, 30, 40, 50)
    loader = Loader.from_settings(conf)
    assert loader.limits == conf.conf_limits
    assert loader.reread().limits == conf.conf_limits


def test_error_messages_and_quoted_values_stay_small() -> None:
    huge: list[Any] = [list(range(1000))] * 1000
    assert len(brief(huge)) < 200
    assert len(brief("x" * 10**6)) < 200
    error = ConfigError("y" * 10**6, key="k" * 10**5)
    assert len(str(error)) < 5000


# --------------------------------------------------------- finding 12: matrix size


def matrix_pipeline(matrix: dict[str, list[Any]], **strategy: Any) -> dict[str, Any]:
    return {
        "type": "Pipeline",
        "jobs": {"a": {"strategy": {"matrix": matrix, **strategy}, "stages": [{"name": "x"}]}},
    }


def write_yaml(write_conf: WriteConf, name: str, data: dict[str, Any]) -> None:
    write_conf(f"{name}.yml", yaml.safe_dump({name: data}, sort_keys=False))


def test_a_matrix_over_the_combination_limit_is_refused_before_it_is_expanded(
    write_conf: WriteConf, settings: Settings
) -> None:
    matrix = {f"k{i}": list(range(10)) for i in range(8)}  # 10**8 combinations
    write_yaml(write_conf, "wide", matrix_pipeline(matrix))
    loader = Loader.from_settings(settings)
    with Bounded() as bound, pytest.raises(ConfLimitError) as caught:
        Pipeline.from_loader("wide", settings=settings, loader=loader)
    assert caught.value.key == "jobs.a.strategy.matrix"
    assert caught.value.setting == "WORKFLOW_CORE_MATRIX_MAX_COMBINATIONS"
    assert caught.value.template == "wide"
    assert bound.seconds < 2
    assert bound.peak_mb < 10


def test_the_combination_limit_is_a_setting_and_counts_include(
    write_conf: WriteConf, make_settings: Callable[..., Settings]
) -> None:
    conf = make_settings(WORKFLOW_CORE_MATRIX_MAX_COMBINATIONS="6")
    write_yaml(write_conf, "six", matrix_pipeline({"a": [1, 2, 3], "b": [1, 2]}))
    write_yaml(
        write_conf, "seven", matrix_pipeline({"a": [1, 2, 3], "b": [1, 2]}, include=[{"a": 9}])
    )
    loader = Loader.from_settings(conf)
    built = Pipeline.from_loader("six", settings=conf, loader=loader)
    assert len(built.jobs["a"].strategy.combinations) == 6
    with pytest.raises(ConfLimitError, match="7 combinations with `include`") as caught:
        Pipeline.from_loader("seven", settings=conf, loader=loader)
    assert caught.value.key == "jobs.a.strategy"


def test_too_many_include_entries_are_refused(write_conf: WriteConf, settings: Settings) -> None:
    include = [{"n": i} for i in range(1025)]
    write_yaml(write_conf, "incl", matrix_pipeline({"n": [0]}, include=include))
    with pytest.raises(ConfLimitError) as caught:
        Pipeline.from_loader("incl", settings=settings)
    assert caught.value.key == "jobs.a.strategy.include"
    assert caught.value.setting == "WORKFLOW_CORE_MATRIX_MAX_INCLUDE"


def test_thirty_thousand_include_entries_take_linear_time() -> None:
    limits = ConfLimits(max_combinations=100_000, max_include=100_000)
    include = [{"n": i % 20_000, "m": "x"} for i in range(30_000)]
    exclude = [{"n": i} for i in range(0, 30_000, 2)]
    started = time.perf_counter()
    strategy = Strategy.model_validate(
        {"matrix": {"n": list(range(30_000))}, "include": include, "exclude": exclude},
        context={"conf_limits": limits},
    )
    assert time.perf_counter() - started < 3  # pairwise scans took 8.6 s
    assert len(strategy.combinations) == 15_000 + 20_000


VALUES = st.sampled_from([0, 1, 1.0, True, False, "1", "a", None, [1], [1.0], {"k": 1}, {"k": [1]}])


def naive_combinations(strategy: Strategy) -> list[dict[str, Any]]:
    """The documented semantics, by pairwise scans (the reference)."""
    found: list[dict[str, Any]] = []
    keys = list(strategy.matrix)
    if keys:
        for values in itertools.product(*(strategy.matrix[k] for k in keys)):
            combination = dict(zip(keys, values, strict=True))
            if not any(
                all(k in combination and combination[k] == v for k, v in entry.items())
                for entry in strategy.exclude
            ):
                found.append(combination)
    for entry in strategy.include:
        if entry not in found:
            found.append(dict(entry))
    return found or [{}]


@hyp_settings(max_examples=150, deadline=None)
@given(
    matrix=st.dictionaries(st.sampled_from("abc"), st.lists(VALUES, min_size=1, max_size=3)),
    include=st.lists(st.dictionaries(st.sampled_from("abd"), VALUES, min_size=1), max_size=4),
    exclude=st.lists(st.dictionaries(st.sampled_from("abd"), VALUES, min_size=1), max_size=4),
)
def test_hashed_include_and_exclude_match_the_pairwise_semantics(
    matrix: dict[str, list[Any]],
    include: list[dict[str, Any]],
    exclude: list[dict[str, Any]],
) -> None:
    strategy = Strategy.model_validate({"matrix": matrix, "include": include, "exclude": exclude})
    assert list(strategy.combinations) == naive_combinations(strategy)


# ------------------------------------- finding 13: any build failure is located, isolated


def test_needs_of_a_list_is_a_located_error(write_conf: WriteConf, settings: Settings) -> None:
    write_conf(
        "p.yml",
        """\
        p:
          type: Pipeline
          jobs:
            a: {stages: [{name: x}]}
            b: {needs: [[a]], stages: [{name: y}]}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        Pipeline.from_loader("p", settings=settings)
    assert (caught.value.template, caught.value.key) == ("p", "jobs.b.needs[0]")


def test_mixed_type_keys_inside_a_matrix_value_build(
    write_conf: WriteConf, settings: Settings
) -> None:
    write_conf(
        "p.yml",
        """\
        p:
          type: Pipeline
          jobs:
            a:
              strategy: {matrix: {x: [{1: a, b: c}, {2: d}]}}
              stages: [{name: "${{ matrix.x }}"}]
        """,
    )
    built = Pipeline.from_loader("p", settings=settings)
    assert len(built.jobs["a"].strategy.combinations) == 2


def test_a_float_param_default_beyond_the_float_range_is_a_located_error(
    write_conf: WriteConf, settings: Settings
) -> None:
    write_conf(
        "p.yml",
        "p:\n  type: Pipeline\n  params:\n    x: {type: float, default: 1%s}\n" % ("0" * 400),
    )
    with pytest.raises(ConfigError, match="within the float range") as caught:
        Pipeline.from_loader("p", settings=settings)
    assert (caught.value.template, caught.value.key) == ("p", "params.x")
    assert len(caught.value.message) < 400


@pytest.fixture
def strategy_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in matrix expansion: a TypeError for matrices that name key ``boom``."""
    real = Strategy._compute

    def buggy(self: Strategy, limits: ConfLimits) -> Any:
        if "boom" in self.matrix:
            raise TypeError("unhashable type: 'list'")
        return real(self, limits)

    monkeypatch.setattr(Strategy, "_compute", buggy)


BUGGY = """\
buggy:
  type: Pipeline
  jobs:
    first:
      stages: [{name: x}]
    second:
      strategy: {matrix: {boom: [1, 2]}}
      stages: [{name: y}]
"""


@pytest.mark.usefixtures("strategy_bug")
def test_an_unexpected_exception_while_building_is_located_at_the_failing_key(
    write_conf: WriteConf, settings: Settings
) -> None:
    write_conf("p.yml", BUGGY)
    with pytest.raises(ConfigError, match=r"cannot be read \(TypeError: ") as caught:
        Pipeline.from_loader("buggy", settings=settings)
    assert (caught.value.template, caught.value.key) == ("buggy", "jobs.second.strategy")


@pytest.mark.usefixtures("strategy_bug", "cli_env")
def test_validate_and_list_report_a_failing_template_and_go_on(write_conf: WriteConf) -> None:
    write_conf("p.yml", BUGGY + OK_PIPELINE)
    code, report = validate_json()
    assert code == 1
    assert report["templates_ok"] == 1
    (error,) = report["errors"]
    assert (error["template"], error["key"]) == ("buggy", "jobs.second.strategy")
    out = io.StringIO()
    assert main(["--log-format", "text", "list", "--json"], out=out) == 0
    rows = {row["name"]: row for row in json.loads(out.getvalue())["templates"]}
    assert rows["ok"]["valid"]
    assert not rows["buggy"]["valid"]


@pytest.mark.usefixtures("strategy_bug")
def test_the_daemon_catalog_skips_a_failing_template_and_keeps_the_others(
    write_conf: WriteConf, settings: Settings
) -> None:
    from ddeutil.workflow.scheduling.catalog import PipelineCatalog

    write_conf("p.yml", BUGGY + OK_PIPELINE)
    catalog = PipelineCatalog(Loader.from_settings(settings), settings)
    assert catalog.reload(force=False)
    assert [e.name for e in catalog] == ["ok"]


def test_any_exception_in_from_template_becomes_a_config_error(
    write_conf: WriteConf, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_conf("p.yml", OK_PIPELINE)
    loader = Loader.from_settings(settings)

    def explode(self: Pipeline, settings: Settings, loader: Loader | None = None) -> None:
        raise MemoryError("no room")

    monkeypatch.setattr(Pipeline, "compile", explode)
    with pytest.raises(ConfigError, match=r"cannot be built \(MemoryError: ") as caught:
        Pipeline.from_template(loader.get("ok"), loader=loader, settings=settings)
    assert caught.value.template == "ok"
    assert isinstance(caught.value.__cause__, MemoryError)


# --------------------------------------------------------------- the loader, fuzzed

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["Pipeline", "on.On", "${{ params.x }}", "01:30", "on", "<<"]),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(0, 3)), inner, max_size=4),
    ),
    max_leaves=25,
)
TEMPLATE_KEYS = st.sampled_from(
    ["desc", "params", "jobs", "on", "stages", "strategy", "matrix", "needs", "default"]
)


@st.composite
def conf_documents(draw: st.DrawFn) -> Any:
    """A conf document: templates of arbitrary values, some fanned out through aliases."""
    templates: dict[str, Any] = {}
    for index in range(draw(st.integers(1, 3))):
        body: Any = draw(st.dictionaries(TEMPLATE_KEYS, NESTED, max_size=4))
        if draw(st.booleans()):
            body["type"] = draw(st.sampled_from(["Pipeline", "On", "pipeline.Pipeline", 5]))
        fan_out = draw(st.integers(0, 12))
        if fan_out and isinstance(body, dict):
            shared: Any = draw(NESTED)
            width = draw(st.integers(2, 12))
            for _ in range(fan_out):  # a shared list repeated: yaml.dump writes aliases
                shared = [shared] * width
            body[draw(TEMPLATE_KEYS)] = shared
        templates[f"t{index}"] = body if draw(st.integers(0, 9)) else draw(NESTED)
    return templates


@hyp_settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(document=conf_documents())
def test_any_nested_yaml_loads_or_fails_typed_within_time_and_memory(document: Any) -> None:
    text = yaml.dump(document, Dumper=yaml.SafeDumper, sort_keys=False)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "conf").mkdir()
        (root / "conf" / "fuzz.yml").write_text(text, encoding="utf-8")
        conf = Settings.from_env({"WORKFLOW_ROOT_PATH": str(root), "WORKFLOW_CORE_TIMEZONE": "UTC"})
        with Bounded() as bound:
            loader = Loader.from_settings(conf)
            built = build_all(loader, conf)
        for error in [*loader.errors, *(b.error for b in built if b.error is not None)]:
            assert isinstance(error, ConfigError)
            assert len(error.message) <= 2100
            assert "unexpected" not in error.message
    assert bound.seconds < 10
    assert bound.peak_mb < 64
