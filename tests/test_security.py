"""Only declared tasks ever run, whatever a job row says; nothing is unpickled."""

import re
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import JSONField, Value
from django.utils import timezone

import django_jobs
from django_jobs import registry
from django_jobs.exceptions import JobArgumentsError, UnknownTask
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import TaskResultStatus, task_backends
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from tests import tasks

LEASE = timedelta(seconds=60)
WORKER = "worker-security"

#: Calls that reached ``tripwire`` (a plain function that must never run from a row).
TRIPPED: list = []


def tripwire(*args, **kwargs):
    """A module-level function that is not a task."""
    TRIPPED.append((args, kwargs))


class Call:
    """The ``call`` handed to run_attempt: records whether the job got as far as a call."""

    def __init__(self):
        self.calls = []

    def __call__(self, task, args, kwargs):
        self.calls.append((task, args, kwargs))
        return task.func(*args, **kwargs)


def write_job(task_path: str, args=None, kwargs=None, max_attempts: int = 1) -> Job:
    """Write a job row directly, as an attacker with database access might."""
    now = timezone.now()
    return Job.objects.create(
        task_path=task_path,
        args=[] if args is None else args,
        kwargs={} if kwargs is None else kwargs,
        run_after=now,
        enqueued_at=now,
        max_attempts=max_attempts,
    )


def claim_and_run(job: Job, call) -> Attempt:
    """Claim the row the way a worker does, then run it through execution."""
    assert Job.objects.filter(pk=job.pk).claim(WORKER, timezone.now(), LEASE) == 1
    job.refresh_from_db()
    return run_attempt(Attempt(job, WORKER, task_backends["default"]), call)


# --- the registry -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "os.system",
        "subprocess.call",
        "builtins.eval",
        "tests.tasks.__name__",
        "tests.tasks.Path",
        "tests.test_security.tripwire",
        "django_jobs.registry.resolve",
        "django_jobs.management.commands.runworker.Command",
        "testproject.demo.tasks.task",
        "os",
        "",
        "tests.tasks.add.func",
    ],
)
def test_resolve_refuses_anything_but_a_declared_task(path):
    # When a dotted path that is not a declared task is resolved
    # Then UnknownTask is raised and nothing was called
    with pytest.raises(UnknownTask):
        registry.resolve(path)
    assert TRIPPED == []


def test_resolve_does_not_import_modules_outside_installed_apps():
    # Given a stdlib module with an import side effect, not yet imported
    if "this" in sys.modules:
        pytest.skip("module 'this' already imported")
    # When a row names a function in it
    with pytest.raises(UnknownTask):
        registry.resolve("this.s")
    # Then the module was never imported
    assert "this" not in sys.modules


def test_resolve_returns_declared_tasks():
    # Given declared tasks
    # Then resolve finds them by their dotted path
    assert registry.resolve("tests.tasks.add") is tasks.add
    assert registry.resolve("tests.tasks.async_add") is tasks.async_add


# --- rows naming something that is not a task -------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_row_naming_os_system_fails_without_running_anything(tmp_path):
    # Given a job row written directly to call os.system with a shell command
    target = tmp_path / "pwned"
    job = write_job("os.system", args=[f"touch {target}"], max_attempts=3)
    call = Call()
    # When a worker claims and runs it
    attempt = claim_and_run(job, call)
    # Then nothing was called, no file appeared, and the row failed for good with UnknownTask
    assert call.calls == []
    assert not target.exists()
    assert attempt.outcome == TaskResultStatus.FAILED
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.finished_at is not None
    assert job.attempts == 1
    assert len(job.errors) == 1
    error = job.errors[0]
    assert error["exception_class_path"] == "django_jobs.exceptions.UnknownTask"
    assert "os.system" in error["traceback"]
    assert error["worker_id"] == WORKER
    assert error["attempt"] == 1


@pytest.mark.django_db(transaction=True)
def test_row_naming_a_plain_function_fails_without_calling_it():
    # Given a row naming a module-level function that is not a task
    job = write_job("tests.test_security.tripwire", args=["x"])
    call = Call()
    # When it runs
    claim_and_run(job, call)
    # Then the function was never called and the job failed with UnknownTask
    assert TRIPPED == []
    assert call.calls == []
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.errors[0]["exception_class_path"] == "django_jobs.exceptions.UnknownTask"


@pytest.mark.django_db(transaction=True)
def test_get_result_of_an_unknown_task_row_refuses_to_resolve_it():
    # Given a row for an unknown task that has failed
    job = write_job("subprocess.call", args=[["true"]])
    claim_and_run(job, Call())
    # When its result is read through the backend
    # Then the bad path is reported as UnknownTask, never imported as a task
    with pytest.raises(UnknownTask, match="subprocess.call"):
        task_backends["default"].get_result(str(job.pk))
    assert TRIPPED == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [({"a": 1, "b": 2}, {}), ([1, 2], [3]), ("12", {}), ([1, 2], "b=3"), (None, {})],
    ids=["args-dict", "kwargs-list", "args-str", "kwargs-str", "args-null"],
)
def test_row_with_malformed_arguments_fails_without_retry(args, kwargs):
    # Given a row for a real task whose args/kwargs have the wrong JSON shape, with retries left
    job = write_job("tests.tasks.add", max_attempts=3)
    Job.objects.filter(pk=job.pk).update(
        args=Value(args, JSONField()), kwargs=Value(kwargs, JSONField())
    )
    call = Call()
    # When it runs
    attempt = claim_and_run(job, call)
    # Then it fails for good with JobArgumentsError, never calling the task
    assert call.calls == []
    assert attempt.outcome == TaskResultStatus.FAILED
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.attempts == 1
    assert [e["exception_class_path"] for e in job.errors] == [
        "django_jobs.exceptions.JobArgumentsError"
    ]
    assert JobArgumentsError.__name__ in job.errors[0]["traceback"]


@pytest.mark.django_db(transaction=True)
def test_well_formed_row_for_a_declared_task_runs():
    # Given a row written the same way but naming a declared task with good arguments
    job = write_job("tests.tasks.add", args=[2], kwargs={"b": 3})
    call = Call()
    # When it runs
    claim_and_run(job, call)
    # Then the task is called once and succeeds (the failures above are not a broken harness)
    assert len(call.calls) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCESSFUL
    assert job.return_value == 5


@pytest.mark.django_db(transaction=True)
def test_row_with_options_cannot_smuggle_unknown_options():
    # Given a row for a declared task whose stored options hold an unknown key
    job = write_job("tests.tasks.add", args=[1, 2], max_attempts=3)
    Job.objects.filter(pk=job.pk).update(options={"func": "os.system"})
    call = Call()
    # When it runs
    claim_and_run(job, call)
    # Then the row fails outright instead of replacing the task's function
    assert call.calls == []
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.errors[0]["exception_class_path"] == "django_jobs.exceptions.InvalidTaskOptions"


# --- no pickle --------------------------------------------------------------------------------
PICKLE_IMPORT = re.compile(
    r"^\s*(?:import|from)\s+(?:pickle|cPickle|_pickle|dill|cloudpickle|marshal|shelve)\b",
    re.MULTILINE,
)


def test_package_never_imports_pickle():
    # Given every Python source file of django_jobs
    package = Path(django_jobs.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert len(sources) > 10
    # When their imports are scanned
    offenders = [
        str(path.relative_to(package))
        for path in sources
        if PICKLE_IMPORT.search(path.read_text()) or "pickle.loads" in path.read_text()
    ]
    # Then no module can deserialise pickled data
    assert offenders == []


def test_job_ids_are_random_uuids():
    # Given two job ids
    # Then they are unguessable UUID4s, not sequential numbers
    first, second = Job().pk, Job().pk
    assert isinstance(first, uuid.UUID) and first.version == 4
    assert first != second
