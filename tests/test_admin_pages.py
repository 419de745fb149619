"""The queues, workers and workflows pages of the console: content, permissions, query counts."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs import chain
from django_jobs.jobs.operations import pause_queue
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Queue, Worker
from tests import tasks
from tests.console import PASSWORD, failed_job, make_user, set_status

pytestmark = pytest.mark.django_db

QUEUES = reverse("admin:django_jobs_queue_changelist")
QUEUE_STATE = reverse("admin:django_jobs_queue_state")
WORKERS = reverse("admin:django_jobs_worker_changelist")
WORKFLOWS = reverse("admin:django_jobs_workflow_changelist")


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


def worker(name: str, heartbeat_ago: timedelta = timedelta(seconds=3), **fields) -> Worker:
    now = timezone.now()
    return Worker.objects.create(
        id=name,
        hostname="host",
        pid=len(name),
        started_at=now - timedelta(hours=1),
        last_heartbeat_at=now - heartbeat_ago,
        **fields,
    )


def running(job_id, worker_id: str) -> None:
    now = timezone.now()
    set_status(
        job_id,
        JobStatus.RUNNING,
        claimed_by=worker_id,
        attempts=1,
        started_at=now,
        last_attempted_at=now - timedelta(seconds=5),
        lease_expires_at=now + timedelta(minutes=1),
    )


def queue_row(page: str, name: str) -> str:
    start = page.index(f'<tr data-queue="{name}">')
    return page[start : page.index("</tr>", start)]


# --- queues ---------------------------------------------------------------------------
def test_queues_page_lists_declared_queues_and_queues_with_jobs_with_depth_and_state(operator):
    tasks.add.enqueue(1, 2)
    tasks.add.enqueue(3, 4)
    running(tasks.add.enqueue(5, 6).id, "w-1")
    tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(7, 8)
    Job.objects.filter(task_path="tests.tasks.add").update(queue_name="default")
    undeclared = tasks.add.enqueue(9, 9)
    Job.objects.filter(pk=undeclared.id).update(queue_name="legacy")  # an old queue name
    pause_queue("default", "emails")

    page = operator.get(QUEUES).content.decode()

    # Declared (QUEUES), with jobs, or both: each once, with its words, never a bare ✓
    for name in ("default", "emails", "reports", "legacy"):
        assert f'<tr data-queue="{name}">' in page
    default = queue_row(page, "default")
    assert "jobs-status-active" in default and ">active<" in default
    assert [int(n) for n in _numbers(default)] == [2, 1, 1]  # ready, scheduled, running
    assert re.search(r"<td>[\d.]+ m?s</td>", default)  # the oldest ready job's age
    emails = queue_row(page, "emails")
    assert "jobs-status-paused" in emails and ">paused<" in emails
    assert 'value="resume"' in emails and 'value="pause"' in default
    assert "icon-yes" not in page and "icon-no" not in page


def _numbers(row: str) -> list[str]:
    """The ready, scheduled and running cells of a queue row."""

    return re.findall(r'<td class="jobs-number">(?:<a [^>]*>)?(\d+)', row)


def test_operator_pauses_and_resumes_a_queue_from_the_queues_page(operator):
    paused = operator.post(QUEUE_STATE, {"queue": "reports", "action": "pause"})
    assert paused.status_code == 302 and paused.url == QUEUES
    assert Queue.objects.get(pk="reports").paused
    page = operator.get(QUEUES).content.decode()
    assert "Paused queue reports" in page
    assert ">paused<" in queue_row(page, "reports")
    operator.post(QUEUE_STATE, {"queue": "reports", "action": "resume"})
    assert not Queue.objects.get(pk="reports").paused
    assert LogEntry.objects.count() == 2
    assert operator.get(QUEUE_STATE).status_code == 405


def test_read_only_user_sees_queues_but_no_pause_or_resume(viewer):
    pause_queue("default", "emails")
    page = viewer.get(QUEUES)
    assert page.status_code == 200
    content = page.content.decode()
    assert ">paused<" in queue_row(content, "emails")
    assert "<form" not in content.split('id="jobs-queue-list"')[1]
    assert viewer.post(QUEUE_STATE, {"queue": "emails", "action": "resume"}).status_code == 403
    assert Queue.objects.get(pk="emails").paused


def test_staff_without_queue_permission_cannot_see_queues():
    client = client_for(make_user("jobs-only", "view_job"))
    assert client.get(QUEUES).status_code == 403


def test_queues_page_queries_stay_bounded_as_queues_and_jobs_grow(
    operator, django_assert_max_num_queries
):
    def fill(n: int) -> None:
        for i in range(n):
            result = tasks.add.enqueue(i, i)
            Job.objects.filter(pk=result.id).update(queue_name=f"q{i}")
            pause_queue("default", f"q{i}")

    fill(2)
    with django_assert_max_num_queries(12):
        small = operator.get(QUEUES)
    fill(30)
    with django_assert_max_num_queries(12):
        large = operator.get(QUEUES)
    assert small.status_code == large.status_code == 200
    assert large.content.decode().count("jobs-status-paused") == 30


# --- workers --------------------------------------------------------------------------
def test_workers_list_shows_heartbeat_age_state_running_count_and_a_link_to_its_jobs(operator):
    worker("live-1")
    worker("stale-1", heartbeat_ago=timedelta(hours=2))
    worker("gone-1", stopped_at=timezone.now())
    for _ in range(2):
        running(tasks.add.enqueue(1, 1).id, "live-1")

    page = operator.get(WORKERS).content.decode()

    assert ">live<" in page and ">stale<" in page and ">stopped<" in page
    assert ">2 / 1</a>" in page and ">0 / 1</a>" in page  # running / concurrency
    assert reverse("admin:django_jobs_job_changelist") + "?claimed_by=live-1" in page
    # Relative, the exact time on hover
    assert re.search(
        r'<span class="jobs-heartbeat" title="20[-\d]+ [:\d]+ UTC">[^<]+ ago</span>', page
    )


def test_workers_link_lists_that_workers_jobs(operator):
    worker("live-1")
    mine = tasks.add.enqueue(1, 1)
    running(mine.id, "live-1")
    other = tasks.add.enqueue(2, 2)
    running(other.id, "live-2")
    listing = operator.get(reverse("admin:django_jobs_job_changelist") + "?claimed_by=live-1")
    assert [str(j.pk) for j in listing.context["cl"].result_list] == [mine.id]


def test_worker_page_lists_the_jobs_it_runs_now_and_those_it_finished_last(operator):
    w = worker("live-1")
    now_running = tasks.add.enqueue(1, 1)
    running(now_running.id, "live-1")
    done = failed_job("x", worker="live-1", ago=timedelta(minutes=5))
    before_start = failed_job("y", worker="live-1", ago=timedelta(hours=3))
    others = failed_job("z", worker="someone-else")

    page = operator.get(reverse("admin:django_jobs_worker_change", args=[w.pk]))

    assert page.status_code == 200
    content = page.content.decode()
    running_now, finished = content.split("Finished last", 1)
    assert str(now_running.id)[:8] in running_now and ">1 / 1</a>" in content
    assert str(done.pk)[:8] in finished
    assert str(before_start.pk)[:8] not in content  # before this worker started
    assert str(others.pk)[:8] not in content


def test_workers_pages_queries_stay_bounded_as_workers_and_jobs_grow(
    operator, django_assert_max_num_queries
):
    def fill(start: int, n: int) -> None:
        for i in range(start, start + n):
            worker(f"w-{i}")
            running(tasks.add.enqueue(i, i).id, f"w-{i}")
            failed_job("x", worker=f"w-{i}")

    fill(0, 2)
    with django_assert_max_num_queries(10):
        assert operator.get(WORKERS).status_code == 200
    fill(2, 40)
    with django_assert_max_num_queries(10):
        page = operator.get(WORKERS)
    assert page.content.decode().count(">1 / 1</a>") == 42
    with django_assert_max_num_queries(12):
        assert (
            operator.get(reverse("admin:django_jobs_worker_change", args=["w-5"])).status_code
            == 200
        )


def test_read_only_user_sees_workers_and_a_worker_page(viewer):
    worker("live-1")
    assert viewer.get(WORKERS).status_code == 200
    page = viewer.get(reverse("admin:django_jobs_worker_change", args=["live-1"]))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()


# --- workflows ------------------------------------------------------------------------
def test_workflows_list_shows_name_created_status_and_a_link_to_its_steps(operator):
    waiting = chain(tasks.add.s(1, 2), tasks.add.s(10)).enqueue()
    in_progress = chain(tasks.add.s(1, 2), tasks.add.s(10), tasks.mul.si(3, 4)).enqueue()
    first = Job.objects.filter(workflow_id=in_progress.id, status=JobStatus.READY).get()
    set_status(first.pk, JobStatus.SUCCESSFUL, finished_at=timezone.now())

    listing = operator.get(WORKFLOWS)
    page = listing.content.decode()

    assert len(listing.context["cl"].result_list) == 2
    assert str(waiting.id)[:8] in page and str(in_progress.id)[:8] in page
    assert ">Waiting<" in page and ">In progress<" in page
    assert "0 of 2 steps finished" in page and "1 of 3 steps finished" in page
    link = reverse("admin:django_jobs_job_changelist") + f"?workflow__exact={in_progress.id}"
    assert link in page
    steps = operator.get(link)
    assert steps.status_code == 200
    assert len(steps.context["cl"].result_list) == 3


def test_workflow_page_shows_its_steps_in_order_with_their_status(operator):
    workflow = chain(tasks.add.s(1, 2), tasks.add.s(10), tasks.mul.si(3, 4)).enqueue()
    wf = Job.objects.filter(workflow_id=workflow.id).first().workflow
    page = operator.get(reverse("admin:django_jobs_workflow_change", args=[workflow.id]))
    assert page.status_code == 200
    content = page.content.decode()
    positions = [content.index(step[:8]) for step in wf.steps]
    assert positions == sorted(positions)
    assert "tests.tasks.mul" in content and "jobs-status-ready" in content


def test_workflow_status_follows_its_steps(operator):
    workflow = chain(tasks.add.s(1, 2), tasks.add.s(10)).enqueue()
    Job.objects.filter(workflow_id=workflow.id).update(
        status=JobStatus.SUCCESSFUL, finished_at=timezone.now()
    )
    assert ">Successful<" in operator.get(WORKFLOWS).content.decode()
    Job.objects.filter(workflow_id=workflow.id).update(status=JobStatus.FAILED)
    assert ">Failed<" in operator.get(WORKFLOWS).content.decode()


def test_workflows_list_queries_stay_bounded_as_workflows_grow(
    operator, django_assert_max_num_queries
):
    chain(tasks.add.s(1, 2), tasks.add.s(10)).enqueue()
    with django_assert_max_num_queries(8):
        assert operator.get(WORKFLOWS).status_code == 200
    for i in range(30):
        chain(tasks.add.s(i, i), tasks.add.s(1)).enqueue()
    with django_assert_max_num_queries(8):
        page = operator.get(WORKFLOWS)
    assert len(page.context["cl"].result_list) == 31


def test_read_only_user_sees_workflows_but_cannot_delete_them(viewer):
    workflow = chain(tasks.add.s(1, 2), tasks.add.s(10)).enqueue()
    listing = viewer.get(WORKFLOWS)
    assert listing.status_code == 200
    assert list(listing.context["cl"].model_admin.get_actions(listing.wsgi_request)) == []
    page = viewer.get(reverse("admin:django_jobs_workflow_change", args=[workflow.id]))
    assert page.status_code == 200
    assert "deletelink" not in page.content.decode()
