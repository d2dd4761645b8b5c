"""The execution engine: params, templating, conditions, stages, jobs and pipelines.

Usable alone (``Pipeline.from_loader(name).execute(params)``); imports the schedule
language and the foundation, never the store, dispatch or the scheduler.
"""
