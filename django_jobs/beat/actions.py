"""Operator actions on schedules (the admin calls these): enable, disable, run now."""

from django.db import transaction

from django_jobs.beat.models import Schedule


def _save_each(schedules, **changes) -> int:
    count = 0
    for schedule in schedules:
        for field, value in changes.items():
            setattr(schedule, field, value)
        schedule.edited_by_operator = bool(schedule.code_hash)
        schedule.save(using=schedules.db)  # recomputes next_fire_at from now
        count += 1
    return count


def enable(schedules) -> int:
    """Enable schedules from now on; runs missed while disabled are not made up."""
    return _save_each(schedules.filter(enabled=False), enabled=True)


def disable(schedules) -> int:
    return _save_each(schedules.filter(enabled=True), enabled=False)


def run_now(schedules) -> tuple[list[str], list[tuple[Schedule, str]]]:
    """Enqueue one run of each schedule now, outside its timing (next fire time unchanged).

    Each schedule is enqueued on its own: one that cannot run does not stop the others.
    Return the job ids enqueued and, per schedule that failed, (schedule, error).
    """
    from django_jobs.beat.loop import enqueue_now
    from django_jobs.exceptions import JobsError
    from django_jobs.tasks_api import InvalidTask

    ids, failures = [], []
    for schedule in schedules:
        try:
            with transaction.atomic(using=schedules.db):
                result = enqueue_now(schedule)
                Schedule.objects.using(schedules.db).filter(pk=schedule.pk).update(
                    last_job_id=result.id
                )
        except (JobsError, InvalidTask, ValueError, TypeError) as e:
            failures.append((schedule, f"{type(e).__name__}: {e}"))
        else:
            ids.append(result.id)
    return ids, failures
