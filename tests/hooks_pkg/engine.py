"""Small helpers the engine tests share: write a pipeline YAML, load it, run it."""

from __future__ import annotations

import os
import select
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ddeutil.workflow.engine.pipeline import Pipeline
from ddeutil.workflow.loader import Loader
from ddeutil.workflow.result import Result
from ddeutil.workflow.settings import Settings


class Engine:
    """Writes templates under the test's conf folder and builds pipelines from them."""

    def __init__(self, write_conf: Callable[[str, str], Path], settings: Settings) -> None:
        self.write_conf = write_conf
        self.settings = settings

    def write(self, text: str) -> str:
        """Write the conf file (replacing the previous one); return its first template's name."""
        text = textwrap.dedent(text)
        self.write_conf("engine.yml", text)
        return str(next(iter(yaml.safe_load(text))))

    def load_data(self, templates: dict[str, Any], name: str | None = None) -> Pipeline:
        """Like :meth:`load`, from a mapping of template name to template data."""
        return self.load(yaml.safe_dump(templates, sort_keys=False), name)

    def loader(self) -> Loader:
        return Loader.from_settings(self.settings)

    def load(self, text: str, name: str | None = None) -> Pipeline:
        """Write ``text`` and load pipeline ``name`` (default: its first template)."""
        first = self.write(text)
        return Pipeline.from_loader(name or first, settings=self.settings, loader=self.loader())

    def run(self, text: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Result:
        """Write, load and execute; ``kwargs`` go to ``execute``."""
        return self.load(text).execute(params, settings=self.settings, **kwargs)


def stage_outputs(result: Result, job: str, stage: str) -> Any:
    """``result.context["jobs"][job]["stages"][stage]["outputs"]``."""
    return result.context["jobs"][job]["stages"][stage]["outputs"]


def wait_dead(pid: int, within: float = 5.0) -> bool:
    """True once ``pid`` has exited (a zombie counts), waiting on a pidfd, bounded."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], within)
        return bool(ready)
    finally:
        os.close(fd)
