"""Values are data, never code: ``${{ }}`` in ``run`` and ``bash`` bodies cannot inject.

Every hostile value below goes through every placement of both body kinds and must
reach the body byte for byte, without the marker file ever being created; then the
same through each expression source (params, matrix, stage and job outputs, trigger
params) and each entry point (``execute``, ``workflow run -p``, the REST API).
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddeutil.workflow.cli import main
from ddeutil.workflow.engine.stages.bash_binding import bind_bash
from ddeutil.workflow.engine.stages.python_binding import bind_python
from ddeutil.workflow.engine.templating import BUILTIN_FILTERS
from ddeutil.workflow.errors import ConfigError
from ddeutil.workflow.result import Result, Status
from hooks_pkg.engine import Engine
from hooks_pkg.hostile import INJECT_CONF, hostile


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "owned"
    yield path
    assert not path.exists(), "a value ran as code: the marker file was created"


# ------------------------------------------------------------------------- python

PY_PLACEMENTS = {
    "single": "out = '${{ params.v }}'",
    "double": 'out = "${{ params.v }}"',
    "fstring": "out = f'${{ params.v }}'",
    "fstring-around": 'pre = "<"\nout = f"{pre}${{ params.v }}>"[1:-1]',
    "triple-single": "out = '''${{ params.v }}'''",
    "triple-double": 'out = """${{ params.v }}"""',
    "raw": "out = r'${{ params.v }}'",
    "raw-fstring": "out = rf'${{ params.v }}'",
    "concat": "out = '${{ params.v }}' \"\"",
    "bare": "out = ${{ params.v }}",
    "call": "out = str(${{ params.v }})",
    "in-function": "def f():\n    return ${{ params.v }}\nout = f()",
    "comment": "# ${{ params.v }}\nout = ${{ params.v }}",
}


def _python_pipeline(placements: dict[str, str]) -> dict[str, Any]:
    stages = [{"name": key, "id": key, "run": body} for key, body in placements.items()]
    return {
        "py": {
            "type": "Pipeline",
            "params": {"v": "str", "other": {"type": "str", "default": "EXPANDED"}},
            "jobs": {"j": {"stages": stages}},
        }
    }


def _outputs(result: Result, job: str = "j") -> dict[str, Any]:
    stages = result.context["jobs"][job]["stages"]
    return {key: stage["outputs"] for key, stage in stages.items()}


def test_every_hostile_value_reaches_every_python_placement_as_data(
    engine: Engine, marker: Path
) -> None:
    pipe = engine.load_data(_python_pipeline(PY_PLACEMENTS))
    for value in hostile(marker):
        result = pipe.execute({"v": value}, settings=engine.settings)
        assert result.status is Status.SUCCESS, (value, result.errors)
        for key, outputs in _outputs(result).items():
            assert outputs["out"] == value, (key, value)


def test_a_bare_python_position_gets_a_value_of_its_type(engine: Engine) -> None:
    pipe = engine.load_data(
        {
            "typed": {
                "type": "Pipeline",
                "params": {"n": "int", "f": "float", "items": "list", "m": "map", "s": "str"},
                "jobs": {
                    "j": {
                        "stages": [
                            {
                                "name": "code",
                                "run": "n = ${{ params.n }} * 2\nf = ${{ params.f }}\n"
                                "items = ${{ params.items }}\nitems.append(4)\n"
                                "m = ${{ params.m }}\ns = ${{ params.s }}\n"
                                "none = ${{ params.m.z }}\n"
                                "kind = type(none).__name__",
                            }
                        ]
                    }
                },
            }
        }
    )
    params = {"n": 21, "f": 0.5, "items": [1, 2, 3], "m": {"a": [1], "z": None}, "s": "1 + 1"}
    result = pipe.execute(dict(params), settings=engine.settings)
    assert result.status is Status.SUCCESS, result.errors
    outputs = _outputs(result)["code"]
    assert outputs["n"] == 42
    assert outputs["f"] == 0.5
    assert outputs["items"] == [1, 2, 3, 4]
    assert outputs["m"] == {"a": [1], "z": None}
    assert outputs["s"] == "1 + 1"
    assert outputs["kind"] == "NoneType"
    # the code changed its own copy of the list, not the run's params
    assert result.context["params"]["items"] == [1, 2, 3]


def test_fstring_braces_inside_a_value_are_not_evaluated(engine: Engine) -> None:
    pipe = engine.load_data(
        _python_pipeline({"f": "secret = 'hidden'\nout = f'hi ${{ params.v }}!'[3:-1]"})
    )
    result = pipe.execute({"v": "{secret}"}, settings=engine.settings)
    assert _outputs(result)["f"]["out"] == "{secret}"


@pytest.mark.parametrize(
    ("body", "placement"),
    [
        ("table_${{ params.v }} = 1", "joined to a name or number"),
        ("${{ params.v }} = 1", "a name the code assigns or deletes"),
        ("import ${{ params.v }}", "used as a name in the code"),
        ("out = object.${{ params.v }}", "used as a name in the code"),
        ("out = dict(${{ params.v }}=1)", "used as a name in the code"),
        ("out = b'${{ params.v }}'", "inside a bytes literal"),
        ("match 1:\n    case '${{ params.v }}':\n        pass", "inside a match pattern"),
        ("out = 1${{ params.v }}", "cannot be joined to a name, a number or other code"),
    ],
)
def test_a_placement_that_cannot_stay_data_is_a_load_error(
    engine: Engine, body: str, placement: str
) -> None:
    with pytest.raises(ConfigError) as info:
        engine.load_data(_python_pipeline({"bad": body}))
    assert info.value.key == "jobs.j.stages[0].run"
    assert placement in str(info.value)


def test_run_bodies_are_compiled_once_per_text_whatever_the_values(engine: Engine) -> None:
    bind_python.cache_clear()
    pipe = engine.load_data(_python_pipeline({"a": "out = '${{ params.v }}'"}))
    for value in ("one", "two", "three"):
        result = pipe.execute({"v": value}, settings=engine.settings)
        assert _outputs(result)["a"]["out"] == value
    assert bind_python.cache_info().misses == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text())
def test_any_text_reaches_python_bodies_exactly(value: str) -> None:
    for body in ("out = '${{ params.v }}'", "out = f'''${{ params.v }}'''", "out = ${{ v }}"):
        bound = bind_python(body)
        ctx = {"params": {"v": value}, "v": value}
        namespace: dict[str, Any] = {"__builtins__": __builtins__}
        namespace.update(bound.bind(ctx, BUILTIN_FILTERS, "s"))
        exec(bound.code, namespace)
        assert namespace["out"] == value


# --------------------------------------------------------------------------- bash

SH_PLACEMENTS = {
    "double": "printf '%s|' \"${{ params.v }}\"",
    "double-around": "printf '%s|' \"<${{ params.v }}>\" | cut -c2- | sed 's/>|$/|/'",
    "single": "printf '%s|' '${{ params.v }}'",
    "unquoted": "printf '%s|' ${{ params.v }}",
    "assignment": "X=${{ params.v }}\nprintf '%s|' \"$X\"",
    "ansi-c": "printf '%s|' $'${{ params.v }}'",
    "default-word": "printf '%s|' \"${WF_UNSET_VARIABLE:-${{ params.v }}}\"",
    "default-unquoted": "printf '%s|' ${WF_UNSET_VARIABLE:-${{ params.v }}}",
    "heredoc": "cat <<EOF\n${{ params.v }}|\nEOF",
    "heredoc-quoted": "cat <<'EOF'\n${{ params.v }}|\nEOF",
    "heredoc-tabs": 'cat <<-"END"\n\t${{ params.v }}|\n\tEND',
    "command-substitution": "printf '%s|' \"$(printf '%s' ${{ params.v }}; printf .)\"",
    "backticks": "X=`printf '%s.' \"${{ params.v }}\"`\nprintf '%s|' \"$X\"",
    "comment": "# ${{ params.v }}\nprintf '%s|' \"${{ params.v }}\"",
}
"""Each prints the value then ``|`` (command substitutions add a ``.`` that is stripped)."""


def _bash_pipeline(placements: dict[str, str]) -> dict[str, Any]:
    stages = [{"name": key, "id": key, "bash": body} for key, body in placements.items()]
    return {
        "sh": {
            "type": "Pipeline",
            "params": {
                "v": "str",
                "n": {"type": "str", "default": "0"},
                "other": {"type": "str", "default": "EXPANDED"},
            },
            "jobs": {"j": {"stages": stages}},
        }
    }


def _printed(key: str, stdout: str) -> str:
    assert stdout.endswith("|"), (key, stdout)
    text = stdout[:-1]
    if key in ("command-substitution", "backticks"):
        text = text[:-1]
    return text


def test_every_hostile_value_reaches_every_bash_placement_as_data(
    engine: Engine, marker: Path
) -> None:
    pipe = engine.load_data(_bash_pipeline(SH_PLACEMENTS))
    for value in hostile(marker):
        if "\n" in value and value.strip():
            continue  # a multi-line value: checked below, where `cut`/`sed` are not used
        result = pipe.execute({"v": value}, settings=engine.settings)
        assert result.status is Status.SUCCESS, (value[:80], result.errors)
        for key, outputs in _outputs(result).items():
            assert _printed(key, outputs["stdout"]) == value, (key, value[:80])


def test_multi_line_hostile_values_reach_bash_placements_as_data(
    engine: Engine, marker: Path
) -> None:
    placements = {k: v for k, v in SH_PLACEMENTS.items() if k != "double-around"}
    pipe = engine.load_data(_bash_pipeline(placements))
    for value in [v for v in hostile(marker) if "\n" in v]:
        result = pipe.execute({"v": value}, settings=engine.settings)
        assert result.status is Status.SUCCESS, (value, result.errors)
        for key, outputs in _outputs(result).items():
            assert _printed(key, outputs["stdout"]) == value, (key, value)


MORE_SH_PLACEMENTS = {
    "locale-quotes": "printf '%s|' $\"${{ params.v }}\"",
    "ansi-escapes": "printf '%s|' $'\\'\\\\'${{ params.v }}$'\\''| cut -c3- | sed \"s/'|$/|/\"",
    "subshell": "(printf '%s|' ${{ params.v }})",
    "group": "{ printf '%s|' ${{ params.v }}; }",
    "case": "case ${{ params.v }} in *) printf '%s|' ${{ params.v }};; esac",
    "pattern-word": "X=abc; printf '%s|' \"${X/abc/${{ params.v }}}\"",
    "array-default": "a=(); printf '%s|' \"${a[@]:-${{ params.v }}}\"",
    "heredoc-substitution": "cat <<EOF\n$(printf '%s' ${{ params.v }}).|\nEOF",
    "two-heredocs": "cat <<A <<'B'\nignored ${{ params.v }}\nA\n${{ params.v }}|\nB",
    "nested-substitution": "printf '%s|' \"$(echo \"$(printf '%s' ${{ params.v }})\")\"",
    "backticks-in-quotes": 'X="`printf \'%s\' \\"${{ params.v }}\\"`"; printf \'%s|\' "$X"',
    "backticks-in-quotes-bare": "X=\"`printf '%s' ${{ params.v }}`\"; printf '%s|' \"$X\"",
    "arith-then-value": "n=$(( 1 + 1 )); printf '%s|' \"${{ params.v }}\"",
}
"""More bash constructs around a placement; each prints the value then ``|``."""


def test_hostile_values_reach_more_bash_constructs_as_data(engine: Engine, marker: Path) -> None:
    pipe = engine.load_data(_bash_pipeline(MORE_SH_PLACEMENTS))
    for value in hostile(marker):
        if "\n" in value or "\r" in value or value.endswith("\\"):
            continue  # the line-based `cut`/`sed` helpers above read one line
        result = pipe.execute({"v": value}, settings=engine.settings)
        assert result.status is Status.SUCCESS, (value[:80], result.errors)
        for key, outputs in _outputs(result).items():
            printed = outputs["stdout"]
            if key == "heredoc-substitution":
                printed = printed.replace(".|", "|")
            assert printed == f"{value}|", (key, value[:80])


def test_a_value_in_a_pattern_is_literal(engine: Engine) -> None:
    pipe = engine.load_data(
        _bash_pipeline({"p": "X='abc'; printf '%s|' \"${X#${{ params.v }}}\" ${X%${{ params.v }}}"})
    )
    assert (
        _outputs(pipe.execute({"v": "a*"}, settings=engine.settings))["p"]["stdout"] == "abc|abc|"
    )
    assert _outputs(pipe.execute({"v": "ab"}, settings=engine.settings))["p"]["stdout"] == "c|abc|"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo $[ ${{ params.n }} + 1 ]", "8"),
        ("s=abcdefghij; echo ${s:1:${{ params.n }}}", "bcdefgh"),
        ("a=(1 2 3 4 5 6 7 8); echo ${#a[@]} ${a[${{ params.n }}]:-none}", "8 8"),
    ],
)
def test_more_arithmetic_placements(engine: Engine, script: str, expected: str) -> None:
    pipe = engine.load_data(_bash_pipeline({"ar": script}))
    result = pipe.execute({"v": "", "n": "7"}, settings=engine.settings)
    assert _outputs(result)["ar"]["stdout"] == expected
    bad = pipe.execute({"v": "", "n": "1+1"}, settings=engine.settings)
    assert "must be an integer" in bad.errors[0].message


def test_an_unquoted_placement_is_one_word_without_globbing(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("")
    pipe = engine.load_data(
        _bash_pipeline(
            {
                "count": "cd "
                + str(tmp_path)
                + '\nset -- ${{ params.v }}\nprintf \'%s:%s\' "$#" "$1"'
            }
        )
    )
    result = pipe.execute({"v": "* two  words"}, settings=engine.settings)
    assert _outputs(result)["count"]["stdout"] == "1:* two  words"


def test_shell_arithmetic_takes_only_integers(engine: Engine, marker: Path) -> None:
    placements = {
        "dollar": "echo $(( ${{ params.n }} * 2 ))",
        "command": "(( x = ${{ params.n }} + 1 )); echo $x",
        "let": "let 'y = ${{ params.n }} * 3'; echo $y",
        "test": "[[ ${{ params.n }} -eq 7 ]] && echo seven",
        "subscript": "a=(x y z w v u t s); echo ${a[${{ params.n }}]}",
        "offset": "s=abcdefghij; echo ${s:${{ params.n }}}",
        "declare": "declare -i d=${{ params.n }}; echo $d",
        "assign-subscript": "b[${{ params.n }}]=q; echo ${#b[@]}",
    }
    pipe = engine.load_data(
        {
            "ar": {
                "type": "Pipeline",
                "params": {"n": "str"},
                "jobs": {
                    f"j{i}": {"stages": [{"name": key, "id": key, "bash": body}]}
                    for i, (key, body) in enumerate(placements.items())
                },
            }
        }
    )
    good = pipe.execute({"n": "7"}, settings=engine.settings)
    assert good.status is Status.SUCCESS, good.errors
    stdout = {
        key: good.context["jobs"][f"j{i}"]["stages"][key]["outputs"]["stdout"]
        for i, key in enumerate(placements)
    }
    assert stdout == {
        "dollar": "14",
        "command": "8",
        "let": "21",
        "test": "seven",
        "subscript": "s",
        "offset": "hij",
        "declare": "7",
        "assign-subscript": "1",
    }
    bad = pipe.execute({"n": f"a[$(touch {marker})]"}, settings=engine.settings)
    assert bad.status is Status.FAILED
    assert len(bad.errors) == len(placements)
    for error in bad.errors:
        assert "used in shell arithmetic and must be an integer" in error.message


def test_a_string_comparison_in_a_test_is_not_arithmetic(engine: Engine) -> None:
    pipe = engine.load_data(
        _bash_pipeline({"cmp": "[[ ${{ params.v }} == x* ]] && echo glob || echo literal"})
    )
    assert _outputs(pipe.execute({"v": "x*"}, settings=engine.settings))["cmp"] == {
        "return_code": 0,
        "stdout": "glob",
        "stderr": "",
    }
    result = pipe.execute({"v": "a[$(exit 3)]"}, settings=engine.settings)
    assert _outputs(result)["cmp"]["stdout"] == "literal"


@pytest.mark.parametrize(
    ("body", "placement"),
    [
        ("echo \\${{ params.v }}", "right after a backslash"),
        ('echo "\\${{ params.v }}"', "right after a backslash"),
        ("echo ${${{ params.v }}}", "naming the variable of a ${...} expansion"),
        ("cat <<${{ params.v }}\nx\n", "inside a here-document delimiter"),
        ("cat <<'E O F'\n${{ params.v }}\nE O F", "delimiter 'E O F' is not plain"),
    ],
)
def test_a_bash_placement_that_cannot_stay_data_is_a_load_error(
    engine: Engine, body: str, placement: str
) -> None:
    with pytest.raises(ConfigError) as info:
        engine.load_data(_bash_pipeline({"bad": body}))
    assert info.value.key == "jobs.j.stages[0].bash"
    assert placement in str(info.value)


def test_a_nul_character_fails_the_stage_clearly(engine: Engine) -> None:
    pipe = engine.load_data(_bash_pipeline({"nul": "echo ${{ params.v }}"}))
    result = pipe.execute({"v": "a\x00b"}, settings=engine.settings)
    assert result.status is Status.FAILED
    assert "NUL character" in result.errors[0].message


def test_bash_scripts_are_scanned_once_per_text_whatever_the_values(engine: Engine) -> None:
    bind_bash.cache_clear()
    pipe = engine.load_data(_bash_pipeline({"a": "printf '%s|' ${{ params.v }}"}))
    for value in ("one", "two", "three"):
        result = pipe.execute({"v": value}, settings=engine.settings)
        assert _outputs(result)["a"]["stdout"] == f"{value}|"
    assert bind_bash.cache_info().misses == 1


_SHELL_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # type: ignore[arg-type]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_SHELL_TEXT)
def test_any_text_reaches_bash_scripts_exactly(value: str) -> None:
    script = "printf '%s|' \"${{ v }}\" ${{ v }} '${{ v }}'"
    bound = bind_bash(script)
    env = {**os.environ, **bound.environ({"v": value}, BUILTIN_FILTERS, "s")}
    done = subprocess.run(
        ["bash", "-c", bound.script], env=env, capture_output=True, timeout=10, check=True
    )
    assert done.stdout.decode("utf-8", "surrogateescape") == f"{value}|" * 3


# --------------------------------------------------------- sources and entry points


def test_matrix_and_upstream_outputs_are_data_too(engine: Engine, marker: Path) -> None:
    payload = f'x"; touch {marker}; echo "\'; open("{marker}", "w").write("1"); y=\''
    pipe = engine.load_data(
        {
            "sources": {
                "type": "Pipeline",
                "jobs": {
                    "first": {
                        "strategy": {"matrix": {"m": [payload]}},
                        "stages": [
                            {"name": "py", "id": "py", "run": "out = '${{ matrix.m }}'"},
                            {
                                "name": "sh",
                                "id": "sh",
                                "bash": "printf '%s|' \"${{ stages.py.outputs.out }}\"",
                            },
                        ],
                    },
                    "second": {
                        "needs": ["first"],
                        "stages": [
                            {
                                "name": "py",
                                "id": "py",
                                "run": "out = '${{ jobs.first.stages.sh.outputs.stdout }}'",
                            },
                            {"name": "rid", "id": "rid", "bash": "printf %s '${{ run_id }}'"},
                        ],
                    },
                },
            }
        }
    )
    result = pipe.execute(settings=engine.settings)
    assert result.status is Status.SUCCESS, result.errors
    assert _outputs(result, "second")["py"]["out"] == f"{payload}|"
    assert _outputs(result, "second")["rid"]["stdout"] == result.run_id


def test_trigger_stage_params_reach_the_child_as_data(engine: Engine, marker: Path) -> None:
    payload = f"x'; touch {marker}; echo '"
    engine.write_conf(
        "child.yml",
        """
child:
  type: Pipeline
  params: {v: str}
  jobs:
    j:
      stages:
        - name: sh
          id: sh
          bash: printf '%s' '${{ params.v }}'
""",
    )
    pipe = engine.load_data(
        {
            "parent": {
                "type": "Pipeline",
                "params": {"v": "str"},
                "jobs": {
                    "j": {
                        "stages": [
                            {
                                "name": "call",
                                "id": "call",
                                "trigger": "child",
                                "params": {"v": "${{ params.v }}"},
                            }
                        ]
                    }
                },
            }
        }
    )
    result = pipe.execute({"v": payload}, settings=engine.settings)
    assert result.status is Status.SUCCESS, result.errors
    child = _outputs(result)["call"]
    assert child["jobs"]["j"]["stages"]["sh"]["outputs"]["stdout"] == payload


def test_workflow_run_p_values_are_data(
    root: Path,
    write_conf: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
    marker: Path,
) -> None:
    write_conf("inject.yml", INJECT_CONF)
    monkeypatch.setenv("WORKFLOW_ROOT_PATH", str(root))
    monkeypatch.setenv("WORKFLOW_CORE_TIMEZONE", "UTC")
    for value in hostile(marker):
        out = io.StringIO()
        handlers = list(logging.getLogger().handlers)
        try:
            code = main(
                ["--log-level", "WARNING", "run", "inject", "-p", f"name={value}", "--json"],
                out=out,
            )
        finally:
            for handler in logging.getLogger().handlers:
                if handler not in handlers:
                    logging.getLogger().removeHandler(handler)
        assert code == 0, out.getvalue()
        stages = json.loads(out.getvalue())["context"]["jobs"]["j"]["stages"]
        assert stages["sh"]["outputs"]["stdout"] == f"hello {value}".rstrip("\n")
        assert stages["py"]["outputs"]["msg"] == f"hello {value}"


@pytest.mark.parametrize(
    "script",
    [
        "echo $(( $(echo ${{ params.n }}) + 1 ))",
        'let "x = $(printf %s ${{ params.n }})"',
        "for (( i = 0; i < ${{ params.n }}; i++ )); do :; done",
        "[[ -v ${{ params.n }} ]] || echo unset",
        "a=(1 2); echo ${a[$(echo ${{ params.n }})]}",
    ],
)
def test_arithmetic_around_a_command_substitution_takes_only_integers(
    engine: Engine, marker: Path, script: str
) -> None:
    pipe = engine.load_data(_bash_pipeline({"ar": script}))
    result = pipe.execute({"v": "", "n": f"a[$(touch {marker})]"}, settings=engine.settings)
    assert result.status is Status.FAILED
    assert "must be an integer" in result.errors[0].message
    assert pipe.execute({"v": "", "n": "1"}, settings=engine.settings).status is Status.SUCCESS


def test_a_secret_value_is_masked_before_an_arithmetic_error_shortens_it(engine: Engine) -> None:
    from ddeutil.workflow.masking import Masker

    secret = "s3cr3t-" + "x" * 100
    pipe = engine.load_data(_bash_pipeline({"ar": "echo $(( ${{ params.n }} ))"}))
    result = pipe.execute(
        {"v": "", "n": secret}, settings=engine.settings, masker=Masker(frozenset({secret}))
    )
    message = result.errors[0].message
    assert "must be an integer" in message
    assert "s3cr3t" not in message
    assert "***" in message
