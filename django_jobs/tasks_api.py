"""Where the Tasks API comes from: ``django.tasks`` on Django >= 6.0, the ``django_tasks``
backport (``pip install "django-jobs[django52]"``) on Django 5.2.

The only module that imports either (ruff's TID251 bans them elsewhere): everything else
imports these names from here, under Django's spelling. See docs/django-versions.md.
"""

import django
from django.core.exceptions import ImproperlyConfigured

#: True on Django 5.2, where the django-tasks backport provides the Tasks API.
BACKPORT = django.VERSION < (6, 0)
#: The app the Tasks API lives in, as INSTALLED_APPS and logger names spell it.
TASKS_MODULE = "django_tasks" if BACKPORT else "django.tasks"
#: Whether ``@task(...)`` hands extra keywords (``max_attempts``…) to the backend's task
#: class: Django 6.1 and the backport do, Django 6.0's ``task()`` does not.
TASK_FORWARDS_OPTIONS = BACKPORT or django.VERSION >= (6, 1)

if BACKPORT:
    try:
        import django_tasks  # noqa: F401  (a clear error below if the backport is missing)
    except ImportError as e:
        raise ImproperlyConfigured(
            "django-jobs on Django 5.2 needs the django-tasks backport: "
            "pip install 'django-jobs[django52]' (and add 'django_tasks' to INSTALLED_APPS)."
        ) from e
    from django_tasks import default_task_backend, task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import (
        DEFAULT_TASK_BACKEND_ALIAS,
        DEFAULT_TASK_PRIORITY,
        DEFAULT_TASK_QUEUE_NAME,
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskContext,
        TaskError,
        TaskResult,
        TaskResultStatus,
        task,
    )
    from django_tasks.exceptions import InvalidTaskBackendError as InvalidTaskBackend
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskException, TaskResultDoesNotExist, TaskResultMismatch
    from django_tasks.signals import task_enqueued, task_finished, task_started
else:
    from django.tasks import default_task_backend, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import (
        DEFAULT_TASK_BACKEND_ALIAS,
        DEFAULT_TASK_PRIORITY,
        DEFAULT_TASK_QUEUE_NAME,
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        Task,
        TaskContext,
        TaskError,
        TaskResult,
        TaskResultStatus,
        task,
    )
    from django.tasks.exceptions import (
        InvalidTask,
        InvalidTaskBackend,
        TaskException,
        TaskResultDoesNotExist,
        TaskResultMismatch,
    )
    from django.tasks.signals import task_enqueued, task_finished, task_started

__all__ = [
    "BACKPORT", "DEFAULT_TASK_BACKEND_ALIAS", "DEFAULT_TASK_PRIORITY", "DEFAULT_TASK_QUEUE_NAME",
    "TASKS_MODULE", "TASK_FORWARDS_OPTIONS", "TASK_MAX_PRIORITY", "TASK_MIN_PRIORITY",
    "BaseTaskBackend", "InvalidTask", "InvalidTaskBackend", "Task", "TaskContext", "TaskError",
    "TaskException", "TaskResult", "TaskResultDoesNotExist", "TaskResultMismatch",
    "TaskResultStatus", "default_task_backend", "task", "task_backends", "task_enqueued",
    "task_finished", "task_started",
]  # fmt: skip
