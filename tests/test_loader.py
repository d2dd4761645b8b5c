"""Loader: discovery, the YAML dialect, broken input, lookups and hot reload."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ddeutil.workflow import loader as loader_module
from ddeutil.workflow.errors import ConfigError, ConfLimitError, TemplateNotFound
from ddeutil.workflow.limits import ConfLimits
from ddeutil.workflow.loader import Loader, RawTemplate, load_yaml
from ddeutil.workflow.settings import Settings

TESTS = Path(__file__).parent
WriteConf = Callable[[str, str], Path]

YAML_LOADERS = [
    pytest.param(loader_module._PySafeLoader, id="python"),
    pytest.param(
        loader_module._CSafeLoader,
        id="libyaml",
        marks=pytest.mark.skipif(loader_module._CSafeLoader is None, reason="no LibYAML"),
    ),
]


@pytest.fixture
def conf(root: Path) -> Path:
    return root / "conf"


def load(conf: Path, **kwargs: Any) -> Loader:
    return Loader(conf, **kwargs)


def messages(loader: Loader) -> list[str]:
    return [str(e) for e in loader.errors]


# --------------------------------------------------------------------- discovery


def test_every_yaml_file_below_the_conf_folder_is_indexed(
    write_conf: WriteConf, conf: Path
) -> None:
    write_conf("a.yml", "one:\n  type: on.On\n")
    write_conf("deep/er/b.yaml", "two:\n  type: on.On\nthree:\n  type: Pipeline\n")
    write_conf("UPPER.YML", "four:\n  type: on.On\n")
    loader = load(conf)
    assert loader.names() == ["four", "one", "three", "two"]
    assert loader.errors == ()
    assert loader.get("two").file == conf / "deep" / "er" / "b.yaml"
    assert loader.get("three").type == "Pipeline"
    assert len(loader) == 4
    assert "one" in loader
    assert "five" not in loader


def test_other_files_and_hidden_paths_are_ignored(write_conf: WriteConf, conf: Path) -> None:
    write_conf("ok.yml", "ok:\n  type: on.On\n")
    write_conf("notes.txt", "txt:\n  type: on.On\n")
    write_conf("data.json", "{}")
    write_conf("backup.yml.bak", "bak:\n  type: on.On\n")
    write_conf(".hidden.yml", "hidden: [broken\n")
    write_conf(".git/config.yml", "git:\n  type: on.On\n")
    write_conf("..data/x.yml", "k8s:\n  type: on.On\n")
    loader = load(conf)
    assert loader.names() == ["ok"]
    assert loader.errors == ()


def test_discovery_order_is_sorted_and_deterministic(write_conf: WriteConf, conf: Path) -> None:
    for name in ["b.yml", "a/z.yml", "a.yml", "c/a.yaml"]:
        write_conf(name, f"t-{name.replace('/', '-')}:\n  type: x\n")
    paths = [p for p, _, _ in load(conf).fingerprint()]
    rel = [Path(p).relative_to(conf).as_posix() for p in paths]
    assert rel == ["a.yml", "a/z.yml", "b.yml", "c/a.yaml"]


def test_symlinked_folders_are_followed_once(write_conf: WriteConf, conf: Path, root: Path) -> None:
    outside = root / "shared"
    outside.mkdir()
    (outside / "s.yml").write_text("shared:\n  type: on.On\n", encoding="utf-8")
    (conf / "link").symlink_to(outside, target_is_directory=True)
    (conf / "loop").symlink_to(conf, target_is_directory=True)
    write_conf("a.yml", "a:\n  type: on.On\n")
    loader = load(conf)
    assert loader.names() == ["a", "shared"]
    assert loader.errors == ()


def test_every_file_is_read_once_however_many_lookups(
    write_conf: WriteConf, conf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        body = "".join(f"t{i}-{j}:\n  type: on.On\n  n: {j}\n" for j in range(20))
        write_conf(f"f{i}.yml", body)
    reads: list[Path] = []
    real = loader_module._read_bounded

    def counting(path: Path, limit: int) -> bytes:
        reads.append(path)
        return real(path, limit)

    monkeypatch.setattr(loader_module, "_read_bounded", counting)
    loader = load(conf)
    for _ in range(3):
        for name in loader.names():
            assert loader.get(name).data["type"] == "on.On"
    assert len(loader.names()) == 100
    assert sorted(p.name for p in reads) == [f"f{i}.yml" for i in range(5)]


def test_missing_conf_folder_is_an_error_not_a_crash(root: Path) -> None:
    loader = load(root / "nope")
    assert loader.names() == []
    assert len(loader.errors) == 1
    assert "does not exist" in str(loader.errors[0])
    assert loader.fingerprint() == ()


def test_from_settings_uses_conf_path_and_registry(
    make_settings: Callable[..., Settings], write_conf: WriteConf, root: Path
) -> None:
    write_conf("a.yml", "a:\n  type: on.On\n")
    loader = Loader.from_settings(make_settings(WORKFLOW_CORE_REGISTRY="x.y,z"))
    assert loader.conf_path == root / "conf"
    assert loader.prefixes == ("x.y", "z")
    assert loader.names() == ["a"]
    assert "templates=1" in repr(loader)


# ------------------------------------------------------------------ YAML dialect


@pytest.mark.parametrize("yaml_loader", YAML_LOADERS)
@pytest.mark.parametrize("word", ["on", "On", "ON", "off", "yes", "Yes", "no", "NO", "y", "n"])
def test_yaml_1_1_booleans_stay_strings(yaml_loader: Any, word: str) -> None:
    data = yaml.load(f"{word}: {word}\nlist: [{word}]\n", Loader=yaml_loader)
    assert data == {word: word, "list": [word]}


@pytest.mark.parametrize("yaml_loader", YAML_LOADERS)
@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("True", True), ("TRUE", True), ("tRuE", True), ("false", False)],
)
def test_true_and_false_are_booleans_in_any_case(yaml_loader: Any, text: str, value: bool) -> None:
    assert yaml.load(f"v: {text}", Loader=yaml_loader) == {"v": value}


@pytest.mark.parametrize("yaml_loader", YAML_LOADERS)
def test_other_scalars_keep_their_usual_types(yaml_loader: Any) -> None:
    text = (
        "time: 01:30\nneg: -1:30\nint: 12\nhex: 0x1F\nfloat: 1.5\nexp: 1.0e+3\n"
        "nul: ~\nempty:\ndate: 2024-01-02\ninf: .inf\nstr: '5'\n"
    )
    data = yaml.load(text, Loader=yaml_loader)
    assert data["time"] == "01:30"
    assert data["neg"] == "-1:30"
    assert data["int"] == 12
    assert data["hex"] == 31
    assert data["float"] == 1.5
    assert data["exp"] == 1000.0
    assert data["nul"] is None
    assert data["empty"] is None
    assert str(data["date"]) == "2024-01-02"
    assert data["inf"] == float("inf")
    assert data["str"] == "5"


def test_both_parsers_build_the_same_data() -> None:
    sample = (
        "pipe:\n  type: pipeline.Pipeline\n  on: [a, b]\n  params:\n    x: {type: int, default: 1}\n"
        "  jobs:\n    j:\n      if: yes\n      stages:\n        - {name: s, echo: 'on'}\n"
    )
    py = yaml.load(sample, Loader=loader_module._PySafeLoader)
    if loader_module._CSafeLoader is not None:
        assert yaml.load(sample, Loader=loader_module._CSafeLoader) == py
    assert load_yaml(sample) == py
    assert py["pipe"]["on"] == ["a", "b"]
    assert py["pipe"]["jobs"]["j"]["if"] == "yes"


def test_the_standard_safe_loader_is_not_changed() -> None:
    assert yaml.safe_load("on: yes") == {True: True}


def test_on_key_of_a_template_stays_a_string(write_conf: WriteConf, conf: Path) -> None:
    write_conf("p.yml", "pipe:\n  type: Pipeline\n  on: on_every_5_min\n")
    assert load(conf).get("pipe").data == {"type": "Pipeline", "on": "on_every_5_min"}


def test_anchors_and_merge_keys_work_across_templates_of_a_file(
    write_conf: WriteConf, conf: Path
) -> None:
    write_conf(
        "a.yml",
        """\
        base: &base
          type: on.On
          timezone: UTC
        child:
          <<: *base
          cron: "*/5 * * * *"
          timezone: Asia/Bangkok
        """,
    )
    child = load(conf).get("child")
    assert child.data == {"type": "on.On", "timezone": "Asia/Bangkok", "cron": "*/5 * * * *"}


def test_several_documents_in_one_file_are_all_indexed(write_conf: WriteConf, conf: Path) -> None:
    write_conf("multi.yml", "---\na:\n  type: x\n---\nb:\n  type: y\n---\n")
    loader = load(conf)
    assert loader.names() == ["a", "b"]
    assert loader.errors == ()


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "\ufeff"])
def test_empty_files_hold_no_templates_and_no_errors(
    write_conf: WriteConf, conf: Path, text: str
) -> None:
    write_conf("empty.yml", text)
    loader = load(conf)
    assert loader.names() == []
    assert loader.errors == ()


def test_a_byte_order_mark_is_accepted(conf: Path) -> None:
    (conf / "bom.yml").write_bytes(b"\xef\xbb\xbfa:\n  type: x\n")
    assert load(conf).names() == ["a"]


# ------------------------------------------------------------------- bad input


def test_yaml_syntax_error_names_file_and_line_and_others_still_load(
    write_conf: WriteConf, conf: Path
) -> None:
    bad = write_conf("bad.yml", "ok-looking:\n  type: x\n  list: [1, 2\n  next: 3\n")
    write_conf("good.yml", "good:\n  type: x\n")
    loader = load(conf)
    assert loader.names() == ["good"]
    (error,) = loader.errors
    assert error.file == str(bad)
    assert "YAML syntax error: line 4, column" in error.message
    with pytest.raises(TemplateNotFound, match="ok-looking"):
        loader.get("ok-looking")


def test_tab_indentation_is_a_syntax_error_with_line(write_conf: WriteConf, conf: Path) -> None:
    write_conf("tabs.yml", "a:\n\ttype: x\n")
    (error,) = load(conf).errors
    assert "line 2" in error.message


def test_top_level_list_is_a_file_error(write_conf: WriteConf, conf: Path) -> None:
    path = write_conf("list.yml", "- a\n- b\n")
    (error,) = load(conf).errors
    assert error.file == str(path)
    assert error.template is None
    assert "top level of a template file must be a mapping of template names, got a list" in str(
        error
    )


def test_top_level_scalar_is_a_file_error(write_conf: WriteConf, conf: Path) -> None:
    write_conf("scalar.yml", "just text\n")
    (error,) = load(conf).errors
    assert "got a scalar ('just text')" in error.message


@pytest.mark.parametrize(
    ("value", "got"),
    [("[1, 2]", "got a list ([1, 2])"), ("hello", "got a str ('hello')"), ("", "got nothing")],
)
def test_template_value_that_is_not_a_mapping_names_file_and_template(
    write_conf: WriteConf, conf: Path, value: str, got: str
) -> None:
    path = write_conf("t.yml", f"fine:\n  type: x\nbad: {value}\n")
    loader = load(conf)
    assert loader.names() == ["fine"]
    (error,) = loader.errors
    assert (error.file, error.template) == (str(path), "bad")
    assert "line 3: a template must be a mapping with a `type` key" in error.message
    assert got in error.message


def test_missing_type_is_an_error_at_key_type(write_conf: WriteConf, conf: Path) -> None:
    write_conf("t.yml", "notype:\n  cron: '* * * * *'\n")
    loader = load(conf)
    (error,) = loader.errors
    assert (error.template, error.key) == ("notype", "type")
    assert "missing `type`" in error.message
    with pytest.raises(TemplateNotFound) as info:
        loader.get("notype")
    assert "cannot be used" in str(info.value)
    assert "missing `type`" in str(info.value)
    assert info.value.__cause__ is error
    assert info.value.name == "notype"


@pytest.mark.parametrize("value", ["123", "''", "[a]", "{a: 1}"])
def test_type_that_is_not_a_name_string_is_an_error(
    write_conf: WriteConf, conf: Path, value: str
) -> None:
    write_conf("t.yml", f"t:\n  type: {value}\n")
    (error,) = load(conf).errors
    assert error.key == "type"
    assert "`type` must be a class name string" in error.message


def test_template_name_must_be_a_string(write_conf: WriteConf, conf: Path) -> None:
    write_conf("t.yml", "123:\n  type: x\nok:\n  type: x\n")
    loader = load(conf)
    assert loader.names() == ["ok"]
    assert "line 1: a template name must be a non-empty string, got 123" in messages(loader)[0]


def test_duplicate_key_inside_a_template_breaks_only_that_template(
    write_conf: WriteConf, conf: Path
) -> None:
    write_conf(
        "t.yml",
        "ok:\n  type: x\ndup:\n  type: x\n  params:\n    a: 1\n    a: 2\n",
    )
    loader = load(conf)
    assert loader.names() == ["ok"]
    (error,) = loader.errors
    assert error.template == "dup"
    assert "duplicate key 'a' (first at line 6)" in error.message
    assert "line 7" in error.message


def test_impossible_date_breaks_only_that_template(write_conf: WriteConf, conf: Path) -> None:
    write_conf("t.yml", "ok:\n  type: x\nbad:\n  type: x\n  day: 2024-13-45\n")
    loader = load(conf)
    assert loader.names() == ["ok"]
    assert "template 'bad'" in messages(loader)[0]
    assert "cannot read a value" in messages(loader)[0]


def test_name_defined_in_two_files_is_unusable_and_names_both_files(
    write_conf: WriteConf, conf: Path
) -> None:
    first = write_conf("a.yml", "shared:\n  type: on.On\nonly-a:\n  type: x\n")
    second = write_conf("sub/b.yml", "x: &x {type: y}\nshared:\n  type: Pipeline\n")
    loader = load(conf)
    assert loader.names() == ["only-a", "x"]
    (error,) = loader.errors
    assert error.template == "shared"
    assert f"in {first} (line 1) and {second} (line 2)" in error.message
    with pytest.raises(TemplateNotFound) as info:
        loader.get("shared")
    assert str(first) in str(info.value)
    assert str(second) in str(info.value)


def test_name_defined_twice_in_one_file_is_unusable(write_conf: WriteConf, conf: Path) -> None:
    path = write_conf("a.yml", "t:\n  type: x\nu:\n  type: x\nt:\n  type: y\n")
    loader = load(conf)
    assert loader.names() == ["u"]
    assert f"in {path} (line 1) and {path} (line 5)" in messages(loader)[0]


def test_name_defined_three_times_lists_every_place(write_conf: WriteConf, conf: Path) -> None:
    for name in ("a.yml", "b.yml", "c.yml"):
        write_conf(name, "t:\n  type: x\n")
    (error,) = load(conf).errors
    assert error.message.count(" (line 1)") == 3


def test_a_broken_definition_still_conflicts_with_a_good_one(
    write_conf: WriteConf, conf: Path
) -> None:
    write_conf("a.yml", "t: [not, a, mapping]\n")
    write_conf("b.yml", "t:\n  type: x\n")
    loader = load(conf)
    assert loader.names() == []
    assert len(loader.errors) == 2
    assert "defined more than once" in messages(loader)[1]
    with pytest.raises(TemplateNotFound, match="defined more than once"):
        loader.get("t")


def test_unreadable_encoding_is_a_file_error(write_conf: WriteConf, conf: Path) -> None:
    path = conf / "latin1.yml"
    path.write_bytes("t:\n  type: caf\xe9\n".encode("latin-1"))
    write_conf("ok.yml", "ok:\n  type: x\n")
    loader = load(conf)
    assert loader.names() == ["ok"]
    (error,) = loader.errors
    assert error.file == str(path)
    assert "cannot read file" in error.message


def test_control_characters_are_a_file_error(write_conf: WriteConf, conf: Path) -> None:
    path = write_conf("ctrl.yml", "a:\n  type: x\x07\n")
    (error,) = load(conf).errors
    assert error.file == str(path)
    assert "invalid YAML: unacceptable character #x0007" in error.message


def test_a_file_vanishing_during_the_walk_changes_the_fingerprint(
    write_conf: WriteConf, conf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_conf("a.yml", "a:\n  type: x\n")
    loader = load(conf)
    monkeypatch.setattr(loader_module, "_discover", lambda _conf: [path, conf / "gone.yml"])
    assert loader.fingerprint()[1] == (str(conf / "gone.yml"), -1, -1)
    assert loader.refreshed() is not loader


def test_unknown_name_raises_template_not_found_naming_it(
    write_conf: WriteConf, conf: Path
) -> None:
    write_conf("a.yml", "a:\n  type: x\n")
    with pytest.raises(TemplateNotFound, match="no template named 'missing'") as info:
        load(conf).get("missing")
    assert info.value.name == "missing"
    assert isinstance(info.value, ConfigError)


def test_errors_come_in_file_order_with_duplicates_last(write_conf: WriteConf, conf: Path) -> None:
    write_conf("a.yml", "d:\n  type: x\n")
    write_conf("b.yml", "[broken\n")
    write_conf("c.yml", "d:\n  type: x\nn: 1\n")
    errors = load(conf).errors
    assert [(Path(e.file or "").name, e.template) for e in errors] == [
        ("b.yml", None),
        ("c.yml", "n"),
        ("c.yml", "d"),
    ]


# ------------------------------------------------------------ types and classes


@pytest.fixture
def fixtures_pkg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS))


@pytest.mark.usefixtures("fixtures_pkg")
@pytest.mark.parametrize(
    "spelling", ["fixtures_pkg.pipeline.Pipeline", "pipeline.Pipeline", "Pipeline"]
)
def test_resolve_class_uses_the_registry_prefixes(
    write_conf: WriteConf, conf: Path, spelling: str
) -> None:
    from fixtures_pkg.pipeline import Pipeline

    write_conf("p.yml", f"p:\n  type: {spelling}\n")
    loader = load(conf, prefixes=("fixtures_pkg",))
    assert loader.resolve_class(loader.get("p")) is Pipeline


@pytest.mark.usefixtures("fixtures_pkg")
def test_resolve_class_error_is_located_at_the_type_key(write_conf: WriteConf, conf: Path) -> None:
    path = write_conf("p.yml", "p:\n  type: pipeline.Pipelin\n")
    loader = load(conf, prefixes=("fixtures_pkg",))
    with pytest.raises(ConfigError) as info:
        loader.resolve_class(loader.get("p"))
    assert (info.value.file, info.value.template, info.value.key) == (str(path), "p", "type")
    assert "'pipeline.Pipelin' resolves to nothing" in str(info.value)


@pytest.mark.usefixtures("fixtures_pkg")
def test_resolve_class_of_a_broken_module_is_located_at_the_type_key(
    write_conf: WriteConf, conf: Path
) -> None:
    write_conf("p.yml", "p:\n  type: brokentype.Thing\n")
    loader = load(conf, prefixes=("fixtures_pkg",))
    with pytest.raises(ConfigError, match="failed to import") as info:
        loader.resolve_class(loader.get("p"))
    assert (info.value.template, info.value.key) == ("p", "type")


def test_resolve_class_of_a_template_without_type(conf: Path) -> None:
    template = RawTemplate("t", conf / "t.yml", {})
    with pytest.raises(ConfigError, match="missing `type`"):
        load(conf).resolve_class(template)


@pytest.mark.usefixtures("fixtures_pkg")
def test_of_type_returns_subclasses_and_skips_unresolvable(
    write_conf: WriteConf, conf: Path
) -> None:
    from fixtures_pkg.on import On
    from fixtures_pkg.pipeline import Pipeline

    write_conf(
        "t.yml",
        """\
        p1: {type: Pipeline}
        p2: {type: pipeline.SubPipeline}
        o1: {type: on.On}
        nope: {type: nothing.Here}
        thing: {type: things.Thing}
        """,
    )
    loader = load(conf, prefixes=("fixtures_pkg",))
    assert [t.name for t in loader.of_type(Pipeline)] == ["p1", "p2"]
    assert [t.name for t in loader.of_type(On)] == ["o1"]
    assert [t.name for t in loader.of_type(object)] == ["o1", "p1", "p2", "thing"]


def test_raw_template_is_picklable_hashable_and_compares_by_value(conf: Path) -> None:
    a = RawTemplate("t", conf / "t.yml", {"type": "x", "n": [1]}, "x")
    b = pickle.loads(pickle.dumps(a))
    assert a == b
    assert hash(a) == hash(b)
    assert a != RawTemplate("t", conf / "t.yml", {"type": "x", "n": [2]}, "x")
    error = a.error("bad", key="n")
    assert (error.file, error.template, error.key) == (str(conf / "t.yml"), "t", "n")


# -------------------------------------------------------------------- hot reload


def _touch(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_refreshed_without_change_returns_the_same_loader(
    write_conf: WriteConf, conf: Path
) -> None:
    write_conf("a.yml", "a:\n  type: x\n")
    loader = load(conf)
    assert loader.refreshed() is loader
    assert loader.fingerprint() == loader.fingerprint()


def test_refreshed_sees_an_edit_of_the_same_size(conf: Path) -> None:
    path = conf / "a.yml"
    _touch(path, "a:\n  type: x\n", 1_000_000_000)
    loader = load(conf)
    _touch(path, "b:\n  type: x\n", 2_000_000_000)
    fresh = loader.refreshed()
    assert fresh is not loader
    assert fresh.names() == ["b"]
    assert loader.names() == ["a"]  # the old loader never changes
    assert fresh.refreshed() is fresh


def test_refreshed_sees_added_and_removed_files(write_conf: WriteConf, conf: Path) -> None:
    write_conf("a.yml", "a:\n  type: x\n")
    loader = load(conf)
    extra = write_conf("sub/b.yml", "b:\n  type: x\n")
    grown = loader.refreshed()
    assert grown.names() == ["a", "b"]
    extra.unlink()
    assert grown.refreshed().names() == ["a"]


def test_refreshed_keeps_prefixes_and_class(write_conf: WriteConf, conf: Path) -> None:
    class MyLoader(Loader):
        pass

    write_conf("a.yml", "a:\n  type: x\n")
    loader = MyLoader(conf, prefixes=("p",))
    write_conf("b.yml", "b:\n  type: x\n")
    fresh = loader.refreshed()
    assert isinstance(fresh, MyLoader)
    assert fresh.prefixes == ("p",)


def test_fingerprint_is_taken_before_reading(
    write_conf: WriteConf, conf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file changed while the loader reads it is seen as changed at the next refresh."""
    path = write_conf("a.yml", "a:\n  type: x\n")
    real = loader_module._read_bounded

    def edit_then_read(path: Path, limit: int) -> bytes:
        raw = real(path, limit)
        _touch(path, "a:\n  type: x\n  more: 1\n", 5_000_000_000)
        return raw

    monkeypatch.setattr(loader_module, "_read_bounded", edit_then_read)
    loader = load(conf)
    monkeypatch.setattr(loader_module, "_read_bounded", real)
    assert "more" not in loader.get("a").data
    assert loader.refreshed().get("a").data["more"] == 1
    assert path.exists()


def test_importing_the_loader_imports_no_template_class_module() -> None:
    """On and Pipeline are resolved by name when needed, never imported up front."""
    code = (
        "import sys, ddeutil.workflow.loader, ddeutil.workflow.cli.templates\n"
        "bad = [m for m in ('ddeutil.workflow.on', 'ddeutil.workflow.pipeline') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# ---------------------------------------------------------------- kinds, pickling


def test_kind_and_of_kind_sort_templates_without_the_engine(
    write_conf: WriteConf, conf: Path
) -> None:
    write_conf(
        "t.yml",
        """
        b-pipe: {type: Pipeline}
        a-pipe: {type: ddeutil.workflow.pipeline.Pipeline}
        every-5: {type: on.On, cron: "*/5 * * * *"}
        settings-like: {type: settings.Settings}
        unknown: {type: no.such.Thing}
        """,
    )
    loader = load(conf)
    assert [t.name for t in loader.of_kind("pipeline")] == ["a-pipe", "b-pipe"]
    assert [t.name for t in loader.of_kind("on")] == ["every-5"]
    assert loader.kind(loader.get("settings-like")) is None
    with pytest.raises(ConfigError) as info:
        loader.kind(loader.get("unknown"))
    assert (info.value.template, info.value.key) == ("unknown", "type")
    assert info.value.file is not None
    assert info.value.file.endswith("t.yml")


def test_a_pickled_loader_is_its_index_and_reads_no_file(
    write_conf: WriteConf, conf: Path, tmp_path: Path
) -> None:
    write_conf(
        "ok.yml", "good: {type: Pipeline, on: every}\nevery: {type: on.On, cron: '* * * * *'}\n"
    )
    write_conf("big.yml", "too-big: {type: Pipeline, desc: '" + "x" * 600 + "'}\n")
    write_conf("bad.yml", "broken: [unclosed\n")
    write_conf("untyped.yml", "untyped: {desc: no type}\n")
    loader = load(conf, limits=ConfLimits(max_bytes=500))
    assert any(isinstance(e, ConfLimitError) for e in loader.errors)

    data = pickle.dumps(loader)
    conf.rename(tmp_path / "gone")  # unpickling must not read the folder
    copy = pickle.loads(data)

    assert copy.names() == loader.names() == ["every", "good"]
    assert copy.get("good") == loader.get("good")
    assert copy.get("good").data == {"type": "Pipeline", "on": "every"}
    assert (copy.conf_path, copy.prefixes, copy.limits) == (
        loader.conf_path,
        loader.prefixes,
        loader.limits,
    )
    assert [(type(e), str(e)) for e in copy.errors] == [(type(e), str(e)) for e in loader.errors]
    limit_error = next(e for e in copy.errors if isinstance(e, ConfLimitError))
    assert limit_error.setting == "WORKFLOW_CORE_CONF_MAX_BYTES"
    with pytest.raises(TemplateNotFound, match=r"cannot be used.*missing `type`") as info:
        copy.get("untyped")
    assert isinstance(info.value.__cause__, ConfigError)
    assert info.value.key == "type"
    assert copy.fingerprint() == ()  # the folder is gone: a reload would notice


def test_template_version_is_equal_for_equal_templates_and_changes_with_an_edit(
    write_conf: WriteConf, conf: Path
) -> None:
    from ddeutil.workflow.loader import template_version

    write_conf("p.yml", "p: {type: Pipeline, desc: one, on: {cron: '* * * * *'}}\n")
    first = load(conf).get("p")
    assert template_version(load(conf).get("p")) == template_version(first)
    assert template_version(pickle.loads(pickle.dumps(first))) == template_version(first)
    write_conf("p.yml", "p: {type: Pipeline, desc: two, on: {cron: '* * * * *'}}\n")
    assert template_version(load(conf).get("p")) != template_version(first)
