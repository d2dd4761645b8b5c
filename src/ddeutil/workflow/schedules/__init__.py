"""The schedule language: cron expressions, DST rules, ``On`` schedules and the planner.

Below the engine and the scheduler; imports only the foundation modules at the root.
"""
