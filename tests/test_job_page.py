"""The job page: header, attempts timeline with times, errors first, cancel, live endpoint."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_jobs.admin.attempts import timeline
from django_jobs.jobs import leases
from django_jobs.jobs.status import JobStatus, error_entry
from django_jobs.models import Job
from django_jobs.tasks_api import task_backends
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from tests import tasks
from tests.console import failed_job, make_user, set_status
from tests.test_admin import client_for, job_page, post_action

pytestmark = pytest.mark.django_db

LIVE = reverse("admin:django_jobs_job_live")
T0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def operator():
    return client_for(make_user("operator", superuser=True))


@pytest.fixture
def viewer():
    return client_for(make_user("viewer", "view_job", "view_worker"))


def claim(worker_id="worker-a") -> Job:
    [job] = task_backends["default"].broker.claim(worker_id, [], 1, timezone.now())
    return job


def call(task, args, kwargs):
    return task.func(*args, **kwargs)


def entry(attempt, worker, message, start=None, seconds=1.5, cls="builtins.ValueError"):
    """An error entry; without ``start`` it is an old one (written before entries had times)."""
    end = start + timedelta(seconds=seconds) if start else None
    tb = f'Traceback (most recent call last):\n  File "x.py"\n{cls}: {message}\n'
    return error_entry(cls, tb, attempt, worker, start, end)


def three_failed_attempts() -> Job:
    """Failed after 3 attempts: the first recorded before entries had times."""
    job = failed_job("x")
    errors = [
        entry(1, "w-old", "first"),
        entry(2, "w-2", "second", T0 + timedelta(minutes=1)),
        entry(3, "w-3", "third", T0 + timedelta(minutes=2), seconds=0.25),
    ]
    last = T0 + timedelta(minutes=2)
    set_status(
        job.pk, JobStatus.FAILED, attempts=3, max_attempts=3, errors=errors,
        last_attempted_at=last, finished_at=last + timedelta(seconds=1),
    )  # fmt: skip
    return Job.objects.get(pk=job.pk)


# --- the page -------------------------------------------------------------------------------
def test_failed_job_page_shows_the_last_error_first_then_every_attempt_with_its_times(operator):
    # Given a job that failed its three attempts (the first entry has no times)
    job = three_failed_attempts()
    # When the operator opens its page
    page = operator.get(job_page(job.pk)).content.decode()
    # Then the header, then the errors (last one open, earlier ones folded), then the timeline
    assert page.index('id="jobs-summary"') < page.index('id="jobs-errors"')
    assert page.index('id="jobs-errors"') < page.index('id="jobs-attempts"')
    errors = page[page.index('id="jobs-errors"') : page.index('id="jobs-attempts"')]
    assert errors.index("ValueError: third") < errors.index("<details")
    assert errors.count("<details") == 2 and "ValueError: first" in errors
    assert "3/3" in page  # attempts in the header
    # Each attempt: start and end to the second, duration in ms below a second, worker
    timeline_html = page[page.index('id="jobs-attempts"') :]
    second = timezone.localtime(T0 + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert second in timeline_html and "1.500 s" in timeline_html  # to the millisecond
    assert "250 ms" in timeline_html and "w-3" in timeline_html
    assert "w-old" in timeline_html
    # The old entry (attempt 1) renders without times
    body = timeline_html[timeline_html.index("<tbody>") :]
    first_row = body[: body.index("</tr>")]
    assert first_row.count("–") >= 3
    assert 'name="_save"' not in page


def test_timeline_of_a_job_running_its_second_attempt():
    # Given a job whose first attempt failed (with times) and whose second is running
    result = tasks.always_fails.enqueue()
    start = T0 + timedelta(minutes=5)
    set_status(
        result.id, JobStatus.RUNNING, attempts=2, max_attempts=3, claimed_by="w-b",
        last_attempted_at=start, worker_ids=["w-a", "w-b"],
        errors=[entry(1, "w-a", "boom", T0)],
    )  # fmt: skip
    # When its timeline is built
    first, second = timeline(Job.objects.get(pk=result.id))
    # Then the failure has its times and the current attempt runs on w-b since its claim
    assert (first.number, first.outcome, first.worker_id) == (1, "failed", "w-a")
    assert first.duration == timedelta(seconds=1.5)
    assert (second.number, second.outcome, second.worker_id) == (2, "running", "w-b")
    assert second.started_at == start and second.finished_at is None


def test_timeline_of_a_successful_retry_and_of_a_job_cancelled_before_it_started():
    done = tasks.fails_until.enqueue()
    set_status(
        done.id, JobStatus.SUCCESSFUL, attempts=2, worker_ids=["w-a", "w-b"],
        last_attempted_at=T0, finished_at=T0 + timedelta(seconds=3), errors=[entry(1, "w-a", "x")],
    )  # fmt: skip
    rows = timeline(Job.objects.get(pk=done.id))
    assert [(r.number, r.outcome) for r in rows] == [(1, "failed"), (2, "succeeded")]
    assert rows[0].started_at is None  # an old entry of an earlier attempt: unknown
    assert rows[1].duration == timedelta(seconds=3) and rows[1].worker_id == "w-b"
    queued = tasks.add.enqueue(1, 2)
    Job.objects.filter(pk=queued.id).cancel(T0)
    [row] = timeline(Job.objects.get(pk=queued.id))
    assert (row.number, row.outcome, row.finished_at) == (None, "cancelled before it started", T0)


@pytest.mark.django_db(transaction=True)
def test_a_failed_attempt_records_when_it_started_and_ended():
    # Given a claimed job that fails
    result = tasks.always_fails.enqueue()
    job = claim()
    # When the worker records the failure
    run_attempt(Attempt(job, "worker-a", task_backends["default"]), call)
    # Then its entry holds the attempt's start (the claim) and its end
    [error] = Job.objects.get(pk=result.id).errors
    assert parse_datetime(error["started_at"]) == job.last_attempted_at
    assert parse_datetime(error["finished_at"]) >= job.last_attempted_at


def test_a_rescued_attempt_records_when_it_started():
    result = tasks.add.enqueue(1, 2)
    job = claim()
    Job.objects.filter(pk=result.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert leases.rescue_expired("default", timezone.now()) == 1
    [error] = Job.objects.get(pk=result.id).errors
    assert parse_datetime(error["started_at"]) == job.last_attempted_at
    assert "finished_at" in error


# --- cancel ---------------------------------------------------------------------------------
def test_cancel_button_asks_a_running_job_to_stop_after_a_confirmation(operator):
    # Given a running job
    result = tasks.add.enqueue(1, 2)
    claim()
    page = operator.get(job_page(result.id)).content.decode()
    assert 'id="jobs-cancel"' in page
    url = reverse("admin:django_jobs_job_cancel", args=[result.id])
    # When Cancel is pressed: a confirmation page, nothing done yet
    confirm = operator.post(url)
    assert confirm.status_code == 200 and "ask it to stop" in confirm.content.decode()
    assert Job.objects.get(pk=result.id).cancel_requested_at is None
    # When confirmed: the job is asked to stop, and the message says so (not "cancelled")
    done = operator.post(url, {"confirmed": "yes"}, follow=True)
    job = Job.objects.get(pk=result.id)
    assert job.status == JobStatus.RUNNING and job.cancel_requested_at is not None
    assert "Asked 1 running job to stop." in done.content.decode()
    assert LogEntry.objects.get().change_message == "Asked 1 running job to stop."
    # Then the page says a stop was requested and offers no second Cancel
    page = done.content.decode()
    assert "stop requested" in page and 'id="jobs-cancel"' not in page


def test_cancel_button_cancels_a_queued_job(operator):
    result = tasks.add.enqueue(1, 2)
    url = reverse("admin:django_jobs_job_cancel", args=[result.id])
    done = operator.post(url, {"confirmed": "yes"}, follow=True)
    assert Job.objects.get(pk=result.id).status == JobStatus.CANCELLED
    assert "Cancelled 1 job." in done.content.decode()


def test_bulk_cancel_says_what_was_cancelled_and_what_was_asked_to_stop(operator):
    ready = [tasks.add.enqueue(i, i) for i in range(3)]
    claim()  # the oldest one runs
    post_action(operator, "cancel_jobs", [r.id for r in ready])
    listing = operator.get(reverse("admin:django_jobs_job_changelist")).content.decode()
    assert "Cancelled 2 jobs; asked 1 running job to stop." in listing


def test_read_only_user_gets_no_cancel_button_and_cannot_cancel(viewer):
    result = tasks.add.enqueue(1, 2)
    claim()
    page = viewer.get(job_page(result.id)).content.decode()
    assert 'id="jobs-cancel"' not in page and 'id="jobs-summary"' in page
    url = reverse("admin:django_jobs_job_cancel", args=[result.id])
    assert viewer.post(url, {"confirmed": "yes"}).status_code == 403
    assert Job.objects.get(pk=result.id).cancel_requested_at is None


# --- live endpoint ------------------------------------------------------------------------
def test_live_endpoint_reports_status_attempts_and_progress_of_the_rows_asked(operator):
    running, waiting, other = (tasks.add.enqueue(i, i) for i in range(3))
    claim()
    Job.objects.filter(pk=running.id).update(progress={"current": 2, "total": 5, "message": "rows"})
    data = operator.get(LIVE, {"id": [running.id, waiting.id]}).json()
    jobs = {j["id"]: j for j in data["jobs"]}
    assert set(jobs) == {running.id, waiting.id}  # only those asked
    assert jobs[running.id]["state"] == "RUNNING" and jobs[running.id]["attempts"] == "1/1"
    assert 'value="40.0"' in jobs[running.id]["progress_html"]
    assert (
        "40 %" in jobs[running.id]["progress_html"] and "rows" in jobs[running.id]["progress_html"]
    )
    assert jobs[waiting.id]["finished"] is False and jobs[waiting.id]["progress_html"] == ""


def test_live_endpoint_detail_renders_the_page_sections(operator):
    result = tasks.add.enqueue(1, 2)
    claim()
    [job] = operator.get(LIVE, {"id": result.id, "detail": "1"}).json()["jobs"]
    assert "running for" in job["sections"]["attempts"]
    assert "Running for" in job["sections"]["summary"]
    assert job["sections"]["errors_first"] == "" and job["can_cancel"] is True


def test_live_endpoint_costs_the_same_for_3_or_100_rows(operator, django_assert_num_queries):
    ids = [tasks.add.enqueue(i, i).id for i in range(100)]
    operator.get(LIVE, {"id": ids[:3]})
    with django_assert_num_queries(3):  # session, user, one SELECT … WHERE id IN (…)
        assert len(operator.get(LIVE, {"id": ids[:3]}).json()["jobs"]) == 3
    with django_assert_num_queries(3):
        assert len(operator.get(LIVE, {"id": ids}).json()["jobs"]) == 100


def test_live_endpoint_refuses_bad_requests_writes_and_users_without_view_job(operator, viewer):
    job = tasks.add.enqueue(1, 2)
    assert operator.get(LIVE, {"id": "not-a-uuid"}).status_code == 400
    too_many = [tasks.add.enqueue(i, i).id for i in range(101)]
    assert operator.get(LIVE, {"id": too_many}).status_code == 400
    assert viewer.get(LIVE, {"id": job.id}).status_code == 200
    assert viewer.post(LIVE, {"id": job.id}).status_code == 405
    nobody = client_for(make_user("nobody"))
    assert nobody.get(LIVE, {"id": job.id}).status_code == 403
