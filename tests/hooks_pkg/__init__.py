"""Hooks for the engine tests: put ``tests/`` on ``sys.path`` and use ``hooks_pkg`` as a prefix."""
