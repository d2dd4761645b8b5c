"""The package root exports a curated, working public API, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ddeutil import workflow


def test_all_is_sorted_and_resolves() -> None:
    assert workflow.__all__ == sorted(workflow.__all__)
    assert set(workflow.__all__) == {*workflow._EXPORTS, "__version__"}
    for name in workflow.__all__:
        assert getattr(workflow, name) is not None, name


@pytest.mark.parametrize(
    "name",
    [
        "Pipeline",
        "Job",
        "On",
        "Result",
        "Status",
        "tag",
        "custom_filter",
        "Settings",
        "WorkflowError",
    ],
)
def test_spec_names_are_exported(name: str) -> None:
    assert name in workflow.__all__


def test_exports_are_the_defining_objects() -> None:
    from ddeutil.workflow.engine.pipeline import Pipeline
    from ddeutil.workflow.registry import tag
    from ddeutil.workflow.schedules.on import On

    assert workflow.Pipeline is Pipeline
    assert workflow.On is On
    assert workflow.tag is tag


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = workflow.Nope


def test_importing_the_package_is_cheap() -> None:
    code = (
        "import sys, ddeutil.workflow\n"
        "heavy = ('pydantic', 'yaml', 'ddeutil.workflow.pipeline', 'ddeutil.workflow.engine')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_seed_and_readme_import_paths_keep_working() -> None:
    """Re-export modules keep the public paths of the seed and the README valid."""
    from ddeutil.workflow import templating
    from ddeutil.workflow.engine.pipeline import Pipeline
    from ddeutil.workflow.engine.templating import BUILTIN_FILTERS
    from ddeutil.workflow.on import On as PublicOn
    from ddeutil.workflow.pipeline import Pipeline as PublicPipeline
    from ddeutil.workflow.schedules.on import On

    assert PublicPipeline is Pipeline
    assert PublicOn is On
    assert dict(templating.BUILTIN_FILTERS) == dict(BUILTIN_FILTERS)


def test_the_default_filter_module_still_provides_every_builtin_filter() -> None:
    from ddeutil.workflow.engine.templating import BUILTIN_FILTERS
    from ddeutil.workflow.registry import load_filters
    from ddeutil.workflow.settings import Settings

    filters = load_filters(Settings.from_env({}).registry_filter)
    assert set(BUILTIN_FILTERS) <= set(filters)
