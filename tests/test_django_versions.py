"""Django 5.2 (django-tasks backport), 6.0 and 6.1: what a user of each writes works.

Each matrix row of scripts/test.sh runs these on its own Django; the module a user imports the
Tasks API from (``django.tasks`` or ``django_tasks``) is looked up by name, as a user would.
"""

import importlib
import logging
import subprocess
import sys

import django
import pytest

from django_jobs.checks.settings import check_tasks_app
from django_jobs.exceptions import InvalidTaskOptions
from django_jobs.tasks import JobTask
from django_jobs.tasks_api import BACKPORT, TASK_FORWARDS_OPTIONS, TASKS_MODULE
from tests import tasks

#: What the user of this Django imports: django.tasks (6.x) or django_tasks (5.2 backport).
users_api = importlib.import_module(TASKS_MODULE)


def _plain(x):
    return x


def test_the_tasks_api_comes_from_the_installed_django():
    # Given the installed Django
    # Then the Tasks API is Django's own from 6.0 on, the backport's on 5.2
    assert BACKPORT == (django.VERSION < (6, 0))
    assert TASKS_MODULE == ("django_tasks" if django.VERSION < (6, 0) else "django.tasks")
    assert issubclass(JobTask, importlib.import_module(f"{TASKS_MODULE}.base").Task)


@pytest.mark.skipif(not TASK_FORWARDS_OPTIONS, reason="Django 6.0's @task drops extra keywords")
def test_the_users_task_decorator_passes_our_options():
    # Given the @task a user of this Django imports (django_tasks.task on 5.2)
    # When it declares a task with django-jobs options
    declared = users_api.task(max_attempts=4, timeout=9)(_plain)
    # Then the backend's task class carries them
    assert isinstance(declared, JobTask)
    assert (declared.max_attempts, declared.timeout) == (4, 9)


def test_bad_options_raise_the_users_invalid_task_exception():
    # Given the "invalid task" exception of the user's Tasks API (InvalidTaskError on 5.2)
    exceptions = importlib.import_module(f"{TASKS_MODULE}.exceptions")
    invalid_task = exceptions.InvalidTaskError if BACKPORT else exceptions.InvalidTask
    # When a task gets a bad option
    # Then the user's except clause catches it
    with pytest.raises(invalid_task):
        tasks.add.using(max_attempts=0)
    assert issubclass(InvalidTaskOptions, invalid_task)


@pytest.mark.django_db
def test_the_users_task_enqueued_signal_and_logger_see_an_enqueue(caplog):
    # Given a receiver of the task_enqueued signal the user imports (django_tasks.signals on 5.2)
    signals = importlib.import_module(f"{TASKS_MODULE}.signals")
    received = []

    def receiver(sender, task_result, **kwargs):
        received.append(task_result.id)

    signals.task_enqueued.connect(receiver)
    try:
        # When a task is enqueued
        with caplog.at_level(logging.DEBUG, logger=TASKS_MODULE):
            result = tasks.add.enqueue(1, 2)
    finally:
        signals.task_enqueued.disconnect(receiver)
    # Then the receiver got it, and the API's own logger ("django_tasks" on 5.2) logged it
    assert received == [result.id]
    apis = ("django.tasks", "django_tasks")
    logged = [r.name for r in caplog.records if r.name in apis and result.id in r.getMessage()]
    assert logged == [TASKS_MODULE]


@pytest.mark.skipif(not BACKPORT, reason="Django 5.2 only: 6.x has django.tasks built in")
def test_backport_missing_from_installed_apps_is_an_error(settings):
    # Given Django 5.2 without 'django_tasks' in INSTALLED_APPS
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != "django_tasks"]
    # When the system checks run
    # Then E030 says to add it
    messages = check_tasks_app()
    assert [m.id for m in messages] == ["django_jobs.E030"]
    assert "'django_tasks'" in messages[0].hint


def test_the_test_project_passes_the_tasks_app_check():
    # Given the test project's settings (django_tasks installed on 5.2; nothing needed on 6.x)
    # When the check runs
    # Then it has nothing to say
    assert check_tasks_app() == []


@pytest.mark.skipif(not BACKPORT, reason="Django 5.2 only: 6.x has django.tasks built in")
def test_django_52_without_the_backport_says_what_to_install():
    # Given Django 5.2 where the django_tasks package cannot be imported
    code = "import sys; sys.modules['django_tasks'] = None; import django_jobs"
    # When django-jobs is imported
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    # Then it fails with ImproperlyConfigured naming the extra to install
    assert done.returncode != 0
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured:")
    assert "pip install 'django-jobs[django52]'" in last_line
