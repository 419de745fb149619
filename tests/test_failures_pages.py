"""The failures page (failed jobs grouped, group retry and discard) and the page of a task."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs.console import failures, tasks
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Schedule
from tests import tasks as task_module
from tests.console import PASSWORD, make_user
from tests.console import ended_job as failed

pytestmark = pytest.mark.django_db

FAILURES = reverse("admin:django_jobs_failure_changelist")
GROUP = reverse("admin:django_jobs_failure_group")
ECHO, ADD = "tests.tasks.echo", "tests.tasks.add"


def client_for(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def task_page(path: str) -> str:
    return reverse("admin:django_jobs_taskpage_task", args=[path])


@pytest.fixture
def history():
    """Failures of two tasks and three classes, recent and old, and jobs that did not fail."""
    return {
        "echo_value": [
            failed(task_module.echo, "builtins.ValueError", ago=timedelta(minutes=m))
            for m in (3, 30, 90)
        ],
        # the last error decides the group: KeyError first, then ValueError
        "echo_value_retried": failed(
            task_module.echo, "builtins.KeyError", "builtins.ValueError", ago=timedelta(hours=2)
        ),
        "echo_key": failed(task_module.echo, "builtins.KeyError", ago=timedelta(minutes=10)),
        "add_value": failed(task_module.add, "builtins.ValueError", ago=timedelta(minutes=20)),
        "add_runtime": [
            failed(task_module.add, "app.errors.Timeout", ago=timedelta(minutes=m)) for m in (1, 2)
        ],
        "echo_old": failed(task_module.echo, "builtins.ValueError", ago=timedelta(days=3)),
        "echo_cancelled": failed(
            task_module.echo, "builtins.ValueError", status=JobStatus.CANCELLED
        ),
        "echo_succeeded": failed(task_module.echo, status=JobStatus.SUCCESSFUL),
    }


def summary(found) -> dict:
    return {(g.task_path, g.exception_class): g.count for g in found.groups}


# --- grouping -----------------------------------------------------------------------------
def test_failures_group_by_task_and_the_class_of_the_last_error(history):
    # When the failures of the last day are grouped
    found = failures.groups("default", timezone.now(), "day")
    # Then each task × class has its count; cancelled, successful and old jobs are left out
    assert summary(found) == {
        (ECHO, "builtins.ValueError"): 4,
        (ADD, "app.errors.Timeout"): 2,
        (ECHO, "builtins.KeyError"): 1,
        (ADD, "builtins.ValueError"): 1,
    }
    assert [g.count for g in found.groups] == [4, 2, 1, 1]  # most failures first
    assert found.scanned == 8 and not found.truncated


def test_a_group_has_first_and_last_seen_and_the_newest_jobs_last_error_as_sample(history):
    now = timezone.now()
    group = next(g for g in failures.groups("default", now, "day").groups if g.count == 4)
    newest = Job.objects.get(pk=history["echo_value"][0])
    oldest = Job.objects.get(pk=history["echo_value_retried"])
    assert (group.last_seen, group.first_seen) == (newest.finished_at, oldest.finished_at)
    assert group.sample_id == newest.pk
    assert group.sample_error == newest.errors[-1]
    assert "builtins.ValueError: attempt 1" in group.sample_error["traceback"]
    assert group.exception_name == "ValueError"


def test_the_window_and_the_task_narrow_the_groups(history):
    now = timezone.now()
    assert summary(failures.groups("default", now, "hour")) == {
        (ECHO, "builtins.ValueError"): 2,
        (ADD, "app.errors.Timeout"): 2,
        (ECHO, "builtins.KeyError"): 1,
        (ADD, "builtins.ValueError"): 1,
    }
    assert summary(failures.groups("default", now, "week"))[ECHO, "builtins.ValueError"] == 5
    assert summary(failures.groups("default", now, "week", task=ADD)) == {
        (ADD, "app.errors.Timeout"): 2,
        (ADD, "builtins.ValueError"): 1,
    }


def test_a_failed_job_without_errors_has_its_own_group():
    failed(task_module.echo)
    (group,) = failures.groups("default", timezone.now(), "day").groups
    assert (group.exception_class, group.exception_name) == ("", "(no error recorded)")
    assert group.sample_error == {}


def test_counts_stop_at_the_scan_limit(monkeypatch, history):
    monkeypatch.setattr(failures, "SCAN_LIMIT", 3)
    found = failures.groups("default", timezone.now(), "day")
    assert found.truncated and found.scanned == 3
    assert sum(g.count for g in found.groups) == 3


# --- the page -------------------------------------------------------------------------------
def test_the_page_lists_the_groups_with_counts_and_a_sample_traceback(
    history, admin_client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(5):
        response = admin_client.get(FAILURES)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="jobs-failure-group"') == 4
    assert "builtins.ValueError: attempt 1" in html
    assert "app.errors.Timeout" in html
    assert html.count("jobs-retry-group") == 4 and html.count("jobs-discard-group") == 4


def test_the_page_query_count_does_not_grow_with_groups(
    admin_client, django_assert_max_num_queries
):
    for n in range(30):
        failed(task_module.echo, f"app.errors.Error{n}")
    with django_assert_max_num_queries(5):
        response = admin_client.get(FAILURES + "?window=week")
    assert response.content.decode().count('class="jobs-failure-group"') == 30


def test_the_admin_index_links_to_the_failures_and_tasks_pages(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert FAILURES in html
    assert reverse("admin:django_jobs_taskpage_changelist") in html


# --- group actions --------------------------------------------------------------------------
def post_group(client, action: str, task: str, cls: str, **extra):
    data = {"action": action, "task": task, "exception_class": cls, "window": "day", **extra}
    return client.post(GROUP, data)


def statuses(ids) -> list[str]:
    return [Job.objects.get(pk=pk).status for pk in ids]


def test_retrying_a_group_asks_first_then_retries_exactly_its_failed_jobs(history, admin_client):
    # When the operator asks to retry echo's ValueErrors
    response = post_group(admin_client, "retry", ECHO, "builtins.ValueError")
    # Then a confirmation states how many jobs, and nothing changed yet
    assert response.status_code == 200
    assert response.context["count"] == 4
    assert "Yes, retry 4 jobs" in response.content.decode()
    assert Job.objects.filter(status=JobStatus.READY).count() == 0
    # When they confirm (with the bounds the confirmation carries)
    confirmed = {k: response.context[k] for k in ("since", "until")}
    response = post_group(
        admin_client, "retry", ECHO, "builtins.ValueError", confirmed="yes", **confirmed
    )
    # Then exactly the group's failed jobs are READY again, and nothing else moved
    assert response.status_code == 302
    group = [*history["echo_value"], history["echo_value_retried"]]
    assert set(statuses(group)) == {JobStatus.READY}
    others = [history[k] for k in ("echo_key", "add_value", "echo_old", "echo_cancelled")]
    assert statuses(others) == [
        JobStatus.FAILED,
        JobStatus.FAILED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    ]
    assert set(statuses(history["add_runtime"])) == {JobStatus.FAILED}
    assert Job.objects.filter(status=JobStatus.READY).count() == 4
    entry = LogEntry.objects.get()
    assert "Retried 4 failed jobs" in entry.change_message
    assert ECHO in entry.object_repr


def test_a_failure_after_the_confirmation_page_is_not_retried(history, admin_client):
    response = post_group(admin_client, "retry", ADD, "app.errors.Timeout")
    bounds = {k: response.context[k] for k in ("since", "until")}
    later = failed(task_module.add, "app.errors.Timeout", ago=timedelta(0))
    Job.objects.filter(pk=later).update(finished_at=timezone.now() + timedelta(seconds=5))
    post_group(admin_client, "retry", ADD, "app.errors.Timeout", confirmed="yes", **bounds)
    assert set(statuses(history["add_runtime"])) == {JobStatus.READY}
    assert statuses([later]) == [JobStatus.FAILED]


def test_discarding_a_group_deletes_its_failed_jobs_only(history, admin_client):
    response = post_group(admin_client, "discard", ADD, "app.errors.Timeout")
    assert response.context["count"] == 2
    assert "Yes, discard 2 jobs" in response.content.decode()
    assert Job.objects.filter(pk__in=history["add_runtime"]).count() == 2  # nothing deleted yet
    bounds = {k: response.context[k] for k in ("since", "until")}
    post_group(admin_client, "discard", ADD, "app.errors.Timeout", confirmed="yes", **bounds)
    assert not Job.objects.filter(pk__in=history["add_runtime"]).exists()
    assert Job.objects.filter(pk=history["add_value"]).exists()
    assert Job.objects.count() == 11 - 2
    assert "Discarded 2 failed jobs" in LogEntry.objects.get().change_message


def test_a_group_without_an_error_can_be_retried(admin_client):
    job_id = failed(task_module.echo)
    post_group(admin_client, "retry", ECHO, "", confirmed="yes")
    assert statuses([job_id]) == [JobStatus.READY]


# --- permissions ----------------------------------------------------------------------------
def test_a_read_only_user_sees_the_groups_but_no_buttons_and_cannot_act(history):
    viewer = client_for(make_user("viewer", "view_job"))
    html = viewer.get(FAILURES).content.decode()
    assert 'class="jobs-failure-group"' in html
    assert "jobs-retry-group" not in html and "jobs-discard-group" not in html
    for action in ("retry", "discard"):
        response = post_group(viewer, action, ECHO, "builtins.ValueError", confirmed="yes")
        assert response.status_code == 403
    assert Job.objects.filter(status=JobStatus.FAILED).count() == 9  # 8 of the day, 1 older


def test_retry_needs_retry_job_and_discard_needs_delete_job(history):
    retrier = client_for(make_user("retrier", "view_job", "retry_job"))
    html = retrier.get(FAILURES).content.decode()
    assert "jobs-retry-group" in html and "jobs-discard-group" not in html
    assert post_group(retrier, "discard", ADD, "app.errors.Timeout").status_code == 403
    cleaner = client_for(make_user("cleaner", "view_job", "delete_job"))
    assert post_group(cleaner, "retry", ADD, "app.errors.Timeout").status_code == 403
    assert post_group(cleaner, "discard", ADD, "app.errors.Timeout").status_code == 200


def test_the_pages_refuse_users_who_may_not_view_jobs():
    nobody = client_for(make_user("nobody"))
    assert nobody.get(FAILURES).status_code == 403
    assert nobody.get(task_page(ECHO)).status_code == 403


def test_the_group_action_needs_a_post_and_its_fields(admin_client):
    assert admin_client.get(GROUP).status_code == 405
    assert admin_client.post(GROUP, {"action": "explode"}).status_code == 400


# --- the task page --------------------------------------------------------------------------
def test_task_figures_count_the_hour_and_the_day():
    now = timezone.now()
    for minutes in (5, 10, 120):
        failed(task_module.add, status=JobStatus.SUCCESSFUL, ago=timedelta(minutes=minutes))
    failed(task_module.add, "builtins.ValueError", ago=timedelta(minutes=7))
    failed(task_module.add, "builtins.ValueError", ago=timedelta(hours=3))
    failed(task_module.add, status=JobStatus.CANCELLED, ago=timedelta(hours=4))
    failed(task_module.echo, status=JobStatus.SUCCESSFUL)
    figures = tasks.throughput("default", now, ADD)
    assert (figures["hour"]["succeeded"], figures["hour"]["failed"]) == (2, 1)
    assert figures["hour"]["failure_rate"] == pytest.approx(1 / 3)
    assert figures["hour"]["per_minute"] == pytest.approx(3 / 60)
    assert (figures["day"]["succeeded"], figures["day"]["failed"]) == (3, 2)
    assert figures["day"]["cancelled"] == 1
    assert figures["day"]["failure_rate"] == pytest.approx(2 / 5)


def test_task_latency_percentiles_per_span():
    now = timezone.now()
    for run in range(1, 11):
        failed(task_module.add, status=JobStatus.SUCCESSFUL, run=run)
    failed(task_module.add, status=JobStatus.SUCCESSFUL, ago=timedelta(hours=5), run=100)
    latency = tasks.latency("default", now, ADD)
    assert latency["hour"]["sample"] == 10 and latency["day"]["sample"] == 11
    assert latency["hour"]["run"]["max"] == pytest.approx(10)
    assert latency["day"]["run"]["max"] == pytest.approx(100)
    assert latency["hour"]["wait"]["p50"] == pytest.approx(0.5)


def test_the_task_page_shows_figures_failures_schedules_and_limits(
    admin_client, django_assert_max_num_queries
):
    path = "tests.tasks.three_per_minute"
    failed(task_module.three_per_minute, "app.errors.Throttled")
    failed(task_module.three_per_minute, status=JobStatus.SUCCESSFUL)
    Schedule.objects.create(name="nightly", task=path, cron="0 3 * * *")
    Schedule.objects.create(name="someone else's", task=ADD, cron="0 4 * * *")
    with django_assert_max_num_queries(9):
        response = admin_client.get(task_page(path))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Throttled" in html and "50.0%" in html
    assert "nightly" in html and "someone else" not in html
    assert "3/m" in html and "shared-api" in html
    assert f"{FAILURES}?window=day&amp;task={path}" in html
    assert response.context["options"]["rate_limit"] == "3/m"


def test_the_page_of_an_undeclared_task_says_so(admin_client):
    response = admin_client.get(task_page("gone.module.task"))
    assert response.status_code == 200
    assert response.context["options"] is None
    assert "not declared" in response.content.decode()


def test_the_task_list_links_every_declared_and_scheduled_task(admin_client):
    Schedule.objects.create(name="legacy", task="legacy.tasks.old", cron="0 3 * * *")
    html = admin_client.get(reverse("admin:django_jobs_taskpage_changelist")).content.decode()
    assert task_page(ADD) in html and task_page("legacy.tasks.old") in html


def test_the_failures_page_links_each_group_to_its_task_page(history, admin_client):
    html = admin_client.get(FAILURES).content.decode()
    assert task_page(ECHO) in html and task_page(ADD) in html


def test_the_job_list_links_to_the_failures_page_and_to_the_filtered_tasks_page(admin_client):
    changelist = reverse("admin:django_jobs_job_changelist")
    html = admin_client.get(changelist).content.decode()
    assert FAILURES in html and "jobs-task-page-link" not in html
    html = admin_client.get(changelist + f"?task_path={ADD}").content.decode()
    assert f'href="{task_page(ADD)}"' in html


def test_the_dashboard_links_to_the_failures_page(admin_client):
    html = admin_client.get(reverse("admin:django_jobs_dashboard_changelist")).content.decode()
    assert f'href="{FAILURES}"' in html
