"""Dispatch: the executor seam and its implementations (local processes, API threads).

The seam (request and event records, the :class:`Executor` protocol) imports neither
the engine nor a store; the modules that execute a request do.
"""
