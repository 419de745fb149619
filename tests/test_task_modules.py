"""Tasks declared where a worker will not look: caught by `check` (W020), and the worker's
error says how to fix it (``task_modules``)."""

import pytest

from django_jobs.checks.tasks import check_task_modules
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import TaskResultStatus
from tests import outside_app_tasks
from tests.conftest import FAST_OPTIONS

pytestmark = pytest.mark.django_db

MODULE = "tests.outside_app_tasks"


def backend_with(settings, task_modules) -> None:
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": [],
            "OPTIONS": {"task_modules": task_modules},
        }
    }


def outside_warnings() -> list:
    return [m for m in check_task_modules() if MODULE in m.msg]


def test_check_warns_about_a_task_module_the_worker_will_not_import(settings):
    # Given a task declared in a module that is no installed app and not in task_modules
    backend_with(settings, ["tests.tasks"])
    # When the checks run
    warnings = outside_warnings()
    # Then W020 names the module and its task, and the hint says what to add
    assert [w.id for w in warnings] == ["django_jobs.W020"]
    assert "shout" in warnings[0].msg
    assert f"Add '{MODULE}' to TASKS['default']['OPTIONS']['task_modules']" in warnings[0].hint


def test_listing_the_module_in_task_modules_silences_the_warning(settings):
    backend_with(settings, ["tests.tasks", MODULE])
    assert outside_warnings() == []


def test_tasks_in_installed_apps_are_never_reported(settings):
    backend_with(settings, [])
    assert not [m for m in check_task_modules() if "testproject.demo" in m.msg]


@pytest.mark.processes
def test_the_worker_says_to_add_the_module_to_task_modules(spawn_worker):
    # Given a job of a task the worker cannot find (its module is not in task_modules)
    result = outside_app_tasks.shout.enqueue("hi")
    # When a real worker claims it
    worker = spawn_worker("--burst", options=FAST_OPTIONS)
    assert worker.wait(60) == 0, worker.output()
    # Then the job failed with a message naming the setting to change
    job = Job.objects.get(pk=result.id)
    assert job.status == JobStatus.FAILED
    assert f"add '{MODULE}' to TASKS[...]['OPTIONS']['task_modules']" in job.errors[0]["traceback"]


@pytest.mark.processes
def test_with_the_module_in_task_modules_the_worker_runs_it(spawn_worker):
    # Given the same job, and a worker told about the module
    result = outside_app_tasks.shout.enqueue("hi")
    options = {**FAST_OPTIONS, "task_modules": ["tests.tasks", MODULE]}
    # When it runs
    worker = spawn_worker("--burst", options=options)
    assert worker.wait(60) == 0, worker.output()
    # Then the task ran
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, "HI")
