"""Scheduling: the scheduler tick, its catalog of pipelines and the overlap policy."""
