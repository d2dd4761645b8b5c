"""Start-up checks that turn a silent misconfiguration into a message.

Two policies, applied by every entry point (CLI, scheduler daemon, REST API,
Celery worker) once, right after logging is configured:

* **Unknown variables warn.** A ``WORKFLOW_*`` environment variable that is not a
  setting (:data:`~ddeutil.workflow.settings.ENV_VARS`) is most likely a typo
  (``WORKFLOW_APP_MAX_PROCESS``); it is logged once as a warning, with the closest
  known name when one is close enough, and start-up goes on. Variables starting
  with :data:`ALLOWED_PREFIX` (``WORKFLOW_TEST_``) belong to the test-suite and are
  never reported.
* **A missing conf folder stops the commands that need one.** The scheduler daemon,
  ``workflow scheduler``, ``workflow validate`` and ``workflow list`` exit with
  status 2 and a message naming the folder (:func:`conf_path_problem`), instead of
  running with no pipelines.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from .settings import ENV_VARS, Settings

__all__ = [
    "ALLOWED_PREFIX",
    "UnknownVariable",
    "conf_path_problem",
    "unknown_variables",
    "warn_unknown_variables",
]

logger = logging.getLogger(__name__)

PREFIX = "WORKFLOW_"
ALLOWED_PREFIX = "WORKFLOW_TEST_"
"""Variables under this prefix are the test-suite's own and never warned about."""


@dataclass(frozen=True)
class UnknownVariable:
    """A ``WORKFLOW_*`` variable that is not a setting, and the closest setting's name."""

    name: str
    closest: str | None

    def message(self) -> str:
        """The warning's text."""
        hint = f"; did you mean {self.closest}?" if self.closest else ""
        return f"unknown setting {self.name} is ignored{hint}"


def unknown_variables(environ: Mapping[str, str]) -> list[UnknownVariable]:
    """Every ``WORKFLOW_*`` name of ``environ`` that no setting reads, sorted by name."""
    known = set(ENV_VARS)
    return [
        UnknownVariable(name, _closest(name))
        for name in sorted(environ)
        if name.startswith(PREFIX) and name not in known and not name.startswith(ALLOWED_PREFIX)
    ]


def _closest(name: str) -> str | None:
    """The known variable nearest to ``name``, compared without the common ``WORKFLOW_``.

    Every name shares that prefix, which alone would make anything look close. The same
    words in another order (``WORKFLOW_CORE_CONF_PATH``) are the closest of all.
    """
    words = sorted(name.split("_"))
    for var in ENV_VARS:
        if sorted(var.split("_")) == words:
            return var
    tails = {var.removeprefix(PREFIX): var for var in ENV_VARS}
    found = difflib.get_close_matches(name.removeprefix(PREFIX), list(tails), n=1)
    return tails[found[0]] if found else None


def warn_unknown_variables(environ: Mapping[str, str]) -> list[UnknownVariable]:
    """Log one warning per unknown ``WORKFLOW_*`` variable; return them (tests, callers)."""
    found = unknown_variables(environ)
    for item in found:
        logger.warning(item.message())
    return found


def conf_path_problem(settings: Settings) -> str | None:
    """The reason the conf folder cannot be read, or ``None`` when it is a folder."""
    path = settings.conf_path
    if path.is_dir():
        return None
    what = "is not a folder" if path.exists() else "does not exist"
    return (
        f"conf folder {str(path)!r} {what} "
        f"(WORKFLOW_CORE_PATH_CONF, relative to WORKFLOW_ROOT_PATH {str(settings.root_path)!r})"
    )
