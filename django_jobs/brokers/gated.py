"""When a broker runs the claim of jobs with limits (``jobs.limits``): not on every claim.

Checking the gates costs a transaction per key, so the database broker runs it when the
ordinary claim found nothing (an idle worker polls the database anyway) or once per poll
interval, and the Redis broker only while gated jobs are known to wait.
"""

import time
from datetime import datetime

from django.db import DatabaseError, InterfaceError

from django_jobs.jobs import limits


class GatedClaims:
    """When a broker runs the gated claim path.

    Database broker (``poll_when_idle``): whenever the ordinary claim found nothing (an idle
    worker polls the database anyway), else at most once per ``every`` seconds, and at once
    again while gated claims keep finding work. Redis broker: only while gated jobs are known
    to wait (``refresh``, from its heartbeat sweep, or the last gated claim), at most once per
    ``every`` seconds: an idle Redis worker does not query the database.
    """

    def __init__(self, database: str, alias: str, every: float, poll_when_idle: bool = True):
        self.database = database
        self.alias = alias
        self.every = every
        self.poll_when_idle = poll_when_idle
        #: Whether gated READY jobs were seen waiting at the last look.
        self.waiting = False
        self._due = 0.0

    def refresh(self, now: datetime) -> bool:
        """Look (one EXISTS on the gated index) whether gated jobs wait."""
        self.waiting = limits.ready(self.database, self.alias, (), (), now).exists()
        return self.waiting

    def top_up(self, jobs: list, worker_id, queues, paused, limit, now, lease) -> list:
        """``jobs`` from the ordinary claim, plus gated ones for the slots still free."""
        if len(jobs) >= limit:
            return jobs
        try:
            return jobs + self.claim_if_due(
                worker_id, queues, paused, limit - len(jobs), now, lease, len(jobs)
            )
        except (DatabaseError, InterfaceError) as e:
            if not jobs:
                raise
            return limits.kept(jobs, e, self.database)

    def claim_if_due(self, worker_id, queues, paused, limit, now, lease, found: int) -> list:
        """Claim up to ``limit`` gated jobs, if due (``found``: what the ordinary claim got)."""
        clock = time.monotonic()
        if limit <= 0:
            return []
        idle_poll = self.poll_when_idle and not found
        if not idle_poll and (clock < self._due or not (self.poll_when_idle or self.waiting)):
            return []
        jobs, self.waiting = limits.claim(
            self.database, self.alias, queues, paused, worker_id, limit, now, lease
        )
        self._due = clock if jobs else clock + self.every
        return jobs
