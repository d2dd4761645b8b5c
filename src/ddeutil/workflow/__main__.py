"""``python -m ddeutil.workflow``: the ``workflow`` CLI."""

from .cli import main

raise SystemExit(main())
