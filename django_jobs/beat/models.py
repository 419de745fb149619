"""Schedule and ScheduleFire rows: what fires when, and which fire times have fired.

Beat owns ``next_fire_at``, ``last_fired_at``, ``last_job_id`` and ``last_error``; an operator's
save never writes them back (so a form loaded before a fire cannot rewind the schedule), except
that changing the timing recomputes ``next_fire_at`` from now.
"""

from datetime import datetime, timedelta

from django.db import models
from django.utils.timezone import now as utc_now

from django_jobs.beat import fire_times
from django_jobs.beat.fire_times import MissedRuns

#: Columns only the beat writes.
BEAT_FIELDS = ("next_fire_at", "last_fired_at", "last_job_id", "last_error")
#: Columns that decide fire times: changing one recomputes ``next_fire_at``.
TIMING_FIELDS = ("cron", "interval_seconds", "run_at", "timezone", "start_at", "end_at", "enabled")


class ScheduleQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)

    def due(self, backend: str, now: datetime):
        """Enabled schedules of ``backend`` with a fire time at or before ``now``."""
        return self.enabled().filter(backend=backend, next_fire_at__lte=now)

    def advance(self, pk: int, expected: datetime | None, next_fire_at: datetime | None) -> int:
        """Move ``next_fire_at`` on if it still is ``expected`` (compare-and-set; 1 = won)."""
        return self.filter(pk=pk, enabled=True, next_fire_at=expected).update(
            next_fire_at=next_fire_at
        )


class Schedule(models.Model):
    """A task to enqueue on a cron expression, an interval, or once at a given time."""

    name = models.CharField(max_length=200, unique=True)
    task = models.CharField(max_length=255, help_text="Dotted path of a declared task.")
    backend = models.CharField(max_length=100, default="default")
    cron = models.CharField(
        max_length=200,
        blank=True,
        help_text="5 fields (minute hour day month weekday), 6 with seconds first, or @daily…",
    )
    interval_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Fire every N seconds (aligned on start time or epoch)."
    )
    run_at = models.DateTimeField(null=True, blank=True, help_text="Fire once, at this time.")
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue_name = models.CharField(max_length=100, blank=True, help_text="Blank: the task's.")
    priority = models.IntegerField(null=True, blank=True, help_text="Blank: the task's.")
    enabled = models.BooleanField(default=True)
    missed_runs = models.CharField(max_length=8, choices=MissedRuns, default=MissedRuns.LATEST)
    misfire_grace_seconds = models.PositiveIntegerField(
        default=60, help_text="A fire time later than this counts as missed."
    )
    catchup_window_seconds = models.PositiveIntegerField(
        default=86400, help_text="With 'all': missed fire times older than this are dropped."
    )
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    description = models.TextField(blank=True)
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_job_id = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    code_hash = models.CharField(
        max_length=64, blank=True, editable=False, help_text="Set: declared in JOBS_SCHEDULES."
    )
    edited_by_operator = models.BooleanField(
        default=False, editable=False, help_text="Changed here: code changes no longer apply."
    )
    created_at = models.DateTimeField(default=utc_now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        db_table = "django_jobs_schedule"
        ordering = ["name"]
        indexes = [
            models.Index(fields=["backend", "enabled", "next_fire_at"], name="django_jobs_due"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        adding = self._state.adding
        timing_changed = adding or self._timing_values() != getattr(self, "_loaded_timing", ())
        if timing_changed:
            self.next_fire_at = self._first_fire_time() if self.enabled else None
        if not adding and kwargs.get("update_fields") is None:
            skip = set(BEAT_FIELDS) - ({"next_fire_at"} if timing_changed else set())
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in skip
            ]
        super().save(*args, **kwargs)
        self._loaded_timing = self._timing_values()

    @classmethod
    def from_db(cls, db, field_names, values, **kwargs):
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._loaded_timing = instance._timing_values()
        return instance

    def _timing_values(self) -> tuple:
        return tuple(self.__dict__.get(name) for name in TIMING_FIELDS)  # never loads deferred

    # --- fire times -----------------------------------------------------------------------
    @property
    def declared_in_code(self) -> bool:
        return bool(self.code_hash)

    def timing(self) -> fire_times.Timing:
        """The fire-time arithmetic of this row (raises InvalidSchedule if unusable)."""
        interval = timedelta(seconds=self.interval_seconds) if self.interval_seconds else None
        return fire_times.Timing(
            cron=fire_times.check_cron(self.cron) if self.cron else "",
            interval=interval,
            run_at=self.run_at,
            tz=fire_times.zone(self.timezone),
            start_at=self.start_at,
            end_at=self.end_at,
        )

    def due_fire_times(self, now: datetime) -> list[datetime]:
        """The fire times to enqueue at ``now``, under this schedule's missed-run policy."""
        return fire_times.due_fire_times(
            self.timing(),
            self.next_fire_at,
            now,
            self.missed_runs,
            grace=timedelta(seconds=self.misfire_grace_seconds),
            window=timedelta(seconds=self.catchup_window_seconds),
        )

    def upcoming(self, count: int = 5, after: datetime | None = None) -> list[datetime]:
        return self.timing().upcoming(after or utc_now(), count)

    # --- validation and saving ------------------------------------------------------------
    def clean_fields(self, exclude=None) -> None:
        """Django's field cleaning, but not of values of the wrong type: ``clean()`` reports
        those (and Django's DateTimeField.to_python raises TypeError on a bool)."""
        from django_jobs.beat import rules

        wrong = rules.wrong_types(self)
        super().clean_fields(exclude=[*(exclude or ()), *wrong])

    def clean(self) -> None:
        """Check every rule of ``beat.rules`` and report all problems at once."""
        from django_jobs.beat import rules

        rules.validate(self)
        if self.cron:
            self.cron = fire_times.check_cron(self.cron)

    def _first_fire_time(self) -> datetime | None:
        """The next fire time from now, never one that already fired."""
        after = utc_now()
        if self.last_fired_at and self.last_fired_at > after:
            after = self.last_fired_at
        if self.run_at and not self.last_fired_at and self.run_at <= after:
            return self.run_at  # a one-off set in the past fires at once
        return self.timing().next_after(after)


class ScheduleFire(models.Model):
    """One fire time of one schedule; the unique pair makes each fire time enqueue once."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="fires")
    fire_time = models.DateTimeField()
    job_id = models.UUIDField(null=True, blank=True, default=None)
    fired_at = models.DateTimeField(default=utc_now)

    class Meta:
        db_table = "django_jobs_schedule_fire"
        constraints = [
            models.UniqueConstraint(fields=["schedule", "fire_time"], name="django_jobs_fire_once")
        ]
        indexes = [models.Index(fields=["fired_at"], name="django_jobs_fire_fired_at")]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.fire_time.isoformat()}"
