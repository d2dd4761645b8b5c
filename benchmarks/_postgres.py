"""The PostgreSQL server the fleet benchmarks use (run them as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import os

__all__ = ["pg_base"]


def pg_base(explicit: str | None) -> str:
    """The first reachable PostgreSQL URL (``--pg-url``, env, then the defaults)."""
    import psycopg

    if explicit:
        candidates = [explicit]
    elif os.environ.get("WORKFLOW_TEST_POSTGRES_URL"):
        candidates = [os.environ["WORKFLOW_TEST_POSTGRES_URL"]]
    else:
        users = [os.environ["PGUSER"]] if os.environ.get("PGUSER") else ["root", "postgres"]
        candidates = [f"postgresql://{user}@127.0.0.1:5432/test" for user in users]
    errors = []
    for url in candidates:
        try:
            psycopg.connect(url, connect_timeout=3).close()
        except psycopg.Error as exc:
            errors.append(f"{url}: {str(exc).strip().splitlines()[0]}")
        else:
            return url
    raise SystemExit("PostgreSQL not reachable: " + "; ".join(errors))
