"""When a schedule fires: cron, interval and one-off fire times, daylight saving included.

Everything here is pure arithmetic on aware datetimes; the model and the beat call it.

Cron expressions are read on the schedule's local wall clock (its IANA time zone):

- a local time skipped by a spring-forward change (02:30 in Europe/Berlin on the last Sunday
  of March) fires at the first instant after the gap (03:00 CEST), once, however many of the
  expression's times fell into the gap;
- a local time repeated by a fall-back change fires once, at its first occurrence (02:30 CEST,
  not again at 02:30 CET).

Intervals are elapsed time, aligned on ``start_at`` (else the Unix epoch), so daylight saving
never moves them.
"""

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter
from django.db import models

from django_jobs.exceptions import InvalidSchedule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: Wider than any daylight-saving shift, so a search seeded on the wall clock sees the whole fold.
FOLD_MARGIN = timedelta(hours=3)


def zone(name: str) -> ZoneInfo:
    """Return the IANA time zone ``name`` or raise InvalidSchedule."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:  # OSError: "America" is a dir
        raise InvalidSchedule(f"{name!r} is not an IANA time zone (e.g. 'Europe/Berlin').") from e


def check_cron(expression: str) -> str:
    """Return ``expression`` normalised, or raise InvalidSchedule saying what is wrong."""
    expression = " ".join(expression.split())
    fields = expression.split(" ")
    if expression.startswith("@"):
        if expression.lower() not in NICKNAMES:
            raise InvalidSchedule(
                f"{expression!r} is not a cron nickname; use one of {', '.join(NICKNAMES)}."
            )
        return expression.lower()
    if len(fields) not in (5, 6):
        raise InvalidSchedule(
            f"{expression!r} has {len(fields)} field(s); a cron expression has 5 "
            "(minute hour day-of-month month day-of-week), or 6 with seconds first."
        )
    try:
        _iterator(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError as e:
        raise InvalidSchedule(f"{expression!r} never matches a date.") from e
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as e:
        raise InvalidSchedule(f"{expression!r} is not a valid cron expression: {e}.") from e
    return expression


def _iterator(expression: str, start: datetime) -> croniter:
    seconds_first = len(expression.split()) == 6
    return croniter(expression, start, second_at_beginning=seconds_first)


def _instant(naive: datetime, tz: ZoneInfo) -> datetime:
    """The instant a local wall-clock time stands for (first occurrence; end of a gap)."""
    aware = naive.replace(tzinfo=tz, fold=0)
    utc = aware.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) == naive:
        return utc
    # Skipped by a spring-forward change: fold=1 lands before the gap, fold=0 after it.
    low, high = naive.replace(tzinfo=tz, fold=1).astimezone(UTC), utc
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def cron_after(expression: str, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Yield the fire times of ``expression`` strictly after ``after``, in order."""
    # Wall-clock times map to instants in non-decreasing order, and local(after) maps at or
    # before ``after``: walk forward from it, dropping instants not past the last one.
    it = _iterator(expression, after.astimezone(tz).replace(tzinfo=None))
    last = after
    try:
        while True:
            instant = _instant(it.get_next(datetime), tz)
            if instant > last:
                yield instant
                last = instant
    except CroniterBadDateError:
        return


def cron_last(expression: str, tz: ZoneInfo, at: datetime) -> datetime | None:
    """The last fire time of ``expression`` at or before ``at``."""
    local = at.astimezone(tz)
    seed = local.replace(tzinfo=None) + timedelta(microseconds=1)
    if local.fold:  # in the repeated hour, later wall-clock times may have fired already
        seed += FOLD_MARGIN
    it = _iterator(expression, seed)
    try:
        while True:
            instant = _instant(it.get_prev(datetime), tz)
            if instant <= at:
                return instant
    except CroniterBadDateError:
        return None


@dataclass(frozen=True)
class Timing:
    """One schedule's fire times: exactly one of ``cron``, ``interval`` and ``run_at``."""

    cron: str = ""
    interval: timedelta | None = None
    run_at: datetime | None = None
    tz: ZoneInfo = ZoneInfo("UTC")
    start_at: datetime | None = None
    end_at: datetime | None = None

    def after(self, after: datetime) -> Iterator[datetime]:
        """Yield the fire times strictly after ``after``, in order, until the schedule ends."""
        if self.start_at and after < self.start_at:
            after = self.start_at - timedelta(microseconds=1)
        if self.run_at:
            times: Iterator[datetime] = iter([self.run_at] if self.run_at > after else [])
        elif self.interval:
            times = self._intervals(after)
        else:
            times = cron_after(self.cron, self.tz, after)
        for time in times:
            if self.end_at and time > self.end_at:
                return
            yield time

    def _intervals(self, after: datetime) -> Iterator[datetime]:
        anchor = self.start_at or EPOCH
        step = (after - anchor) // self.interval + 1
        while True:
            yield anchor + step * self.interval
            step += 1

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (None: never again)."""
        return next(self.after(after), None)

    def last_at_or_before(self, at: datetime) -> datetime | None:
        """The last fire time at or before ``at`` (None: none yet)."""
        if self.end_at and at > self.end_at:
            at = self.end_at
        if self.run_at:
            found = self.run_at if self.run_at <= at else None
        elif self.interval:
            anchor = self.start_at or EPOCH
            found = anchor + ((at - anchor) // self.interval) * self.interval
        else:
            found = cron_last(self.cron, self.tz, at)
        return found if found and (not self.start_at or found >= self.start_at) else None

    def between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The last ``limit`` fire times in [start, end]."""
        times = deque(maxlen=limit)
        for time in self.after(start - timedelta(microseconds=1)):
            if time > end:
                break
            times.append(time)
        return list(times)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times after ``after`` (fewer if the schedule ends)."""
        return list(islice(self.after(after), count))


class MissedRuns(models.TextChoices):
    """What beat does with fire times it missed (it was down)."""

    SKIP = "skip", "Skip missed runs"
    LATEST = "latest", "Run once for the missed window"
    ALL = "all", "Run every missed fire time (within the catch-up window)"


#: Most runs one schedule enqueues in one go when catching up under the "all" policy.
MAX_CATCHUP = 1000


def due_fire_times(
    timing: Timing,
    due_since: datetime,
    now: datetime,
    policy: str,
    grace: timedelta,
    window: timedelta,
) -> list[datetime]:
    """The fire times in [due_since, now] to enqueue now, under a missed-run policy.

    Fire times no older than ``grace`` are on time and always fire. Older ones were missed
    (beat was down): ``skip`` drops them; ``latest`` makes one run for the whole missed window
    (an on-time run counts as it); ``all`` runs each one no older than ``window``, at most
    MAX_CATCHUP.
    """
    on_time = timing.between(max(due_since, now - grace), now, MAX_CATCHUP)
    if policy == MissedRuns.SKIP or (policy == MissedRuns.LATEST and on_time):
        return on_time
    if policy == MissedRuns.LATEST:
        last = timing.last_at_or_before(now)
        return [last] if last and last >= due_since else []
    missed_end = now - grace - timedelta(microseconds=1)
    missed = timing.between(max(due_since, now - window), missed_end, MAX_CATCHUP)
    return (missed + on_time)[-MAX_CATCHUP:]
