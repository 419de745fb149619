"""Concurrency and rate limits per key, enforced in the database at claim time.

A gated job (its task has ``concurrency_limit`` or ``rate_limit``) carries ``Job.limit_key``.
The ordinary claim skips such rows (``limit_key IS NULL``, on its partial index), so tasks
without limits pay nothing. Gated jobs are claimed here, one key at a time: in one transaction
the key's ``Gate`` row is locked (``SELECT … FOR UPDATE``; SQLite's IMMEDIATE transaction
serialises anyway), the key's RUNNING jobs are counted and the rate window read, and only as
many READY jobs as both limits allow are claimed. Every claimer of a key queues on that lock,
so limits hold across all workers; waiting jobs are never claimed and spend no attempt.
"""

import hashlib
import logging
import random
import re
from datetime import datetime, timedelta

from django.db import DatabaseError, InterfaceError, connections, transaction

from django_jobs.db.transient import is_transient
from django_jobs.exceptions import InvalidTaskOptions

logger = logging.getLogger(__name__)

PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([smhd])\s*$")
#: Keys one gated claim looks at (a random subset when more wait, for fairness).
KEYS_PER_CLAIM = 20


def parse_rate(rate: str) -> tuple[int, float]:
    """``"10/s"`` → (10, 1.0); ``"100/5m"`` → (100, 300.0)."""
    match = _RATE.match(rate) if isinstance(rate, str) else None
    if not match or int(match.group(1)) < 1:
        raise InvalidTaskOptions(
            f'rate_limit must look like "10/s", "100/m" or "5/h", not {rate!r}.'
        )
    count, multiple, unit = match.groups()
    return int(count), float(multiple or 1) * PERIODS[unit]


def check_options(task) -> None:
    limit = task.concurrency_limit
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InvalidTaskOptions(f"concurrency_limit must be an int >= 1, not {limit!r}.")
    if task.rate_limit is not None:
        parse_rate(task.rate_limit)
    key = task.limit_key
    if not (key is None or isinstance(key, str) or callable(key)):
        raise InvalidTaskOptions("limit_key must be a string or a callable (args, kwargs) -> str.")


def is_gated(task) -> bool:
    return bool(task.concurrency_limit or task.rate_limit)


def job_key(task, args, kwargs) -> str | None:
    """The gate key of a call, or None for a task without limits."""
    if not is_gated(task):
        return None
    key = task.limit_key
    if key is None:
        return task.module_path
    if isinstance(key, str):
        return key
    value = key(list(args), dict(kwargs))
    if not isinstance(value, str):
        raise InvalidTaskOptions(f"limit_key of {task.module_path} returned {value!r}, not a str.")
    key = f"{task.module_path}:{value}"
    return key if len(key) <= 255 else hashlib.sha256(key.encode()).hexdigest()


# --- claiming -------------------------------------------------------------------------------
def ready(database: str, alias: str, queues, paused, now: datetime):
    """The gated jobs that wait, ready to start if their keys' limits allow."""
    from django_jobs.jobs.claims import ready

    return ready(database, alias, queues, paused, now, gated=True).order_by()


def claim(
    database, alias, queues, paused, worker_id, limit, now, lease: timedelta
) -> tuple[list, bool]:
    """Claim up to ``limit`` ready gated jobs that their keys' limits let start now; also
    say whether any gated job was waiting."""
    waiting = ready(database, alias, queues, paused, now)
    keys = list(waiting.order_by().values_list("limit_key", flat=True).distinct()[:1000])
    if not keys:
        return [], False
    random.shuffle(keys)  # no key starves the others
    claimed: list = []
    for key in keys[:KEYS_PER_CLAIM]:
        try:
            claimed += claim_key(
                database, waiting, key, worker_id, limit - len(claimed), now, lease
            )
        except (DatabaseError, InterfaceError) as e:
            if not claimed:
                raise
            return kept(claimed, e, database), True
        if len(claimed) >= limit:
            break
    return claimed, True


def kept(jobs: list, error: BaseException, database: str) -> list:
    """The jobs a claim had committed before ``error``: they are RUNNING for this worker, so
    they are run (raising would leave them to be rescued, charged an attempt, never run)."""
    if is_transient(error):
        connections[database].close()  # the next claim opens a new connection
    logger.log(
        logging.WARNING if is_transient(error) else logging.ERROR,
        "gated claim failed, running the jobs already claimed jobs=%s error=%r",
        len(jobs),
        error,
    )
    return jobs


def claim_key(database, waiting, key: str, worker_id, limit: int, now, lease) -> list:
    """Claim what one key's limits allow, holding its Gate row's lock."""
    from django_jobs.jobs.models import Gate, Job

    gates = Gate.objects.using(database)
    gates.bulk_create([Gate(key=key)], ignore_conflicts=True)
    with transaction.atomic(using=database):
        gate = gates.select_for_update().get(pk=key)
        candidates = waiting.filter(limit_key=key).order_by("-priority", "run_after")
        head = candidates.values_list("options", flat=True).first()
        if head is None:
            return []
        allowed, rate = _allowed(database, gate, key, head or {}, limit, now)
        if allowed <= 0:
            return []
        locked = candidates.select_for_update(skip_locked=True).values_list("pk", flat=True)
        ids = list(locked[:allowed])
        if not ids:
            return []
        jobs = Job.objects.using(database).filter(pk__in=ids)
        jobs.claim(worker_id, now, lease)
        if rate is not None:
            gate.starts = gate.starts + [now.timestamp()] * len(ids)
            gate.save(update_fields=["starts", "changed_at"])
        return list(jobs.held_by(worker_id))


def _allowed(database, gate, key: str, options: dict, limit: int, now) -> tuple[int, tuple | None]:
    """How many jobs of ``key`` may start now; prunes the gate's rate log in place."""
    from django_jobs.jobs.models import Job
    from django_jobs.jobs.status import JobStatus

    allowed = limit
    concurrency = options.get("concurrency_limit")
    if concurrency:
        running = Job.objects.using(database).filter(status=JobStatus.RUNNING, limit_key=key)
        allowed = min(allowed, concurrency - running.count())
    rate = parse_rate(options["rate_limit"]) if options.get("rate_limit") else None
    if rate is not None:
        count, period = rate
        since = now.timestamp() - period
        gate.starts = [t for t in gate.starts if t > since]
        allowed = min(allowed, count - len(gate.starts))
    elif gate.starts:
        gate.starts = []
    return allowed, rate
