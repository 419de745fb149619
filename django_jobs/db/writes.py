"""Per-connection session settings for the worker's own connections."""

import contextlib
import threading

from django.db import connections

_state = threading.local()


def relax_commits(database: str) -> None:
    """Let this thread's PostgreSQL connection commit without waiting for the WAL flush.

    Used only for claims, and only with ``relaxed_commits`` (off by default). A claim lost in
    a database crash leaves the job READY, so it can be claimed and run again while its
    first worker still runs it. Outcomes are never written this way: a lost outcome would
    turn a job that ran into a rescued failure. A task's own queries use other connections
    and keep the server's setting.
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


_sqlite_writes = threading.Lock()


def serialized_writes(database: str):
    """On SQLite, one writing transaction at a time within this process; elsewhere nothing.

    SQLite has one write lock per database file, and a connection waiting for it sleeps in
    growing steps (1, 2, 5, 10… ms) however soon it is released: the claim loop and the
    outcome writer of one worker would spend their time asleep. Taking turns on a Python lock
    instead hands the lock over at once.
    """
    if connections[database].vendor == "sqlite":
        return _sqlite_writes
    return contextlib.nullcontext()
