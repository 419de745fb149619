"""Run a worker's bookkeeping query again on a new connection when the server dropped the old
one (``pg_terminate_backend``, a pooler or proxy recycling connections, a failover).

A dropped connection only fails the next statement sent on it: a new connection usually works
at once, so waiting for the next heartbeat (or giving up on the final write) loses time the
worker's leases may not have.
"""

import logging
import time
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, connections

from django_jobs.db.transient import is_transient

logger = logging.getLogger(__name__)


def call_reconnecting[T](
    database: str, func: Callable[..., T], *args, tries: int = 2, pause: float = 0.0
) -> T:
    """Call ``func(*args)``; after a transient database error, close the connection and call
    it again (``tries`` calls in all, ``pause`` seconds apart). Other errors are raised."""
    for left in range(tries - 1, -1, -1):
        try:
            return func(*args)
        except (DatabaseError, InterfaceError) as e:
            connections[database].close()  # the next statement opens a new connection
            if not left or not is_transient(e):
                raise
            logger.info("database error=%r; reconnecting and trying again", e)
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover
