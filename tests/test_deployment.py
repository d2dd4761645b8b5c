"""The systemd unit, its env file and the Dockerfile keep their deployment promises.

The properties are checked textually everywhere; ``systemd-analyze verify`` also
runs when the machine has it (the ExecStart interpreter is swapped for this
test's Python, since the unit names the production venv path).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ddeutil.workflow.settings import ENV_VARS, Settings

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "ddeutil-workflow.service"
WORKER_UNIT = REPO / "systemd" / "ddeutil-workflow-worker.service"
UNITS = pytest.mark.parametrize("unit", [UNIT, WORKER_UNIT], ids=["daemon", "worker"])
ENV_EXAMPLE = REPO / "systemd" / "workflow.env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PROD_PYTHON = "/srv/workflow/.venv/bin/python"


def _unit(path: Path = UNIT) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _env_example() -> dict[str, str]:
    env = {}
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def _one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key)
    assert values, f"{key}= missing from the unit"
    return values[-1]


def test_unit_runs_the_app_module_as_a_dedicated_user_from_an_env_file() -> None:
    service = _unit()["Service"]
    assert _one(service, "ExecStart").endswith("/bin/python -m ddeutil.workflow.app")
    assert _one(service, "User") not in ("", "root", "0")
    assert _one(service, "Group") not in ("", "root", "0")
    assert _one(service, "EnvironmentFile").startswith("/etc/")
    assert _one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert _one(service, "Type") in ("exec", "simple")


def test_worker_unit_runs_the_worker_command_as_a_dedicated_user() -> None:
    service = _unit(WORKER_UNIT)["Service"]
    assert _one(service, "ExecStart").endswith("/bin/python -m ddeutil.workflow worker")
    assert _one(service, "User") not in ("", "root", "0")
    assert _one(service, "EnvironmentFile") == _one(_unit()["Service"], "EnvironmentFile")
    assert "ExecReload" not in service


@UNITS
def test_unit_restarts_on_failure_and_stops_with_a_drain_window(unit: Path) -> None:
    service = _unit(unit)["Service"]
    assert _one(service, "Restart") == "on-failure"
    assert _one(service, "KillMode") == "mixed"
    assert _one(service, "KillSignal") == "SIGTERM"
    stop_timeout = float(_env_example()["WORKFLOW_APP_STOP_TIMEOUT"])
    default_timeout = Settings.from_env({}).app_stop_timeout
    timeout_stop = float(_one(service, "TimeoutStopSec"))
    assert timeout_stop > stop_timeout
    assert timeout_stop > default_timeout


@UNITS
def test_unit_is_hardened_and_writes_only_under_the_root(unit: Path) -> None:
    service = _unit(unit)["Service"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "RestrictSUIDSGID": "yes",
    }.items():
        assert _one(service, key) == value, key
    assert _one(service, "CapabilityBoundingSet") == ""
    root = _env_example()["WORKFLOW_ROOT_PATH"]
    assert root in _one(service, "ReadWritePaths").split()
    assert _one(service, "WorkingDirectory") == root
    assert _unit(unit)["Install"]["WantedBy"] == ["multi-user.target"]


def test_env_example_names_only_known_variables_and_parses() -> None:
    env = _env_example()
    unknown = sorted(set(env) - set(ENV_VARS))
    assert not unknown, f"unknown variables in the env example: {unknown}"
    settings = Settings.from_env(env)
    assert str(settings.root_path) == env["WORKFLOW_ROOT_PATH"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@UNITS
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, unit: Path) -> None:
    text = unit.read_text(encoding="utf-8")
    assert PROD_PYTHON in text
    copy = tmp_path / unit.name
    copy.write_text(text.replace(PROD_PYTHON, sys.executable), encoding="utf-8")
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert unit.name not in proc.stderr, proc.stderr


def _docker_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def _docker(word: str) -> list[str]:
    return [rest for w, rest in _docker_instructions() if w == word]


def test_dockerfile_uses_a_slim_python_and_installs_the_package() -> None:
    (base,) = _docker("FROM")
    assert re.fullmatch(r"python:3\.\d+-slim", base), base
    assert any(run.startswith(("pip install .", 'pip install ".')) for run in _docker("RUN"))


def test_dockerfile_runs_the_daemon_as_a_non_root_user() -> None:
    users = _docker("USER")
    assert users
    assert users[-1] not in ("root", "0")
    assert json.loads(_docker("CMD")[-1]) == ["python", "-m", "ddeutil.workflow.app"]


def test_dockerfile_health_stop_signal_and_volumes() -> None:
    (health,) = _docker("HEALTHCHECK")
    assert health.endswith('CMD ["workflow", "health"]')
    assert _docker("STOPSIGNAL") == ["SIGTERM"]
    volumes = [v for line in _docker("VOLUME") for v in json.loads(line)]
    env = " ".join(_docker("ENV"))
    root = re.search(r"WORKFLOW_ROOT_PATH=(\S+)", env)
    assert root is not None
    assert f"{root.group(1)}/conf" in volumes
    assert f"{root.group(1)}/.workflow" in volumes
    assert "WORKFLOW_CORE_PATH_CONF=conf" in env


def test_dockerfile_documents_the_drain_window_and_init() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    env = " ".join(_docker("ENV"))
    match = re.search(r"WORKFLOW_APP_STOP_TIMEOUT=(\d+)", env)
    assert match is not None
    example = re.search(r"--stop-timeout (\d+)", text)
    assert example is not None
    assert int(example.group(1)) > int(match.group(1))
    assert "--init" in text


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = set(DOCKERIGNORE.read_text(encoding="utf-8").split())
    assert {".git", ".venv", ".workflow", "**/__pycache__"} <= ignored
    sources = {
        part.rstrip("/")
        for rest in _docker("COPY")
        for part in rest.split()[:-1]
        if not part.startswith("--")
    }
    assert sources == {"pyproject.toml", "README.md", "src", "conf"}
    assert not (sources & ignored)


def test_install_lines_install_this_code_not_the_index_package_of_the_same_name() -> None:
    # The public package index's ddeutil-workflow is the upstream project, not this code.
    by_name = re.compile(r"pip install +['\"]?ddeutil-workflow\b")
    texts = {
        p: p.read_text(encoding="utf-8") for p in [REPO / "README.md", *REPO.glob("systemd/*")]
    }
    offenders = [str(p.relative_to(REPO)) for p, text in texts.items() if by_name.search(text)]
    assert offenders == []
    assert "pip wheel --no-deps -w dist ." in texts[REPO / "README.md"]
