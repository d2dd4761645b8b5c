"""Built pipelines reused across runs of one process (a daemon worker, the API).

Building a :class:`~ddeutil.workflow.pipeline.Pipeline` from its template
(validation, then compiling its frozen
:class:`~ddeutil.workflow.engine.plan.ExecutionPlan`: job order, bound hooks
and code, template checks) costs far more than running a small one, so an
executor keeps the pipelines it built, each with its plan, in a
:class:`PipelineCache`: one plan per template version. Policies:

* **Keyed by content.** An entry is found by the template's name and its
  :func:`~ddeutil.workflow.loader.template_version` (a digest of the raw template: name, file, type and
  data). An edited template has another version and is built afresh; the old
  entry ages out.
* **Bound to the loader and settings it was built with.** A pipeline resolves
  schedules and trigger targets through the loader it was built with, so an
  entry built with another :class:`~ddeutil.workflow.loader.Loader` object (the
  conf folder changed since) or other settings is rebuilt, never reused.
* **Bounded.** At most ``size`` pipelines are kept, least recently used first
  out (a built pipeline holds tens of kilobytes).
* **Shared by threads.** A built pipeline and its plan are immutable and
  :meth:`ExecutionPlan.run <ddeutil.workflow.engine.plan.ExecutionPlan.run>`
  builds a fresh run context, template context and result per call, so one
  instance runs on many threads at once. Two threads missing the same key at once may both
  build it; one of the two results is kept.
* **Errors are not cached.** A template that fails to build raises every time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..loader import Loader, RawTemplate, template_version
from ..settings import Settings
from .pipeline import Pipeline

__all__ = ["DEFAULT_SIZE", "PipelineCache", "template_version"]

DEFAULT_SIZE = 256
"""Pipelines kept per process by default."""


@dataclass(frozen=True)
class _Entry:
    loader: Loader
    settings: Settings
    pipeline: Pipeline


class PipelineCache:
    """Pipelines built from templates, reused while template, loader and settings hold.

    Args:
        size: Pipelines kept at most (least recently used out first); 0 keeps none.
    """

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self._size = size
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"PipelineCache(size={self._size}, kept={len(self)})"

    def get(
        self,
        template: RawTemplate,
        *,
        loader: Loader,
        settings: Settings,
        version: str | None = None,
    ) -> Pipeline:
        """The pipeline ``template`` describes, built now or reused.

        Args:
            template: The raw pipeline template.
            loader: Resolves schedules and trigger targets of the pipeline.
            settings: Settings the pipeline is built with.
            version: ``template_version(template)`` when the caller knows it
                (computed here otherwise).

        Raises:
            ConfigError: the template does not build (see
                :meth:`Pipeline.from_template <ddeutil.workflow.pipeline.Pipeline.from_template>`).
        """
        key = (template.name, version or template_version(template))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.loader is loader and entry.settings is settings:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.pipeline
            self.misses += 1
        pipeline = Pipeline.from_template(template, loader=loader, settings=settings)
        if self._size:
            with self._lock:
                self._entries[key] = _Entry(loader, settings, pipeline)
                self._entries.move_to_end(key)
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        return pipeline
