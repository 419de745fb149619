"""The operations console in the admin: changelist, job page, bulk actions, permissions."""

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.test import Client
from django.urls import reverse

from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Worker
from tests import tasks
from tests.console import PASSWORD, failed_job, make_user, set_status

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:django_jobs_job_changelist")


def client_for(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.fixture
def operator():
    return client_for(make_user("operator", superuser=True))


@pytest.fixture
def viewer():
    return client_for(make_user("viewer", "view_job", "view_worker", "view_queue"))


def job_page(job_id) -> str:
    return reverse("admin:django_jobs_job_change", args=[job_id])


def post_action(client, action: str, ids=(), query: str = "", **extra):
    data = {"action": action, "index": 0, "_selected_action": [str(i) for i in ids], **extra}
    return client.post(CHANGELIST + query, data)


# --- changelist ---------------------------------------------------------------------------
def test_changelist_shows_attempts_wait_and_run_time(operator):
    job = failed_job("x")
    page = operator.get(CHANGELIST).content.decode()
    assert str(job.pk)[:8] in page
    assert "1/1" in page  # attempts
    assert "2.000 s" in page  # run time: last attempt to finish, to the millisecond
    assert "jobs-status-failed" in page


def test_changelist_filters_by_status_queue_task_and_worker(operator):
    failed = failed_job("a", worker="w-9")
    ready = tasks.other_queue.enqueue(1)
    Worker.objects.create(
        id="w-9",
        hostname="h",
        pid=1,
        started_at=failed.enqueued_at,
        last_heartbeat_at=failed.enqueued_at,
    )
    cases = {
        "?status__exact=FAILED": failed.pk,
        "?queue_name=emails": ready.id,
        "?task_path=tests.tasks.other_queue": ready.id,
        "?claimed_by=w-9": failed.pk,
    }
    for query, expected in cases.items():
        response = operator.get(CHANGELIST + query)
        ids = {str(j.pk) for j in response.context["cl"].result_list}
        assert ids == {str(expected)}, query


def test_search_finds_jobs_by_id_task_and_json_values(operator):
    needle = tasks.echo.enqueue("alpha", customer={"email": "ada@example.com"})
    other = tasks.add.enqueue(1, 2)
    for term, expected in (
        (needle.id, needle.id),
        ("ada@example", needle.id),
        ("alpha", needle.id),
        ("tests.tasks.add", other.id),
    ):
        response = operator.get(CHANGELIST, {"q": term})
        assert [str(j.pk) for j in response.context["cl"].result_list] == [expected], term


def test_search_finds_a_job_by_the_short_id_the_changelist_shows(operator):
    # Given a few jobs, one of which the operator copied the short id of
    needle = tasks.add.enqueue(1, 2)
    for _ in range(3):
        tasks.add.enqueue(3, 4)
    short = str(needle.id)[:8]
    assert short in operator.get(CHANGELIST).content.decode()
    # When they search for that short id, or the full id in upper case
    for term in (short, needle.id.upper()):
        response = operator.get(CHANGELIST, {"q": term})
        # Then exactly that job is found
        assert [str(j.pk) for j in response.context["cl"].result_list] == [needle.id], term


# --- job page -----------------------------------------------------------------------------
def test_job_page_is_read_only_and_shows_args_errors_and_worker(operator):
    job = failed_job("hello", nested={"a": [1, 2]})
    page = operator.get(job_page(job.pk)).content.decode()
    assert "&quot;nested&quot;: {" in page  # pretty-printed kwargs
    assert "ValueError: boom" in page  # the traceback
    assert "Attempt 1" in page and "w-1" in page
    assert 'name="_save"' not in page  # nothing to edit
    assert 'id="jobs-retry"' in page


# --- actions ------------------------------------------------------------------------------
def test_retry_action_on_selected_rows_is_one_bulk_update_logged_per_job(
    operator, django_assert_max_num_queries
):
    jobs = [failed_job(i) for i in range(30)]
    # Retrying 30 rows costs what retrying 3 costs: no save per row.
    post_action(operator, "retry_jobs", [j.pk for j in jobs[:3]])
    with django_assert_max_num_queries(12):
        response = post_action(operator, "retry_jobs", [j.pk for j in jobs[3:]])
    assert response.status_code == 302
    assert Job.objects.filter(status=JobStatus.READY).count() == 30
    entries = LogEntry.objects.filter(action_flag=CHANGE, change_message="Retried 27 jobs.")
    assert entries.count() == 27


def test_action_on_everything_filtered_confirms_the_count_then_logs_one_entry(operator):
    # Given 4 failed jobs and 2 ready ones
    failed = [failed_job(i) for i in range(4)]
    for i in range(2):
        tasks.add.enqueue(i, i)
    query = "?status__exact=FAILED"
    # When "select all 4" is used with retry
    confirm = post_action(operator, "retry_jobs", [failed[0].pk], query, select_across=1)
    # Then a confirmation page says how many, and nothing happened yet
    assert confirm.status_code == 200
    assert "Retry <strong>4</strong> jobs" in confirm.content.decode()
    assert not Job.objects.filter(status=JobStatus.READY, attempts=1).exists()
    # When confirmed
    done = post_action(
        operator, "retry_jobs", [failed[0].pk], query, select_across=1, confirmed="yes"
    )
    # Then all four are queued again and one summary entry records the filter
    assert done.status_code == 302
    assert Job.objects.filter(status=JobStatus.READY, attempts=1).count() == 4
    entry = LogEntry.objects.get()
    assert entry.object_id is None
    assert "status__exact=FAILED" in entry.object_repr
    assert entry.change_message == "Retried 4 jobs."


def test_cancel_action_cancels_only_jobs_that_have_not_started(operator):
    ready = tasks.add.enqueue(1, 2)
    running = tasks.add.enqueue(3, 4)
    set_status(running.id, JobStatus.RUNNING)
    post_action(operator, "cancel_jobs", [ready.id, running.id])
    assert Job.objects.get(pk=ready.id).status == JobStatus.CANCELLED
    assert Job.objects.get(pk=running.id).status == JobStatus.RUNNING


def test_delete_action_asks_first_and_spares_running_jobs(operator):
    done = failed_job("x")
    running = tasks.add.enqueue(3, 4)
    set_status(running.id, JobStatus.RUNNING)
    ids = [done.pk, running.id]
    confirm = post_action(operator, "delete_jobs", ids)
    assert "Delete <strong>2</strong> jobs" in confirm.content.decode()
    assert Job.objects.count() == 2
    post_action(operator, "delete_jobs", ids, confirmed="yes")
    assert [str(pk) for pk in Job.objects.values_list("pk", flat=True)] == [running.id]
    assert LogEntry.objects.get(action_flag=DELETION).object_id == str(done.pk)


def test_retry_button_on_the_job_page(operator):
    job = failed_job("x")
    response = operator.post(reverse("admin:django_jobs_job_retry", args=[job.pk]))
    assert response.status_code == 302
    assert Job.objects.get(pk=job.pk).status == JobStatus.READY
    assert LogEntry.objects.get().change_message == "Retried 1 job."


# --- permissions --------------------------------------------------------------------------
def test_read_only_staff_sees_everything_and_can_change_nothing(viewer):
    job = failed_job("x")
    # Sees the list, the job page and the dashboard
    listing = viewer.get(CHANGELIST)
    assert listing.status_code == 200
    assert list(listing.context["cl"].model_admin.get_actions(listing.wsgi_request)) == []
    page = viewer.get(job_page(job.pk)).content.decode()
    assert "ValueError: boom" in page and 'id="jobs-retry"' not in page
    assert viewer.get(reverse("admin:django_jobs_dashboard_changelist")).status_code == 200
    # Cannot retry, cancel, delete or pause, however the request is made
    post_action(viewer, "retry_jobs", [job.pk])
    viewer.post(reverse("admin:django_jobs_job_retry", args=[job.pk]))
    post_action(viewer, "delete_jobs", [job.pk], confirmed="yes")
    paused = viewer.post(
        reverse("admin:django_jobs_dashboard_queue"), {"queue": "default", "action": "pause"}
    )
    assert paused.status_code == 403
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
    assert not LogEntry.objects.exists()


def test_retry_permission_alone_allows_retry_but_not_cancel_or_delete():
    client = client_for(make_user("retrier", "view_job", "retry_job"))
    response = client.get(CHANGELIST)
    actions = response.context["cl"].model_admin.get_actions(response.wsgi_request)
    assert list(actions) == ["retry_jobs"]


def test_staff_without_view_job_cannot_open_the_console():
    client = client_for(make_user("nobody"))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(reverse("admin:django_jobs_dashboard_data")).status_code == 403
