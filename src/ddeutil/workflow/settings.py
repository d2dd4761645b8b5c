"""Settings: every ``WORKFLOW_*`` environment variable, read once.

:meth:`Settings.from_env` is called at the edges (CLI, daemon, API) and the frozen
result is passed down. Nothing else in the library reads ``os.environ`` for
configuration. A bad value stops start-up with a :class:`SettingsError` naming the
variable and the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import SettingsError
from .limits import DEFAULT_LIMITS, MAX_DEPTH_CEILING, ConfLimits

__all__ = [
    "ENV_VARS",
    "HOOKS_VAR",
    "MAX_RETENTION_DAYS",
    "NOTIFY_EVENTS",
    "QUEUE_NAME",
    "QUEUE_RULE",
    "ExecutorKind",
    "NotifyEvent",
    "Settings",
    "check_address",
    "check_webhook_url",
]

T = TypeVar("T")
ExecutorKind = Literal["local", "celery"]

QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A Celery queue name this product accepts (setting and the pipeline's ``queue:`` key)."""
QUEUE_RULE = (
    "expected a queue name: letters, digits, '_', '.', '-', at most 64, not starting with a symbol"
)

NotifyEvent = Literal["failure", "recovered", "missed"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)
"""The events a notification tells (setting and the pipeline's ``notify.on``)."""
MAX_WEBHOOK_URL = 2048
"""Longest webhook URL accepted."""
MAX_NOTIFY_ADDRESSES = 20
"""Most email recipients of one notification."""
_ADDRESS = re.compile(r"[^@\s,<>]{1,64}@[A-Za-z0-9.-]{1,253}")


def check_webhook_url(url: str) -> str:
    """Return ``url`` if it is an ``http(s)`` URL with a host; raise ``ValueError`` otherwise.

    The message never repeats the URL (it may hold a token).
    """
    if len(url) > MAX_WEBHOOK_URL:
        raise ValueError(f"a webhook URL is at most {MAX_WEBHOOK_URL} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ValueError("a webhook URL must be an http:// or https:// URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("a webhook URL must be an http:// or https:// URL with a host")
    return url


def check_address(address: str) -> str:
    """Return ``address`` if it looks like ``name@domain``; raise ``ValueError`` otherwise."""
    if not _ADDRESS.fullmatch(address):
        raise ValueError(f"{address[:80]!r} is not an email address (name@domain)")
    return address


_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f"})


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected a boolean (true/false, 1/0, yes/no, on/off)")


def _parse_positive_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def _parse_count(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value < 0:
        raise ValueError("expected a whole number of at least 0")
    return value


def _parse_depth(raw: str) -> int:
    value = _parse_positive_int(raw)
    if value > MAX_DEPTH_CEILING:
        raise ValueError(f"expected a whole number from 1 to {MAX_DEPTH_CEILING}")
    return value


def _parse_positive_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("expected a positive, finite number of seconds")
    return value


def _parse_limit_seconds(raw: str) -> float | None:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("expected a number of seconds (0: no limit)") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError("expected a finite number of seconds, 0 or more (0: no limit)")
    return value or None


MAX_RETENTION_DAYS = 36_500
"""Longest retention accepted, in days (100 years): a cutoff is always a real date."""


def _parse_retention_days(raw: str) -> float | None:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("expected a number of days (0: keep forever)") from None
    if not 0 <= value <= MAX_RETENTION_DAYS:
        raise ValueError(
            f"expected a number of days from 0 to {MAX_RETENTION_DAYS} (0: keep forever)"
        )
    return value or None


def _parse_csv(raw: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not items:
        raise ValueError("expected a comma-separated list with at least one item")
    return items


def _parse_events(raw: str) -> tuple[NotifyEvent, ...]:
    if raw.strip().lower() == "none":
        return ()
    events: list[NotifyEvent] = []
    for item in _parse_csv(raw):
        name = item.lower()
        if name not in NOTIFY_EVENTS:
            raise ValueError(f"expected events among {', '.join(NOTIFY_EVENTS)} (or none)")
        events.append(name)  # checked against NOTIFY_EVENTS
    return tuple(dict.fromkeys(events))


def _parse_webhook_url(raw: str) -> str:
    return check_webhook_url(raw.strip())


def _parse_public_url(raw: str) -> str:
    url = raw.strip()
    try:
        parts = urlsplit(url)
        fits = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        fits = False
    if not fits or len(url) > MAX_WEBHOOK_URL:
        raise ValueError("expected the http:// or https:// URL users reach the API at")
    return url


def _parse_addresses(raw: str) -> tuple[str, ...]:
    addresses = tuple(check_address(item) for item in _parse_csv(raw))
    if len(addresses) > MAX_NOTIFY_ADDRESSES:
        raise ValueError(f"expected at most {MAX_NOTIFY_ADDRESSES} addresses")
    return addresses


def _parse_smtp_url(raw: str) -> str:
    url = raw.strip()
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise ValueError("expected smtp://[user:password@]host[:port] or smtps://...") from None
    if parts.scheme not in ("smtp", "smtps") or not host:
        raise ValueError("expected smtp://[user:password@]host[:port] or smtps://...")
    return url


def _redacted(raw: str) -> str:
    """A secret setting's value for messages: its URL scheme at most."""
    scheme, sep, _ = raw.strip().partition("://")
    return f"{scheme}://***" if sep and scheme.isalnum() else "***"


def _parse_zone(raw: str) -> ZoneInfo:
    try:
        return ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown IANA timezone") from None


def _parse_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _parse_port(raw: str) -> int | None:
    try:
        value = int(raw.strip() or "0")
    except ValueError:
        raise ValueError("expected a TCP port number (0 or empty: off)") from None
    if not 0 <= value <= 65535:
        raise ValueError("expected a TCP port number from 1 to 65535 (0 or empty: off)")
    return value or None


def _parse_host(raw: str) -> str:
    host = raw.strip()
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise ValueError("expected a host name or IP address to listen on")
    return host


def _parse_optional_str(raw: str) -> str | None:
    return raw or None


def _parse_path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("expected a path")
    return Path(raw.strip())


def _parse_paths(raw: str) -> tuple[Path, ...]:
    return tuple(Path(item) for item in _parse_csv(raw))


def _parse_db_url(raw: str) -> str:
    url = raw.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in {
        "sqlite",
        "postgresql",
        "postgres",
        "postgresql+asyncpg",
        "postgresql+psycopg",
    }:
        raise ValueError("expected sqlite:///<path> or postgresql://...")
    return url


def _parse_executor(raw: str) -> ExecutorKind:
    value = raw.strip().lower()
    if value == "local":
        return "local"
    if value == "celery":
        return "celery"
    raise ValueError("expected local or celery")


def _parse_broker_url(raw: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in {"amqp", "amqps", "pyamqp", "redis", "rediss"}:
        raise ValueError("expected amqp://... (RabbitMQ) or redis://... (Redis)")
    return url


def _parse_queue(raw: str) -> str:
    name = raw.strip()
    if not QUEUE_NAME.fullmatch(name):
        raise ValueError(QUEUE_RULE)
    return name


HOOKS_VAR = "WORKFLOW_CORE_PATH_HOOKS"


@dataclass(frozen=True)
class _Var:
    name: str
    parse: Callable[[str], Any]
    default: str | None
    doc: str


def _var(
    name: str, parse: Callable[[str], Any], default: str | None, doc: str, *, secret: bool = False
) -> Any:
    return field(repr=not secret, metadata={"var": _Var(name, parse, default, doc)})


@dataclass(frozen=True)
class Settings:
    """Frozen configuration of one process.

    Relative paths are resolved against ``root_path`` when the settings are
    built, so every consumer sees absolute paths.
    """

    root_path: Path = _var(
        "WORKFLOW_ROOT_PATH",
        _parse_path,
        ".",
        "root of the application; relative paths below are under it",
    )
    conf_path: Path = _var(
        "WORKFLOW_CORE_PATH_CONF",
        _parse_path,
        "conf",
        "folder searched recursively for `*.yml` / `*.yaml` templates",
    )
    registry: tuple[str, ...] = _var(
        "WORKFLOW_CORE_REGISTRY",
        _parse_csv,
        "ddeutil.workflow",
        "comma-separated import prefixes searched for hooks (`<prefix>.<group>`) and short `type` names",
    )
    hook_paths: tuple[Path, ...] = _var(
        "WORKFLOW_CORE_PATH_HOOKS",
        _parse_paths,
        "hooks",
        "comma-separated folders put first on the import path where hooks are looked up (`<folder>/<package>/<group>.py`); relative to the root, absolute allowed; a folder you set must exist, the default `hooks` is skipped when absent",
    )
    registry_filter: tuple[str, ...] = _var(
        "WORKFLOW_CORE_REGISTRY_FILTER",
        _parse_csv,
        "ddeutil.workflow.templating",
        "comma-separated modules whose `@custom_filter` functions become template filters",
    )
    timezone: ZoneInfo = _var(
        "WORKFLOW_CORE_TIMEZONE",
        _parse_zone,
        "Asia/Bangkok",
        "IANA zone for schedules that name none (run ids are always UTC)",
    )
    stage_default_id: bool = _var(
        "WORKFLOW_CORE_STAGE_DEFAULT_ID",
        _parse_bool,
        "true",
        "a stage without `id` records its outputs under an id derived from its name",
    )
    stage_raise_error: bool = _var(
        "WORKFLOW_CORE_STAGE_RAISE_ERROR",
        _parse_bool,
        "true",
        "`true`: a failing stage fails its job; `false`: the stage records the error and the job goes on",
    )
    stage_output_limit: int = _var(
        "WORKFLOW_CORE_STAGE_OUTPUT_LIMIT",
        _parse_positive_int,
        "1048576",
        "bytes a bash stage keeps of each of `stdout` and `stderr` (its start and end; the middle is dropped and marked)",
    )
    stage_log_lines: int = _var(
        "WORKFLOW_CORE_STAGE_LOG_LINES",
        _parse_count,
        "1000",
        "output lines of one stage try logged at INFO (the run's log, the console); the rest are counted in one `... N more lines not logged` line; `0`: none",
    )
    max_pipeline_poking: int = _var(
        "WORKFLOW_CORE_MAX_PIPELINE_POKING",
        _parse_positive_int,
        "4",
        "how many schedules (`on` entries) of one pipeline are evaluated/released concurrently",
    )
    pipeline_timeout: float | None = _var(
        "WORKFLOW_CORE_PIPELINE_TIMEOUT",
        _parse_limit_seconds,
        "0",
        "seconds a pipeline run may take before it is cancelled and recorded FAILED (timeout), unless its `timeout:` key says otherwise; `0`: no limit",
    )
    max_job_parallel: int = _var(
        "WORKFLOW_CORE_MAX_JOB_PARALLEL",
        _parse_positive_int,
        "2",
        "jobs of one pipeline run at once (threads); `1` = sequential",
    )
    conf_max_bytes: int = _var(
        "WORKFLOW_CORE_CONF_MAX_BYTES",
        _parse_positive_int,
        str(DEFAULT_LIMITS.max_bytes),
        "largest conf file read, in bytes; a larger file is reported, not parsed",
    )
    conf_max_nodes: int = _var(
        "WORKFLOW_CORE_CONF_MAX_NODES",
        _parse_positive_int,
        str(DEFAULT_LIMITS.max_nodes),
        "most YAML nodes one conf file expands to, each alias counted at its expanded size",
    )
    conf_max_depth: int = _var(
        "WORKFLOW_CORE_CONF_MAX_DEPTH",
        _parse_depth,
        str(DEFAULT_LIMITS.max_depth),
        f"deepest nesting of mappings and lists in a conf file (at most {MAX_DEPTH_CEILING})",
    )
    matrix_max_combinations: int = _var(
        "WORKFLOW_CORE_MATRIX_MAX_COMBINATIONS",
        _parse_positive_int,
        str(DEFAULT_LIMITS.max_combinations),
        "most matrix combinations of one job (counted before expanding)",
    )
    matrix_max_include: int = _var(
        "WORKFLOW_CORE_MATRIX_MAX_INCLUDE",
        _parse_positive_int,
        str(DEFAULT_LIMITS.max_include),
        "most `include` entries, and most `exclude` entries, of one job's strategy",
    )
    log_enable_write: bool = _var(
        "WORKFLOW_LOG_ENABLE_WRITE",
        _parse_bool,
        "true",
        "write a log file per run (run records and release claims are always kept)",
    )
    log_path: Path = _var(
        "WORKFLOW_LOG_PATH", _parse_path, ".workflow/logs", "folder of the per-run log files"
    )
    log_level: str = _var(
        "WORKFLOW_LOG_LEVEL",
        _parse_level,
        "INFO",
        "level of the console log (DEBUG, INFO, WARNING, ERROR)",
    )
    app_process_worker: int = _var(
        "WORKFLOW_APP_PROCESS_WORKER",
        _parse_positive_int,
        "2",
        "worker processes of the scheduler daemon",
    )
    app_pipeline_per_process: int = _var(
        "WORKFLOW_APP_PIPELINE_PER_PROCESS",
        _parse_positive_int,
        "100",
        "pipelines one worker process runs at once, on threads",
    )
    app_stop_timeout: float = _var(
        "WORKFLOW_APP_STOP_TIMEOUT",
        _parse_positive_float,
        "60",
        "seconds a stopping daemon waits for running pipelines before cancelling them",
    )
    app_catchup_limit: int = _var(
        "WORKFLOW_APP_CATCHUP_LIMIT",
        _parse_positive_int,
        "100",
        "most releases one schedule replays with `catchup: all` after downtime (the oldest are skipped, and logged)",
    )
    app_end_journal: Path = _var(
        "WORKFLOW_APP_END_JOURNAL",
        _parse_path,
        ".workflow/run-ends.jsonl",
        "file keeping run ends the run store refused (disk full, database down); replayed into the store at the next start",
    )
    app_lease_seconds: float = _var(
        "WORKFLOW_APP_LEASE_SECONDS",
        _parse_positive_float,
        "30",
        "seconds without a heartbeat after which another daemon on a shared (PostgreSQL) run store takes a daemon's work over; it beats every third of that",
    )
    app_health_stale: float = _var(
        "WORKFLOW_APP_HEALTH_STALE",
        _parse_positive_float,
        "180",
        "seconds after the last heartbeat when `workflow health` reports the daemon as stale",
    )
    app_metrics_port: int | None = _var(
        "WORKFLOW_APP_METRICS_PORT",
        _parse_port,
        "0",
        "TCP port on which the daemon serves Prometheus metrics (extra `metrics`); `0` or empty: off",
    )
    app_metrics_host: str = _var(
        "WORKFLOW_APP_METRICS_HOST",
        _parse_host,
        "127.0.0.1",
        "address the daemon's metrics port listens on (`0.0.0.0`: every interface)",
    )
    run_retention_days: float | None = _var(
        "WORKFLOW_RUN_RETENTION_DAYS",
        _parse_retention_days,
        "30",
        "days ended runs are kept (records, release claims, log files); the daemon prunes older ones once a day, `workflow prune` on demand; `0`: keep forever",
    )
    app_executor: ExecutorKind = _var(
        "WORKFLOW_APP_EXECUTOR",
        _parse_executor,
        "local",
        "where runs execute: `local` (the daemon's worker processes, the API's threads) or `celery` (`workflow worker` processes, through `WORKFLOW_CELERY_BROKER_URL`)",
    )
    celery_broker_url: str | None = _var(
        "WORKFLOW_CELERY_BROKER_URL",
        _parse_broker_url,
        "",
        "broker of the Celery executor: `amqp://user:pass@host:5672//` (RabbitMQ) or `redis://host:6379/0`",
        secret=True,
    )
    celery_queue: str = _var(
        "WORKFLOW_CELERY_QUEUE",
        _parse_queue,
        "workflow",
        "queue of runs whose pipeline names no `queue:`; `workflow worker` consumes it unless given `--queues`",
    )
    celery_visibility_timeout: float = _var(
        "WORKFLOW_CELERY_VISIBILITY_TIMEOUT",
        _parse_positive_float,
        "86400",
        "seconds a delivered run message may stay unacknowledged before Redis delivers it again; keep it above your longest run (a second delivery of a started run does nothing)",
    )
    celery_max_retries: int = _var(
        "WORKFLOW_CELERY_MAX_RETRIES",
        _parse_positive_int,
        "3",
        "times a worker retries a run message it could not start (run store unreachable), with backoff, before giving it up",
    )
    celery_resend_seconds: float = _var(
        "WORKFLOW_CELERY_RESEND_SECONDS",
        _parse_positive_float,
        "120",
        "a dispatched run still PENDING after this long is sent again if its queue is empty (a message lost with a broker that keeps nothing); the wait doubles each time",
    )
    api_db_url: str = _var(
        "WORKFLOW_API_DB_URL",
        _parse_db_url,
        "",
        "run store; `sqlite:///<path>` or `postgresql://...` (`+asyncpg` / `+psycopg` forms accepted); default `sqlite:///<root>/.workflow/runs.db`",
    )
    api_token: str | None = _var(
        "WORKFLOW_API_TOKEN",
        _parse_optional_str,
        "",
        "bearer token the REST API requires on every route but health",
        secret=True,
    )
    api_insecure: bool = _var(
        "WORKFLOW_API_INSECURE",
        _parse_bool,
        "false",
        "`true` lets the API start without a token (local use only; logged loudly)",
    )
    api_ui: bool = _var(
        "WORKFLOW_API_UI",
        _parse_bool,
        "true",
        "`false` turns the web dashboard under `/ui/` off (the REST API stays)",
    )
    api_run_workers: int = _var(
        "WORKFLOW_API_RUN_WORKERS",
        _parse_positive_int,
        "4",
        "pipelines the API process runs at once for manual triggers",
    )
    api_public_url: str | None = _var(
        "WORKFLOW_API_PUBLIC_URL",
        _parse_public_url,
        "",
        "the URL users reach the API at (`https://workflow.example.com`); notifications link to `<url>/ui/runs/<run id>`",
    )
    notify_on: tuple[NotifyEvent, ...] = _var(
        "WORKFLOW_NOTIFY_ON",
        _parse_events,
        "failure,recovered,missed",
        "events notified for a pipeline without `notify.on`: `failure`, `recovered`, `missed` (comma-separated), or `none`",
    )
    notify_webhook_url: str | None = _var(
        "WORKFLOW_NOTIFY_WEBHOOK_URL",
        _parse_webhook_url,
        "",
        "http(s) URL notices are POSTed to (JSON, header `Idempotency-Key`) for a pipeline without `notify.webhook`",
        secret=True,
    )
    notify_email_to: tuple[str, ...] | None = _var(
        "WORKFLOW_NOTIFY_EMAIL_TO",
        _parse_addresses,
        "",
        "addresses (comma-separated) notices are mailed to for a pipeline without `notify.email`",
    )
    notify_email_from: str = _var(
        "WORKFLOW_NOTIFY_EMAIL_FROM",
        check_address,
        "workflow@localhost",
        "sender address of notification emails",
    )
    notify_smtp_url: str | None = _var(
        "WORKFLOW_NOTIFY_SMTP_URL",
        _parse_smtp_url,
        "",
        "mail server of notification emails: `smtp://[user:password@]host[:port]` (STARTTLS when offered) or `smtps://...` (TLS)",
        secret=True,
    )
    notify_late_after: float = _var(
        "WORKFLOW_NOTIFY_LATE_AFTER",
        _parse_positive_float,
        "300",
        "seconds past its time after which a scheduled release not started is notified as `missed` (pipeline key `notify.late_after`)",
    )
    notify_api_sender: bool = _var(
        "WORKFLOW_NOTIFY_API_SENDER",
        _parse_bool,
        "false",
        "`true`: the API process sends the notification outbox too (as the daemon does), for a store without a daemon",
    )
    notify_max_attempts: int = _var(
        "WORKFLOW_NOTIFY_MAX_ATTEMPTS",
        _parse_positive_int,
        "8",
        "attempts to deliver one notice (backoff 5 s doubling, at most 15 min apart) before it is given up and logged",
    )
    store_given: bool = field(default=False, metadata={})
    """Derived, not a variable: ``WORKFLOW_API_DB_URL`` was set, so the run store is
    chosen rather than the default one (``workflow run`` records its run then)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default: the process environment).

        Raises:
            SettingsError: a variable holds a value that cannot be used; the
                message names the variable and the value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if "var" not in f.metadata:  # derived in _resolved
                continue
            var: _Var = f.metadata["var"]
            raw = env.get(var.name)
            if raw is None or (raw == "" and var.default is not None):
                raw = var.default or ""
                if not raw:
                    values[f.name] = None
                    continue
            try:
                values[f.name] = var.parse(raw)
            except ValueError as exc:
                shown = raw if f.repr else _redacted(raw)  # a secret's value never shown
                raise SettingsError(var.name, shown, str(exc)) from None
        settings = cls._resolved(values)
        if env.get(HOOKS_VAR, "").strip():  # folders the user named must be there
            for folder in settings.hook_paths:
                if not folder.is_dir():
                    raise SettingsError(
                        HOOKS_VAR, env[HOOKS_VAR], f"folder {str(folder)!r} does not exist"
                    )
        return settings

    @classmethod
    def _resolved(cls, values: dict[str, Any]) -> Settings:
        root = Path(values["root_path"]).expanduser().resolve()
        values["root_path"] = root
        for name in ("conf_path", "log_path", "app_end_journal"):
            values[name] = (root / values[name]).resolve()
        values["hook_paths"] = tuple(
            dict.fromkeys((root / p.expanduser()).resolve() for p in values["hook_paths"])
        )
        values["store_given"] = bool(values["api_db_url"])
        if not values["api_db_url"]:
            values["api_db_url"] = f"sqlite:///{root / '.workflow' / 'runs.db'}"
        if values["app_executor"] == "celery" and not values["celery_broker_url"]:
            raise SettingsError(
                "WORKFLOW_CELERY_BROKER_URL", "", "required when WORKFLOW_APP_EXECUTOR is celery"
            )
        return cls(**values)

    @property
    def conf_limits(self) -> ConfLimits:
        """The limits of reading conf (see :mod:`ddeutil.workflow.limits`)."""
        return ConfLimits(
            max_bytes=self.conf_max_bytes,
            max_nodes=self.conf_max_nodes,
            max_depth=self.conf_max_depth,
            max_combinations=self.matrix_max_combinations,
            max_include=self.matrix_max_include,
        )

    def evolve(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (for tests and embedding apps)."""
        return replace(self, **changes)


def env_table() -> list[tuple[str, str, str]]:
    """Return (variable, default, meaning) for every setting, in declaration order."""
    rows = []
    for f in fields(Settings):
        if "var" not in f.metadata:  # derived, not a variable
            continue
        var: _Var = f.metadata["var"]
        rows.append((var.name, var.default or "", var.doc))
    return rows


ENV_VARS: tuple[str, ...] = tuple(row[0] for row in env_table())
