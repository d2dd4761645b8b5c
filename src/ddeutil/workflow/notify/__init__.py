"""Notifications: a failure, a recovery or a missed release, told by webhook or email.

* :mod:`.rule`: the pipeline's ``notify:`` key and its defaults
  (``WORKFLOW_NOTIFY_*``), resolved into :class:`~.rule.Targets`.
* :mod:`.notices`: the outbox rows a run's end or a late release makes
  (payload masked and size-capped).
* :mod:`.late`: finding releases not started ``late_after`` seconds past their time.
* :mod:`.channels`: the webhook POST and the email.
* :mod:`.sender`: the sender that leases outbox rows and delivers them, with
  retries and backoff.

The rows live in the run store's outbox (:mod:`ddeutil.workflow.store.outbox`),
written in the same transaction as the state change they report.
"""
