"""Registry: template types, hooks (``uses``) and custom filters."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ddeutil.workflow import registry
from ddeutil.workflow.errors import ConfigError
from ddeutil.workflow.registry import (
    Hook,
    HookRegistry,
    custom_filter,
    kind_of_class,
    load_filters,
    parse_uses,
    resolve_kind,
    resolve_type,
    tag,
)
from ddeutil.workflow.settings import Settings

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def fixtures_pkg(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Make ``tests/fixtures_pkg`` importable for the test."""
    monkeypatch.syspath_prepend(str(TESTS))
    return importlib.import_module("fixtures_pkg")


# ------------------------------------------------------------------------- types


@pytest.mark.parametrize(
    "spelling",
    ["fixtures_pkg.pipeline.Pipeline", "pipeline.Pipeline", "Pipeline", " pipeline.Pipeline "],
)
def test_resolve_type_accepts_every_spelling_of_pipeline(spelling: str) -> None:
    from fixtures_pkg.pipeline import Pipeline

    assert resolve_type(spelling, ["fixtures_pkg"]) is Pipeline


@pytest.mark.parametrize("spelling", ["on.On", "On", "fixtures_pkg.on.On"])
def test_resolve_type_accepts_every_spelling_of_on(spelling: str) -> None:
    """``On`` is not exported by the package: the lower-cased module fallback finds it."""
    from fixtures_pkg.on import On

    assert resolve_type(spelling, ("fixtures_pkg",)) is On


def test_resolve_type_tries_prefixes_in_order() -> None:
    from fixtures_pkg.extra.on import On as ExtraOn
    from fixtures_pkg.on import On

    assert resolve_type("on.On", ("fixtures_pkg.extra", "fixtures_pkg")) is ExtraOn
    assert resolve_type("on.On", ("fixtures_pkg", "fixtures_pkg.extra")) is On


def test_resolve_type_skips_prefixes_without_the_module() -> None:
    from fixtures_pkg.things import Thing

    assert resolve_type("things.Thing", ("no_such_prefix_pkg", "fixtures_pkg")) is Thing


def test_unknown_type_names_the_type_the_candidates_and_the_prefixes() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_type("pipeline.Pipline", ("fixtures_pkg", "other_prefix"))
    message = str(info.value)
    assert "'pipeline.Pipline' resolves to nothing" in message
    assert "fixtures_pkg.pipeline.Pipline" in message
    assert "other_prefix.pipeline.Pipline" in message
    assert "registry prefixes: fixtures_pkg, other_prefix" in message
    assert info.value.key == "type"


def test_unknown_bare_type_lists_the_package_and_module_fallbacks() -> None:
    with pytest.raises(ConfigError, match=r"fixtures_pkg\.Nope, fixtures_pkg\.nope\.Nope"):
        resolve_type("Nope", ("fixtures_pkg",))


@pytest.mark.parametrize("bad", ["", "pipeline Pipeline", "1pipeline.Pipeline", "a..b", "a/b"])
def test_malformed_type_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="`type` must be a class name"):
        resolve_type(bad, ("fixtures_pkg",))


def test_type_naming_something_that_is_not_a_class_says_so() -> None:
    with pytest.raises(ConfigError, match=r"fixtures_pkg\.on\.NOT_A_CLASS is a int, not a class"):
        resolve_type("on.NOT_A_CLASS", ("fixtures_pkg",))


def test_type_in_a_module_that_fails_to_import_reports_the_import_error() -> None:
    with pytest.raises(ConfigError, match="failed to import: RuntimeError: boom") as info:
        resolve_type("brokentype.Thing", ("fixtures_pkg",))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_type_in_a_module_with_a_missing_dependency_is_not_reported_as_unknown() -> None:
    with pytest.raises(ConfigError, match=r"exists but failed to import.*missing_dependency"):
        resolve_type("broken_hooks.Thing", ("fixtures_pkg",))


def test_resolve_type_resolves_real_package_classes() -> None:
    from ddeutil.workflow.settings import Settings as Real

    assert resolve_type("settings.Settings", ("ddeutil.workflow",)) is Real
    assert resolve_type("Settings", ("ddeutil.workflow",)) is Real


# ------------------------------------------------------------------------- hooks


def test_tag_only_marks_the_function_and_returns_it() -> None:
    def fn() -> None:
        return None

    marked = tag("polars", alias="postgres-to-delta")(fn)
    assert marked is fn
    assert fn.__workflow_tags__ == (("polars", "postgres-to-delta"),)  # type: ignore[attr-defined]


def test_tag_can_be_stacked() -> None:
    from fixtures_pkg.tasks import multi

    tags = multi.__workflow_tags__  # type: ignore[attr-defined]
    assert set(tags) == {("v1", "multi"), ("v2", "multi-tagged")}


@pytest.mark.parametrize(("name", "alias"), [("", None), ("a b", None), ("ok", "bad name")])
def test_tag_rejects_unusable_names(name: str, alias: str | None) -> None:
    with pytest.raises(ValueError, match="hook"):
        tag(name, alias=alias)


def test_find_by_alias_and_tag() -> None:
    reg = HookRegistry(["fixtures_pkg"])
    hook = reg.find("tasks/get-api@requests")
    assert isinstance(hook, Hook)
    assert hook.func("u") == {"lib": "requests", "url": "u"}
    assert (hook.group, hook.name, hook.tag, hook.module) == (
        "tasks",
        "get-api",
        "requests",
        "fixtures_pkg.tasks",
    )
    assert hook.uses == "tasks/get-api@requests"
    assert reg.find("tasks/get-api@httpx").func("u")["lib"] == "httpx"


def test_find_by_function_name_with_dashes_or_underscores() -> None:
    reg = HookRegistry(["fixtures_pkg"])
    assert reg.find("tasks/load_parquet@polars").name == "load_parquet"
    assert reg.find("tasks/load-parquet@polars") is reg.find("tasks/load_parquet@polars")


def test_find_hooks_reexported_from_another_module() -> None:
    hook = HookRegistry(["fixtures_pkg"]).find("tasks/shared_hook@local")
    assert hook.func() == {"shared": True}
    assert hook.module == "fixtures_pkg.tasks"


def test_find_a_function_under_each_of_its_tags() -> None:
    reg = HookRegistry(["fixtures_pkg"])
    assert reg.find("tasks/multi@v1").func is reg.find("tasks/multi-tagged@v2").func


def test_unknown_group_names_the_group_and_the_modules_tried() -> None:
    reg = HookRegistry(["fixtures_pkg", "other_prefix"])
    with pytest.raises(ConfigError) as info:
        reg.find("nogroup/x@y")
    message = str(info.value)
    assert "unknown hook group 'nogroup'" in message
    assert "cannot import fixtures_pkg.nogroup: ModuleNotFoundError: No module named " in message
    assert "cannot import other_prefix.nogroup: ModuleNotFoundError: No module named " in message
    assert "'other_prefix'" in message
    assert "define no" not in message
    assert info.value.key == "uses"


def test_group_that_cannot_be_imported_names_the_import_error_and_the_folders(
    tmp_path: Path,
) -> None:
    absent = tmp_path / "absent"
    reg = HookRegistry(["my_hooks_p16"], [tmp_path, absent])
    with pytest.raises(ConfigError) as info:
        reg.find("tasks/say@v1")
    message = str(info.value)
    assert (
        "cannot import my_hooks_p16.tasks: ModuleNotFoundError: No module named 'my_hooks_p16'"
    ) in message
    assert f"searched: {tmp_path}, {absent} (absent), sys.path" in message


def test_hook_folder_is_put_on_the_import_path_before_the_lookup(tmp_path: Path) -> None:
    package = tmp_path / "hooks" / "my_hooks_p16b"
    package.mkdir(parents=True)
    (package / "tasks.py").write_text(
        "from ddeutil.workflow import tag\n\n"
        "@tag('v1')\ndef say(text: str) -> dict:\n    return {'said': text}\n",
        encoding="utf-8",
    )
    folder = str(tmp_path / "hooks")
    try:
        hook = HookRegistry(["my_hooks_p16b"], [tmp_path / "hooks"]).find("tasks/say@v1")
        assert hook.func(text="hi") == {"said": "hi"}
        assert sys.path[0] == folder
        registry.add_import_paths([tmp_path / "hooks"])  # already there: not added twice
        assert sys.path.count(folder) == 1
    finally:
        sys.path.remove(folder)
        for name in [m for m in sys.modules if m.startswith("my_hooks_p16b")]:
            del sys.modules[name]


def test_group_module_that_defines_no_tags_says_so() -> None:
    with pytest.raises(ConfigError, match=r"fixtures_pkg\.empty_group define no @tag functions"):
        HookRegistry(["fixtures_pkg"]).find("empty_group/helper@v1")


def test_group_module_without_hooks_is_an_unknown_group() -> None:
    with pytest.raises(ConfigError, match="unknown hook group 'empty_group'"):
        HookRegistry(["fixtures_pkg"]).find("empty_group/helper@v1")


def test_unknown_name_lists_the_available_hooks() -> None:
    with pytest.raises(ConfigError) as info:
        HookRegistry(["fixtures_pkg"]).find("tasks/get-apy@requests")
    message = str(info.value)
    assert "unknown hook name 'get-apy' in group 'tasks'" in message
    assert "available: get-api, load_parquet, multi, multi-tagged, shared_hook" in message
    assert "untagged" not in message


def test_unknown_tag_lists_the_tags_of_that_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown tag 'pandas'.*available tags: httpx, requests"):
        HookRegistry(["fixtures_pkg"]).find("tasks/get-api@pandas")


@pytest.mark.parametrize(
    "uses",
    ["tasks/get-api", "get-api@requests", "tasks/get-api@", "/x@y", "ta-sks/x@y", "a/b@c@d", ""],
)
def test_malformed_uses_is_a_config_error(uses: str) -> None:
    with pytest.raises(ConfigError, match="uses must look like '<group>/<name>@<tag>'"):
        HookRegistry(["fixtures_pkg"]).find(uses)


def test_templated_uses_must_be_rendered_first() -> None:
    with pytest.raises(ConfigError, match="still contains a template expression"):
        parse_uses("tasks/el-${{ matrix.system }}-to-parquet@polars")


def test_parse_uses_splits_the_three_parts_and_strips_blanks() -> None:
    assert parse_uses(" tasks/get-api@requests ") == ("tasks", "get-api", "requests")
    assert parse_uses("sub.tasks/a.b@v1.2") == ("sub.tasks", "a.b", "v1.2")


def test_earlier_prefix_wins_and_later_prefixes_add_hooks() -> None:
    reg = HookRegistry(["fixtures_pkg.extra", "fixtures_pkg"])
    assert reg.find("tasks/get-api@requests").func("u")["lib"] == "extra"
    assert reg.find("tasks/get-api@httpx").module == "fixtures_pkg.tasks"
    assert reg.find("tasks/only_here@extra").module == "fixtures_pkg.extra.tasks"
    reverse = HookRegistry(["fixtures_pkg", "fixtures_pkg.extra"])
    assert reverse.find("tasks/get-api@requests").func("u")["lib"] == "requests"


def test_two_functions_with_one_name_and_tag_in_a_module_are_an_error() -> None:
    with pytest.raises(ConfigError, match=r"dup_hooks/same@v1 is defined twice.*first.*second"):
        HookRegistry(["fixtures_pkg"]).find("dup_hooks/same@v1")


def test_group_module_that_fails_to_import_is_reported_not_unknown() -> None:
    with pytest.raises(ConfigError, match=r"'fixtures_pkg\.broken_hooks' exists but failed"):
        HookRegistry(["fixtures_pkg"]).find("broken_hooks/x@y")


def test_group_modules_are_imported_lazily_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "fixtures_pkg.lazy_hooks", raising=False)
    calls: list[str] = []
    real = importlib.import_module

    def counting(name: str, package: str | None = None) -> ModuleType:
        calls.append(name)
        return real(name, package)

    monkeypatch.setattr(registry.importlib, "import_module", counting)  # type: ignore[attr-defined]
    reg = HookRegistry(["fixtures_pkg"])
    assert "fixtures_pkg.lazy_hooks" not in sys.modules
    assert reg.find("lazy_hooks/ping@v1").func() == {"pong": "yes"}
    assert "fixtures_pkg.lazy_hooks" in sys.modules
    reg.find("lazy_hooks/ping@v1")
    with pytest.raises(ConfigError):
        reg.find("lazy_hooks/pong@v1")
    assert calls == ["fixtures_pkg.lazy_hooks"]


def test_hooks_lists_a_group_sorted() -> None:
    hooks = HookRegistry(["fixtures_pkg"]).hooks("tasks")
    assert [h.uses for h in hooks] == [
        "tasks/get-api@httpx",
        "tasks/get-api@requests",
        "tasks/load_parquet@polars",
        "tasks/multi@v1",
        "tasks/multi-tagged@v2",
        "tasks/shared_hook@local",
    ]


def test_hook_registry_from_settings_uses_the_registry_prefixes(
    make_settings: Callable[..., Settings],
) -> None:
    reg = HookRegistry.from_settings(make_settings(WORKFLOW_CORE_REGISTRY="a.b, fixtures_pkg"))
    assert reg.prefixes == ("a.b", "fixtures_pkg")
    assert reg.find("tasks/get-api@requests").module == "fixtures_pkg.tasks"
    assert "fixtures_pkg" in repr(reg)


# ----------------------------------------------------------------------- filters


def test_custom_filter_only_marks_the_function() -> None:
    def fn(value: Any) -> Any:
        return value

    assert custom_filter("ident")(fn) is fn
    assert fn.__workflow_filter__ == "ident"  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["", "with-dash", "1st", "a b"])
def test_custom_filter_rejects_names_unusable_in_expressions(bad: str) -> None:
    with pytest.raises(ValueError, match="filter name"):
        custom_filter(bad)


def test_load_filters_collects_marked_functions_only() -> None:
    filters = load_filters(["fixtures_pkg.filters"])
    assert set(filters) == {"shout", "twice"}
    assert filters["shout"]("hi") == "HI!"
    with pytest.raises(TypeError):
        filters["x"] = len  # type: ignore[index]


def test_load_filters_is_cached_per_module_tuple() -> None:
    assert load_filters(["fixtures_pkg.filters"]) is load_filters(("fixtures_pkg.filters",))


def test_later_filter_module_overrides_an_earlier_one() -> None:
    filters = load_filters(["fixtures_pkg.filters", "fixtures_pkg.filters_override"])
    assert filters["shout"]("HI") == "hi"
    assert filters["twice"](2) == 4


def test_missing_filter_module_is_named() -> None:
    with pytest.raises(ConfigError, match=r"filter module 'fixtures_pkg\.nope' does not exist"):
        load_filters(["fixtures_pkg.filters", "fixtures_pkg.nope"])


def test_one_filter_name_twice_in_a_module_is_an_error() -> None:
    with pytest.raises(ConfigError, match="filter 'same' is defined twice"):
        load_filters(["fixtures_pkg.filters_dup"])


# ------------------------------------------------------------------------- kinds

BUILTIN_SPELLINGS = [
    ("Pipeline", "pipeline"),
    ("pipeline.Pipeline", "pipeline"),
    ("ddeutil.workflow.pipeline.Pipeline", "pipeline"),
    ("engine.pipeline.Pipeline", "pipeline"),
    ("On", "on"),
    ("on.On", "on"),
    ("ddeutil.workflow.on.On", "on"),
    ("schedules.on.On", "on"),
]


def test_resolve_kind_knows_the_builtin_types_without_importing_them() -> None:
    """Listing a conf folder's pipelines does not load the engine (nor pydantic's On)."""
    probe = f"""
import sys
from ddeutil.workflow.registry import resolve_kind
for spelling, kind in {BUILTIN_SPELLINGS!r}:
    assert resolve_kind(spelling, ("ddeutil.workflow",)) == kind, spelling
    assert resolve_kind(spelling, ["no_such_prefix_pkg", "ddeutil.workflow"]) == kind
heavy = [m for m in sys.modules if m.startswith(("ddeutil.workflow.engine", "pydantic"))]
heavy += [m for m in ("ddeutil.workflow.pipeline", "ddeutil.workflow.schedules.on") if m in sys.modules]
print(sorted(heavy))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("spelling", "kind"), BUILTIN_SPELLINGS)
def test_resolve_kind_agrees_with_resolve_type_for_the_builtins(spelling: str, kind: str) -> None:
    assert resolve_kind(spelling, ("ddeutil.workflow",)) == kind
    assert kind_of_class(resolve_type(spelling, ("ddeutil.workflow",))) == kind


def test_resolve_kind_follows_the_prefix_order_like_resolve_type() -> None:
    """A user prefix listed first wins: its class is found (and is neither kind here)."""
    assert resolve_type("pipeline.Pipeline", ("fixtures_pkg", "ddeutil.workflow")).__module__ == (
        "fixtures_pkg.pipeline"
    )
    assert resolve_kind("pipeline.Pipeline", ("fixtures_pkg", "ddeutil.workflow")) is None
    assert resolve_kind("on.On", ("fixtures_pkg",)) is None
    assert resolve_kind("things.Thing", ("fixtures_pkg",)) is None
    assert resolve_kind("pipeline.Pipeline", ("ddeutil.workflow", "fixtures_pkg")) == "pipeline"


def test_resolve_kind_classifies_a_user_subclass_by_its_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "kind_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "custom.py").write_text(
        "from ddeutil.workflow.pipeline import Pipeline\n"
        "from ddeutil.workflow.on import On\n\n\n"
        "class MyPipeline(Pipeline):\n    pass\n\n\n"
        "class MyOn(On):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_kind("kind_pkg.custom.MyPipeline", ()) == "pipeline"
    assert resolve_kind("custom.MyOn", ("kind_pkg",)) == "on"
    assert kind_of_class(int) is None


@pytest.mark.parametrize("bad", ["Nope", "on.NOT_A_CLASS", "brokentype.Thing", "1abc", ""])
def test_resolve_kind_raises_what_resolve_type_raises(bad: str) -> None:
    with pytest.raises(ConfigError) as expected:
        resolve_type(bad, ("fixtures_pkg",))
    with pytest.raises(ConfigError) as got:
        resolve_kind(bad, ("fixtures_pkg",))
    assert (got.value.message, got.value.key) == (expected.value.message, expected.value.key)
