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


def claim_reconnecting(database: str, worker_id: str, now, claim: Callable[[], list]) -> list:
    """``claim()`` (which claims as ``worker_id`` at ``now``), riding out a dropped connection.

    After a transient database error the claim may still have committed (the server ran the
    COMMIT, its answer was lost): its rows are RUNNING for this worker, and nobody would run
    them. So first take back the rows this claim stamped, then, if there are none, claim again
    on a new connection.
    """
    try:
        return claim()
    except (DatabaseError, InterfaceError) as e:
        connections[database].close()
        if not is_transient(e):
            raise
        logger.info("claim error=%r; reconnecting and looking for its rows", e)
    return call_reconnecting(database, stamped, database, worker_id, now) or claim()


def stamped(database: str, worker_id: str, now) -> list:
    """The rows a claim by ``worker_id`` at ``now`` committed (a claim sets
    ``last_attempted_at`` to its ``now``)."""
    from django_jobs.jobs.models import Job

    return list(Job.objects.using(database).held_by(worker_id).filter(last_attempted_at=now))
