"""The pipelines the API serves: the conf folder, re-read when it changes.

The catalog keeps one :class:`~ddeutil.workflow.loader.Loader` and checks the
conf folder for changes at most every :data:`REFRESH_SECONDS` (one directory
walk, no file read). Each pipeline is validated once per loader version and kept
with the raw template it was built from, so a trigger executes exactly the
version that was validated, even if the file changes a moment later.

A template that does not validate (or fails to build in any other way) is never
served: showing or triggering it answers 422 ``invalid_pipeline`` with the reason
(file, template and key), and the pipeline list reports it under ``problems``
while listing every other pipeline.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..engine.pipeline import Pipeline
from ..errors import ConfigError, TemplateNotFound, brief
from ..loader import Loader, RawTemplate
from ..settings import Settings
from .errors import ApiError
from .models import ErrorDetail, TemplateProblem

__all__ = ["REFRESH_SECONDS", "Catalog", "Entry"]

REFRESH_SECONDS = 1.0
"""The conf folder is checked for changes at most this often."""


@dataclass(frozen=True)
class Entry:
    """One pipeline template: built (``pipeline``) or broken (``error``)."""

    template: RawTemplate
    pipeline: Pipeline | None
    error: ConfigError | None


class Catalog:
    """Validated pipelines of the conf folder, thread-safe.

    Args:
        settings: Where the conf folder is, and the registry.
        loader: Start from this loader (default: read the conf folder now).
        refresh_seconds: Minimum time between two checks for changed files.
    """

    def __init__(
        self,
        settings: Settings,
        loader: Loader | None = None,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._settings = settings
        self._loader = loader or Loader.from_settings(settings)
        self._refresh = refresh_seconds
        self._checked = time.monotonic()
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def loader(self) -> Loader:
        """The current loader (re-read first when the files changed)."""
        with self._lock:
            return self._current_locked()

    def get(self, name: str) -> Entry:
        """The pipeline ``name`` with its template.

        Raises:
            ApiError: 404 when no pipeline has that name; 422 ``invalid_pipeline``
                when its template does not validate.
        """
        with self._lock:
            loader = self._current_locked()
            try:
                template = loader.get(name)
            except TemplateNotFound as exc:
                cause = exc.__cause__
                if not isinstance(cause, ConfigError):
                    raise ApiError(404, f"no pipeline named {name!r}") from None
                raise _invalid(name, cause, self._settings.conf_path) from None
            entry = self._entry_locked(loader, template)
        if entry is None:
            raise ApiError(404, f"no pipeline named {name!r}")
        if entry.error is not None:
            raise _invalid(name, entry.error, self._settings.conf_path)
        return entry

    def all(self) -> tuple[list[Pipeline], list[TemplateProblem]]:
        """Every usable pipeline (sorted by name) and every problem of the folder."""
        with self._lock:
            loader = self._current_locked()
            entries = [self._entry_locked(loader, t) for t in loader.of_type(Pipeline)]
        conf = self._settings.conf_path
        problems = [_problem(e, conf) for e in loader.errors]
        pipelines = []
        for entry in entries:
            if entry is None:
                continue
            if entry.error is not None:
                problems.append(_problem(entry.error, conf))
            elif entry.pipeline is not None:
                pipelines.append(entry.pipeline)
        return pipelines, problems

    # --------------------------------------------------------------- internals

    def _current_locked(self) -> Loader:
        now = time.monotonic()
        if now - self._checked >= self._refresh:
            self._checked = now
            fresh = self._loader.refreshed()
            if fresh is not self._loader:
                self._loader = fresh
                self._entries = {}
        return self._loader

    def _entry_locked(self, loader: Loader, template: RawTemplate) -> Entry | None:
        entry = self._entries.get(template.name)
        if entry is not None:
            return entry
        try:
            kind = loader.resolve_class(template)
        except ConfigError as exc:
            entry = Entry(template, None, exc)
        else:
            if not issubclass(kind, Pipeline):
                return None
            try:
                built = Pipeline.from_template(template, loader=loader, settings=self._settings)
            except Exception as exc:  # one template never fails the listing of the others
                entry = Entry(template, None, _located(exc, template))
            else:
                entry = Entry(template, built, None)
        self._entries[template.name] = entry
        return entry


def _located(exc: Exception, template: RawTemplate) -> ConfigError:
    if isinstance(exc, ConfigError):
        return exc.located(file=str(template.file), template=template.name)
    return template.error(f"the template cannot be built ({type(exc).__name__}: {brief(str(exc))})")


def _relative(file: str | None, conf: Path) -> str | None:
    if file is None:
        return None
    try:
        return str(Path(file).relative_to(conf))
    except ValueError:
        return Path(file).name


def _problem(error: ConfigError, conf: Path) -> TemplateProblem:
    return TemplateProblem(
        template=error.template,
        file=_relative(error.file, conf),
        key=error.key,
        message=error.message,
    )


def _invalid(name: str, error: ConfigError, conf: Path) -> ApiError:
    problem = _problem(error, conf)
    where = ": ".join(p for p in (problem.file, problem.key) if p)
    return ApiError(
        422,
        f"template {name!r} cannot be used: {error.message}",
        code="invalid_pipeline",
        details=[ErrorDetail(location="template", name=where or name, message=error.message)],
    )
