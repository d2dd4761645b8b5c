"""``python -m ddeutil.workflow.app``: the scheduler daemon in the foreground."""

from .daemon import main

raise SystemExit(main())
