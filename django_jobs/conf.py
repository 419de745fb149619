"""Backend OPTIONS, with their defaults, in one typed place."""

from dataclasses import dataclass, fields
from datetime import timedelta

BROKERS = ("database", "redis")
#: Days finished jobs are kept before workers prune them, per status (docs/retention.md).
RETENTION_DAYS = {"SUCCESSFUL": 7, "FAILED": 30, "CANCELLED": 7}


@dataclass(frozen=True)
class JobsOptions:
    broker: str = "database"
    database: str = "default"
    redis_url: str | None = None
    #: Prefix of every Redis key (then the backend alias): several projects can share a DB.
    redis_prefix: str = "django_jobs"
    #: How long a claimed job stays with its worker without a heartbeat.
    lease_seconds: float = 60.0
    #: How often a worker renews its leases and looks for expired ones.
    heartbeat_interval: float = 10.0
    #: Longest sleep between claim attempts when no wake-up arrives. None: 1 s where wake-ups
    #: are pushed (PostgreSQL NOTIFY, Redis), 0.2 s on SQLite and MySQL/MariaDB, and on
    #: PostgreSQL with ``listen`` off.
    poll_interval: float | None = None
    #: PostgreSQL: each worker process holds a session connection that LISTENs for NOTIFY.
    #: False behind a transaction-mode pooler (PgBouncer) the workers cannot bypass: workers
    #: then only poll (docs/deployment.md).
    listen: bool = True

    def poll_interval_for(self, vendor: str, pushed: bool) -> float:
        """The poll interval to use on ``vendor`` (``pushed``: wake-ups arrive by themselves)."""
        if self.poll_interval is not None:
            return self.poll_interval
        return 1.0 if pushed or (vendor == "postgresql" and self.listen) else 0.2

    #: Default grace period for running jobs on SIGTERM/SIGINT.
    shutdown_timeout: float = 30.0
    default_max_attempts: int = 1
    #: PostgreSQL: workers commit claims without waiting for the WAL flush. Faster, but a
    #: claim lost in a database crash lets a job run again while its worker still runs it.
    #: Outcomes are always committed durably (docs/reliability.md).
    relaxed_commits: bool = False
    #: Most jobs a worker process claims beyond its free slots, so a slot's next job is in
    #: hand when it frees (docs/performance.md): as many as its slots would start within
    #: 0.1 s at the recent jobs' run time, so slow jobs are not claimed ahead. 0: claim for
    #: free slots only.
    claim_ahead: int = 50
    #: Seconds a job claimed ahead may wait for a slot (behind slow jobs) before the worker
    #: gives it back, READY for any worker, its claim undone.
    claim_ahead_hold: float = 1.0
    #: Extra modules holding tasks, besides every installed app's ``tasks`` module.
    task_modules: tuple[str, ...] = ()
    #: Bearer token that lets Prometheus read the metrics view (docs/metrics.md). None: staff
    #: users who may view jobs only.
    metrics_token: str | None = None
    #: Days finished jobs are kept, per status, over ``RETENTION_DAYS`` (None: forever).
    retention: dict | None = None
    #: Seconds between a worker's prune passes (None: workers never prune; ``jobs prune``).
    prune_interval: float | None = 300.0
    #: Days the dashboard's per-minute counters are kept (None: forever).
    history_retention: float | None = 8

    def retention_periods(self) -> dict[str, timedelta | None]:
        """How long finished jobs are kept, per status (None: forever)."""
        days = {**RETENTION_DAYS, **(self.retention or {})}
        return {status: None if n is None else timedelta(days=n) for status, n in days.items()}

    @property
    def history(self) -> timedelta | None:
        """How long the dashboard's per-minute counters are kept (None: forever)."""
        return None if self.history_retention is None else timedelta(days=self.history_retention)

    @classmethod
    def from_dict(cls, options: dict) -> "JobsOptions":
        if not isinstance(options, dict):
            return cls()  # the checks report it (E020)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in options.items() if k in known}
        if isinstance(values.get("task_modules"), list | tuple):
            values["task_modules"] = tuple(values["task_modules"])
        return cls(**values)

    @classmethod
    def unknown_keys(cls, options: dict) -> list[str]:
        known = {f.name for f in fields(cls)}
        return sorted(str(key) for key in set(options) - known)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)
