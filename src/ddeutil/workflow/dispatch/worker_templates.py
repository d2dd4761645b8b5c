"""The pipelines of a worker's own conf folder, by name and template version.

A ``workflow worker`` (:mod:`.celery_worker`) runs the template version the
daemon dispatched, read from its own copy of the conf folder (whose path may
differ: a version does not depend on it). :class:`WorkerTemplates` re-reads the
folder when a file changed (checked at most every :data:`REFRESH_SECONDS`, or
at once when a message names a version not seen yet) and keeps the versions it
has seen (:data:`KEPT_VERSIONS`), so a run of the daemon's last good version
still runs after an edit. A version it does not have is an error naming both
versions, never a different pipeline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from ..loader import Loader, RawTemplate, template_version

__all__ = ["KEPT_VERSIONS", "REFRESH_SECONDS", "WorkerTemplates"]

logger = logging.getLogger(__name__)

KEPT_VERSIONS = 64
"""Template versions kept besides the current ones (the last good ones)."""
REFRESH_SECONDS = 2.0
"""The conf folder is re-checked for changes at most this often."""


class WorkerTemplates:
    """The pipelines of the worker's conf folder, by name and version.

    The folder is re-read when a file changed (checked at most every
    :data:`REFRESH_SECONDS`, or at once when a message names a version not seen
    yet); versions seen before are kept (:data:`KEPT_VERSIONS`).
    """

    def __init__(self, loader: Loader) -> None:
        self._loader = loader
        self._checked = time.monotonic()
        self._kept: OrderedDict[tuple[str, str], RawTemplate] = OrderedDict()
        self._versions: dict[str, tuple[RawTemplate, str]] = {}
        self._lock = threading.Lock()

    @property
    def loader(self) -> Loader:
        with self._lock:
            return self._loader

    def get(self, pipeline: str, version: str | None) -> RawTemplate:
        """The template of ``pipeline`` in ``version`` (``None``: the current one).

        Raises:
            LookupError: this worker has no such pipeline, or not in that version
                (the message says which version it has).
        """
        found = self._find(pipeline, version, refresh=False)
        if found is None:
            found = self._find(pipeline, version, refresh=True)
        if found is not None:
            return found
        current = self._current(pipeline)
        if current is None:
            raise LookupError(
                f"pipeline {pipeline!r} is not in this worker's conf folder "
                f"({self.loader.conf_path}); deploy the same conf folder to every worker"
            )
        raise LookupError(
            f"this worker has pipeline {pipeline!r} in version {template_version(current)}, "
            f"the run was dispatched with version {version}; deploy the same conf folder "
            "to the daemon and every worker"
        )

    def _find(self, pipeline: str, version: str | None, *, refresh: bool) -> RawTemplate | None:
        self._refresh(force=refresh)
        current = self._current(pipeline)
        with self._lock:
            if current is not None:
                seen = self._versions.get(pipeline)
                if seen is None or seen[0] is not current:  # digest once per template read
                    seen = (current, template_version(current))
                    self._versions[pipeline] = seen
                    self._kept[(pipeline, seen[1])] = current
                    while len(self._kept) > KEPT_VERSIONS:
                        self._kept.popitem(last=False)
                if version is None or version == seen[1]:
                    return current
            if version is None:
                return None
            found = self._kept.get((pipeline, version))
            if found is not None:
                self._kept.move_to_end((pipeline, version))
            return found

    def _current(self, pipeline: str) -> RawTemplate | None:
        try:
            return self.loader.get(pipeline)
        except Exception:
            return None

    def _refresh(self, *, force: bool) -> None:
        with self._lock:
            if not force and time.monotonic() - self._checked < REFRESH_SECONDS:
                return
            self._checked = time.monotonic()
            loader = self._loader
        try:
            fresh = loader.refreshed()
        except Exception:
            logger.exception("re-reading the conf folder failed; keeping the last one")
            return
        with self._lock:
            self._loader = fresh
