"""Command-line options shared by ``python -m ddeutil.workflow.app`` and ``workflow scheduler``.

Kept apart from :mod:`.daemon` so that building the CLI parser does not import
the engine (``workflow health`` runs every minute under Docker and systemd).
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the daemon's options to ``parser``."""
    parser.add_argument(
        "--once",
        action="store_true",
        help="recover, tick once now, wait for the dispatched runs (up to the stop "
        "timeout) and exit: an operations and testing aid",
    )
