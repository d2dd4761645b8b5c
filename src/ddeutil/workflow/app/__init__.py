"""The scheduler daemon application: ``python -m ddeutil.workflow.app``.

Runs in the foreground (systemd, Docker, a terminal): takes the run store's
scheduler lock, recovers what a previous process left behind, ticks at every
minute boundary and stops cleanly on SIGTERM / SIGINT. See :mod:`.daemon` for
the lifecycle and signal policy. Importing this package is cheap: the engine is
imported by :mod:`.daemon` only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Daemon", "main", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import daemon

        return getattr(daemon, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
