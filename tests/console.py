"""Helpers shared by the operations-console tests: users and jobs in a given state."""

import math
from datetime import timedelta

from django.contrib.auth.models import Permission, User
from django.utils import timezone

from django_jobs.jobs import rollup
from django_jobs.jobs.status import FINISHED, JobStatus, error_entry
from django_jobs.models import Job, JobMinute, Schedule, Worker
from tests import tasks

PASSWORD = "correct horse battery staple"


def make_user(username: str, *codenames: str, superuser: bool = False) -> User:
    """A staff user holding the given django_jobs permissions (or a superuser)."""
    if superuser:
        return User.objects.create_superuser(username, f"{username}@example.com", PASSWORD)
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    perms = Permission.objects.filter(content_type__app_label="django_jobs", codename__in=codenames)
    user.user_permissions.set(perms)
    return user


def failed_job(*args, ago: timedelta = timedelta(0), worker: str = "w-1", **kwargs) -> Job:
    """A job that failed its only attempt, with a traceback on record."""
    result = tasks.echo.enqueue(*args, **kwargs)
    now = timezone.now() - ago
    error = error_entry(
        "builtins.ValueError",
        'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n',
        1,
        worker,
    )
    Job.objects.filter(pk=result.id).update(
        status=JobStatus.FAILED,
        attempts=1,
        started_at=now - timedelta(seconds=2),
        last_attempted_at=now - timedelta(seconds=2),
        finished_at=now,
        claimed_by=worker,
        worker_ids=[worker],
        errors=[error],
    )
    return Job.objects.get(pk=result.id)


def set_status(job_id, status: str, **fields) -> None:
    Job.objects.filter(pk=job_id).update(status=status, **fields)


def ended_job(task, *classes: str, ago=timedelta(minutes=5), status=JobStatus.FAILED, run=1.0):
    """A job of ``task`` that ended ``ago`` after one failed attempt per class in ``classes``
    (none: no error recorded), its last attempt having run ``run`` seconds."""
    result = task.enqueue(*([1] if task is tasks.three_per_minute else [1, 2]))
    at = timezone.now() - ago
    errors = [
        error_entry(cls, f"Traceback (most recent call last):\n{cls}: attempt {n}\n", n, "w-1")
        for n, cls in enumerate(classes, start=1)
    ]
    set_status(
        result.id,
        status,
        errors=errors,
        attempts=len(classes),
        run_after=at - timedelta(seconds=run + 0.5),
        started_at=at - timedelta(seconds=run),
        last_attempted_at=at - timedelta(seconds=run),
        finished_at=at,
    )
    return result.id


#: Task paths as long as real projects' (deep packages, descriptive names).
LONG_TASKS = (
    "billing.integrations.stripe.webhooks.tasks.reconcile_invoice_payments_for_customer",
    "notifications.channels.email.transactional.tasks.send_password_reset_email",
    "reports.exports.spreadsheets.tasks.build_quarterly_revenue_report_for_all_regions",
    "search.indexing.elasticsearch.tasks.reindex_product_catalogue",
)
LONG_QUEUES = ("default", "emails-transactional", "reports-nightly", "billing-webhooks")
#: What a running job reports with ``context.set_progress``: figures and a long message.
PROGRESS = {"current": 4127, "total": 10000, "message": "reconciling invoices of " + "x" * 60}


def realistic_jobs(count: int = 24) -> list[Job]:
    """Jobs in every status with long task paths, queues and worker ids, spread over a day."""
    now = timezone.now()
    statuses = list(JobStatus)
    jobs = []
    for i in range(count):
        status = statuses[i % len(statuses)]
        enqueued = now - timedelta(seconds=7 + i * 3917)
        started = enqueued + timedelta(seconds=1.234 + i) if status != JobStatus.READY else None
        finished = started + timedelta(seconds=0.087 * i) if status in FINISHED else None
        worker = f"{i % 3:04x}ab9f3e2c4d1b8a7f6e5d4c3b2a1f"  # as registration makes them
        jobs.append(
            Job(
                task_path=LONG_TASKS[i % len(LONG_TASKS)],
                queue_name=LONG_QUEUES[i % len(LONG_QUEUES)],
                status=status,
                args=[i, "customer-" + "x" * 40],
                enqueued_at=enqueued,
                run_after=enqueued,
                started_at=started,
                last_attempted_at=started,
                finished_at=finished,
                attempts=(i % 5) + (status != JobStatus.READY),
                max_attempts=25 if i % 2 else 5,
                claimed_by=worker if started else None,
                worker_ids=[worker] if started else [],
                progress=PROGRESS if status == JobStatus.RUNNING else None,
            )
        )
    for n in range(3):
        Worker.objects.get_or_create(
            id=f"{n:04x}ab9f3e2c4d1b8a7f6e5d4c3b2a1f",
            defaults={"hostname": f"ip-10-0-12-{n}.eu-west-1.compute.internal", "pid": 40000 + n,
                      "started_at": now - timedelta(hours=5), "last_heartbeat_at": now},
        )  # fmt: skip
    return Job.objects.bulk_create(jobs)


def realistic_schedules() -> list[Schedule]:
    """Cron, interval and one-off schedules in far time zones, some failing with long errors."""
    now = timezone.now()
    rows = [
        ("billing: reconcile invoices with the payment provider every weekday morning",
         {"cron": "30 6 * * 1-5", "timezone": "America/Argentina/Buenos_Aires"}),
        ("notifications: send the weekly digest",
         {"cron": "0 9 * * MON", "timezone": "Asia/Kolkata"}),
        ("search: reindex", {"interval_seconds": 86400}),
        ("reports: quarterly revenue export",
         {"run_at": now + timedelta(days=3, seconds=17), "timezone": "Pacific/Chatham"}),
        ("health ping", {"interval_seconds": 10}),
    ]  # fmt: skip
    schedules = [
        Schedule.objects.create(name=name, task=LONG_TASKS[i % len(LONG_TASKS)], **timing)
        for i, (name, timing) in enumerate(rows)
    ]
    error = (
        "UnknownTask: 'billing.integrations.stripe.webhooks.tasks.reconcile_invoice_payments_"
        "for_customer' is not a declared task (was it renamed or its module not imported?)"
    )
    Schedule.objects.filter(pk=schedules[0].pk).update(last_error=error, last_fired_at=now)
    Schedule.objects.filter(pk=schedules[1].pk).update(
        last_error="InvalidTask: priority must be between -100 and 100, not 500"
    )
    job = realistic_jobs(1)[0]
    Schedule.objects.filter(pk=schedules[4].pk).update(
        last_fired_at=now - timedelta(seconds=4), last_job_id=job.pk
    )
    return schedules


def busy_day() -> None:
    """A day of per-minute counters (a daily rhythm of successes, some failures and cancels),
    and jobs that succeeded in the last hour."""
    end = rollup.floor_minute(timezone.now())
    rows = []
    for m in range(1, 24 * 60 + 1):
        wave = 1.6 + math.sin(m / 140) + 0.5 * math.sin(m / 17)  # never below 0.1
        rows.append(
            JobMinute(
                minute=end - timedelta(minutes=m),
                queue_name="",
                succeeded=int(40 * wave) + m % 7,
                failed=m % 3 + (9 if m % 23 == 0 else 0),
                cancelled=4 if m % 31 == 0 else 0,
            )
        )
    JobMinute.objects.bulk_create(rows, ignore_conflicts=True)
    now = timezone.now()
    jobs = []
    for i in range(40):  # the latency table's sample: jobs that succeeded in the last hour
        ready = now - timedelta(minutes=i + 1)
        started = ready + timedelta(milliseconds=40 + i * i * 7)
        jobs.append(
            Job(
                task_path=LONG_TASKS[i % len(LONG_TASKS)],
                status=JobStatus.SUCCESSFUL,
                enqueued_at=ready,
                run_after=ready,
                started_at=started,
                last_attempted_at=started,
                finished_at=started + timedelta(seconds=0.2 + (i % 5) * 3.7),
                attempts=1,
            )
        )
    Job.objects.bulk_create(jobs)
