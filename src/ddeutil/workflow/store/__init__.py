"""The run store: runs, release claims, the watermark and the heartbeat.

:func:`open_store` turns a URL (``WORKFLOW_API_DB_URL``) into a store:

=====================================================  ==============================
URL                                                    store
=====================================================  ==============================
``sqlite:///abs/path/runs.db`` (``sqlite:////abs/...``  :class:`SqliteRunStore`; the
too), query ``timeout=30``, ``synchronous=normal``     parent folders are created
``sqlite://:memory:``                                  SQLite in this process only
``memory://``                                          a fresh :class:`MemoryRunStore`
``postgresql://user@host/db`` (also ``postgres://``,   :class:`PostgresRunStore`; query
``postgresql+psycopg://``, ``postgresql+asyncpg://``)  ``schema=``, ``pool_size=``
=====================================================  ==============================

See :mod:`.base` for the contract every store keeps.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..errors import StoreError
from .base import (
    Claim,
    DuplicateRun,
    ReleaseKey,
    RunFilter,
    RunRecord,
    RunState,
    RunStore,
    StatusFilter,
    TriggerKind,
)
from .memory import MemoryRunStore
from .postgres import PostgresRunStore
from .sqlite import SqliteRunStore

__all__ = [
    "Claim",
    "DuplicateRun",
    "MemoryRunStore",
    "PostgresRunStore",
    "ReleaseKey",
    "RunFilter",
    "RunRecord",
    "RunState",
    "RunStore",
    "SqliteRunStore",
    "StatusFilter",
    "TriggerKind",
    "open_store",
]

_POSTGRES_SCHEMES = frozenset(
    {"postgresql", "postgres", "postgresql+psycopg", "postgresql+asyncpg", "postgresql+psycopg2"}
)


def _query(url: str, text: str, known: set[str]) -> dict[str, str]:
    options = dict(parse_qsl(text, keep_blank_values=True))
    unknown = sorted(set(options) - known)
    if unknown:
        raise StoreError(
            f"unknown option(s) {', '.join(unknown)} in run store URL {url!r}; "
            f"supported: {', '.join(sorted(known))}"
        )
    return options


def _number(url: str, name: str, raw: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(raw)
    except ValueError:
        raise StoreError(
            f"option {name}={raw!r} of run store URL {url!r} is not a number"
        ) from None
    if value <= 0:
        raise StoreError(f"option {name}={raw!r} of run store URL {url!r} must be positive")
    return value


def _open_sqlite(url: str, rest: str) -> SqliteRunStore:
    location, _, query = rest.partition("?")
    options = _query(url, query, {"timeout", "synchronous"})
    timeout = _number(url, "timeout", options.get("timeout", "30"), float)
    synchronous = options.get("synchronous", "NORMAL")
    if location in (":memory:", "/:memory:"):
        return SqliteRunStore(":memory:", busy_timeout=timeout, synchronous=synchronous)
    path = unquote(location)
    if not path.startswith("/") or path.strip("/") == "":
        raise StoreError(
            f"run store URL {url!r} needs an absolute file path: sqlite:///abs/path/runs.db"
        )
    return SqliteRunStore("/" + path.lstrip("/"), busy_timeout=timeout, synchronous=synchronous)


def _open_postgres(url: str, rest: str) -> RunStore:
    parts = urlsplit("postgresql://" + rest)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {"schema", "pool_size"}
    options = {k: v for k, v in pairs if k in ours}
    schema = options.get("schema") or None
    if schema is not None and not (
        schema.replace("_", "a").isalnum() and schema.isascii() and not schema[0].isdigit()
    ):
        raise StoreError(f"schema {schema!r} in run store URL is not a plain SQL identifier")
    pool_size = int(_number(url, "pool_size", options.get("pool_size", "5"), int))
    conninfo = urlunsplit(
        parts._replace(query=urlencode([(k, v) for k, v in pairs if k not in ours]))
    )
    return PostgresRunStore(conninfo, schema=schema, pool_size=pool_size)


def open_store(url: str) -> RunStore:
    """Open the run store a URL names (see the module docstring for the forms).

    Each call opens a new store object; worker processes call it themselves
    rather than inheriting the parent's store. SQLite and PostgreSQL stores
    create or migrate their schema on open.

    Raises:
        StoreError: the URL is malformed or names an unknown scheme, the store
            cannot be opened, or psycopg is missing for a PostgreSQL URL.
    """
    scheme, sep, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not sep:
        raise StoreError(f"run store URL {url!r} has no scheme (sqlite://, postgresql://, ...)")
    if scheme == "memory":
        if rest:
            raise StoreError(f"run store URL {url!r}: use plain memory://")
        return MemoryRunStore()
    if scheme == "sqlite":
        return _open_sqlite(url, rest)
    if scheme in _POSTGRES_SCHEMES:
        return _open_postgres(url, rest)
    raise StoreError(
        f"unknown run store scheme {scheme!r} in {url!r}; "
        "expected sqlite:///<path>, postgresql://... or memory://"
    )
