"""Per-connection session settings for the worker's own connections."""

import threading

from django.db import connections

_state = threading.local()


def relax_commits(database: str) -> None:
    """Let this thread's PostgreSQL connection commit without waiting for the WAL flush.

    Used only on the worker's bookkeeping connections (claims, outcomes, heartbeats). Losing
    such a commit in a database crash is safe: a lost claim leaves the job READY, a lost
    outcome leaves it RUNNING until its lease runs out and it is rescued (at-least-once).
    A task's own queries use other connections and keep the server's setting.
    """
    connection = connections[database]
    if connection.vendor != "postgresql":
        return
    connection.ensure_connection()
    raw = connection.connection
    if getattr(_state, database, None) is not raw:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
        setattr(_state, database, raw)
