"""OpenTelemetry: a span for each enqueue and one for each attempt, in the trace of the request
that enqueued the job, retries included (``django_jobs.tracing``).

Spans are captured with the SDK's in-memory exporter; attempts run through the worker's own
path (``claim_ids`` then ``run_attempt``), and once through a real ``runworker`` process that
writes its spans to a file (``JOBS_TRACE_FILE``, testproject/tracing.py).
"""

import json
import subprocess
import sys

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

from django_jobs.jobs import claims
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from django_jobs.tasks_api import task_backends
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from django_jobs.workflows import chain
from tests import tasks
from tests.conftest import ROOT, WorkerHandle, process_env
from tests.console import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def set_tracer_provider(provider) -> None:
    # OpenTelemetry lets a process set its tracer provider once; each test sets one and takes
    # it back (what opentelemetry-test-utils' reset_trace_globals does).
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans():
    """Every span this process ends, kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_tracer_provider(provider)
    yield exporter
    set_tracer_provider(None)
    provider.shutdown()


@pytest.fixture
def no_tracer_provider():
    """OpenTelemetry's API installed, but no tracer provider configured (its default)."""
    set_tracer_provider(None)


def backend():
    return task_backends["default"]


def call(task, args, kwargs):
    return task.func(*args, **kwargs)


def run_next_attempt(result, worker_id: str = "worker-a") -> Attempt:
    """Claim the job as a worker does (by id) and run one attempt of it."""
    now, lease = timezone.now(), backend().jobs_options.lease
    [job] = claims.claim_ids(backend().database, "default", [result.id], worker_id, now, lease)
    return run_attempt(Attempt(job, worker_id, backend()), call)


def named(spans, name: str) -> list:
    return [span for span in spans.get_finished_spans() if span.name == name]


def hex_ids(span) -> list[str]:
    context = span.get_span_context()
    return [format(context.trace_id, "032x"), format(context.span_id, "016x")]


def stored_ids(job) -> list[str]:
    """The trace id and span id of a row's ``traceparent`` (``00-<trace>-<span>-<flags>``)."""
    return job.trace_context["traceparent"].split("-")[1:3]


def test_a_request_trace_continues_into_each_attempt_of_its_job(spans):
    # Given a request span that enqueues a job failing its first attempt
    with trace.get_tracer("tests").start_as_current_span("GET /signup") as request:
        result = tasks.fails_until.enqueue(succeed_on=2)
    # When a worker runs attempt 1 (it fails, retried) and attempt 2 (it succeeds)
    run_next_attempt(result)
    run_next_attempt(result)
    assert Job.objects.get(pk=result.id).status == JobStatus.SUCCESSFUL
    # Then the enqueue span is the request's child, stored on the row as its traceparent
    [enqueue] = named(spans, "enqueue tests.tasks.fails_until")
    trace_id, enqueue_id = hex_ids(enqueue)
    assert trace_id == hex_ids(request)[0]
    assert enqueue.parent.span_id == request.get_span_context().span_id
    assert enqueue.kind == SpanKind.PRODUCER
    assert enqueue.attributes["django_jobs.job_id"] == result.id
    assert stored_ids(Job.objects.get(pk=result.id)) == [trace_id, enqueue_id]
    # And each attempt is a span of that trace, a child of the enqueue's context
    attempts = named(spans, "run tests.tasks.fails_until")
    assert [span.attributes["django_jobs.attempt"] for span in attempts] == [1, 2]
    for span in attempts:
        assert span.get_span_context().trace_id == enqueue.get_span_context().trace_id
        assert span.parent.span_id == enqueue.get_span_context().span_id
        assert span.kind == SpanKind.CONSUMER
        assert span.attributes["django_jobs.job_id"] == result.id
        assert span.attributes["django_jobs.task"] == "tests.tasks.fails_until"
        assert span.attributes["django_jobs.queue"] == "default"
        assert span.attributes["django_jobs.worker_id"] == "worker-a"
    # And the failed attempt carries its exception and status ERROR; the next one succeeded
    failed, succeeded = attempts
    assert failed.attributes["django_jobs.outcome"] == "failed"
    assert failed.status.status_code == StatusCode.ERROR
    [event] = failed.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "RuntimeError"
    assert event.attributes["exception.message"] == "attempt 1"
    assert "Traceback" in event.attributes["exception.stacktrace"]
    assert succeeded.attributes["django_jobs.outcome"] == "successful"
    assert succeeded.status.status_code == StatusCode.UNSET
    assert succeeded.events == ()


def test_the_task_runs_inside_its_attempt_span(spans):
    # Given a job enqueued in a request's trace
    with trace.get_tracer("tests").start_as_current_span("GET /report"):
        result = tasks.current_span_ids.enqueue()
    # When it runs
    run_next_attempt(result)
    # Then the span current in the task's code is the attempt's: its own spans nest under it
    [attempt] = named(spans, "run tests.tasks.current_span_ids")
    assert Job.objects.get(pk=result.id).return_value == hex_ids(attempt)


def test_a_failed_job_ends_with_an_error_span_for_its_last_attempt(spans):
    # Given a job that fails every attempt (3 of them)
    result = tasks.always_fails.enqueue("boom")
    # When all three run
    for _ in range(3):
        run_next_attempt(result)
    # Then there are three error spans, each with its ValueError, all in the enqueue's trace
    assert Job.objects.get(pk=result.id).status == JobStatus.FAILED
    [enqueue] = named(spans, "enqueue tests.tasks.always_fails")
    attempts = named(spans, "run tests.tasks.always_fails")
    assert len(attempts) == 3
    for span in attempts:
        assert span.parent.span_id == enqueue.get_span_context().span_id
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes["django_jobs.outcome"] == "failed"
        assert [e.attributes["exception.type"] for e in span.events] == ["ValueError"]


def test_bulk_enqueue_is_one_span_whose_context_every_row_stores(spans):
    # Given a request enqueuing three calls of two tasks at once (COPY on PostgreSQL)
    with trace.get_tracer("tests").start_as_current_span("POST /import"):
        results = backend().enqueue_many(
            [
                (tasks.add, (1, 2), {}),
                (tasks.add, (3, 4), {}),
                (tasks.current_span_ids, (), {}),
            ]
        )
    # Then one enqueue_many span counts them, and every row stores its context
    [enqueue] = named(spans, "enqueue_many")
    assert enqueue.attributes["messaging.batch.message_count"] == 3
    rows = Job.objects.filter(pk__in=[r.id for r in results])
    assert [stored_ids(row) for row in rows] == [hex_ids(enqueue)] * 3
    # And an attempt of any of them is that span's child
    run_next_attempt(results[2])
    [attempt] = named(spans, "run tests.tasks.current_span_ids")
    assert attempt.parent.span_id == enqueue.get_span_context().span_id


def test_a_workflow_enqueue_is_one_span_shared_by_its_steps(spans):
    # Given a chain enqueued in a request's trace
    with trace.get_tracer("tests").start_as_current_span("POST /pipeline"):
        workflow = chain(tasks.add.s(1, 2), tasks.add.s(10)).enqueue()
    # Then its steps store the context of one "enqueue workflow" span
    [enqueue] = named(spans, "enqueue workflow")
    steps = Job.objects.filter(workflow_id=workflow.id)
    assert [stored_ids(step) for step in steps] == [hex_ids(enqueue)] * 2


@pytest.mark.parametrize("stored", [None, "not a context", {"traceparent": "00-nonsense"}])
def test_a_job_without_a_usable_context_runs_in_a_trace_of_its_own(spans, stored):
    # Given a job whose row holds no trace context, or one written by hand that is not one
    result = tasks.add.enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(trace_context=stored)
    # When it runs, even inside some other span of the worker's thread
    with trace.get_tracer("tests").start_as_current_span("unrelated"):
        run_next_attempt(result)
    # Then it succeeds, its attempt span the root of a new trace
    assert Job.objects.get(pk=result.id).status == JobStatus.SUCCESSFUL
    [attempt] = named(spans, "run tests.tasks.add")
    assert attempt.parent is None
    assert attempt.attributes["django_jobs.outcome"] == "successful"


def test_a_unique_call_finding_its_key_held_says_so_on_its_span(spans):
    # Given a unique job already enqueued
    first = tasks.unique_add.enqueue(1, 2)
    # When the same call is enqueued again
    again = tasks.unique_add.enqueue(1, 2)
    # Then the second enqueue span names the job holding the key
    assert again.id == first.id
    second = named(spans, "enqueue tests.tasks.unique_add")[1]
    assert second.attributes["django_jobs.duplicate_of"] == first.id


def test_without_a_tracer_provider_jobs_run_and_store_no_context(no_tracer_provider):
    # Given OpenTelemetry's API but no tracer provider configured
    result = tasks.fails_until.enqueue(succeed_on=2)
    # When the job fails once, then succeeds
    run_next_attempt(result)
    run_next_attempt(result)
    # Then it ran as always, and no trace context was stored
    job = Job.objects.get(pk=result.id)
    assert (job.status, job.attempts, job.trace_context) == (JobStatus.SUCCESSFUL, 2, None)


def test_a_worker_without_a_tracer_provider_still_passes_on_the_enqueuer_trace(
    no_tracer_provider,
):
    # Given a job enqueued by a traced process (its row holds a trace context)
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    result = tasks.current_span_ids.enqueue()
    traceparent = f"00-{trace_id}-{span_id}-01"
    Job.objects.filter(pk=result.id).update(trace_context={"traceparent": traceparent})
    # When a worker with no tracer provider runs it
    run_next_attempt(result)
    # Then it succeeds, and the task's code sees the enqueuer's trace as its current context
    job = Job.objects.get(pk=result.id)
    assert (job.status, job.return_value) == (JobStatus.SUCCESSFUL, [trace_id, span_id])


def test_the_job_page_shows_the_trace_id_of_a_traced_job(spans):
    # Given a job enqueued in a request's trace, and one enqueued outside any
    with trace.get_tracer("tests").start_as_current_span("GET /signup") as request:
        traced = tasks.add.enqueue(1, 2)
    untraced = tasks.add.enqueue(3, 4)
    Job.objects.filter(pk=untraced.id).update(trace_context=None)
    client = Client()
    assert client.login(username=make_user("operator", superuser=True).username, password=PASSWORD)
    # When an operator opens their pages
    page = client.get(reverse("admin:django_jobs_job_change", args=[traced.id])).content.decode()
    other = client.get(reverse("admin:django_jobs_job_change", args=[untraced.id])).content.decode()
    # Then the traced job's page shows its trace id (to look it up in the tracing backend)
    assert f'<code class="jobs-trace-id">{hex_ids(request)[0]}</code>' in page
    assert "Trace id" in page
    assert "jobs-trace-id" not in other and "Trace id" not in other


# Run in a fresh interpreter where ``import opentelemetry`` fails, as without the otel extra.
WITHOUT_OPENTELEMETRY = """
import json, sys
sys.modules["opentelemetry"] = None
import django
django.setup()
from django.utils import timezone
from django_jobs import tracing
from django_jobs.jobs import claims
from django_jobs.models import Job
from django_jobs.tasks_api import task_backends
from django_jobs.worker.execution import Attempt
from django_jobs.worker.outcomes import run_attempt
from tests import tasks

backend = task_backends["default"]
result = tasks.fails_until.enqueue(succeed_on=2)
many = backend.enqueue_many([(tasks.add, (1, 2), {})])
for _ in range(2):
    [job] = claims.claim_ids(
        backend.database, "default", [result.id], "w", timezone.now(), backend.jobs_options.lease
    )
    run_attempt(Attempt(job, "w", backend), lambda task, a, kw: task.func(*a, **kw))
job = Job.objects.get(pk=result.id)
print(json.dumps({
    "enabled": tracing.enabled,
    "status": job.status,
    "attempts": job.attempts,
    "trace_context": [job.trace_context, Job.objects.get(pk=many[0].id).trace_context],
    "loaded": sorted(name for name in sys.modules if name.startswith("opentelemetry.")),
}))
"""


def test_without_opentelemetry_installed_nothing_is_traced_and_jobs_run():
    # Given a process where OpenTelemetry cannot be imported
    env = {**process_env(), "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    # When it enqueues (one, then many) and runs a job failing once, through the worker's path
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENTELEMETRY],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # Then the job ran as always, nothing was traced and no context was stored
    report = json.loads(done.stdout.splitlines()[-1])
    assert report == {
        "enabled": False,
        "status": JobStatus.SUCCESSFUL,
        "attempts": 2,
        "trace_context": [None, None],
        "loaded": [],
    }


@pytest.mark.processes
def test_a_runworker_process_continues_the_trace_retries_included(spans, tmp_path, backend_alias):
    # Given, in a request's trace, a job failing its first attempt and an async job
    with trace.get_tracer("tests").start_as_current_span("GET /signup") as request:
        flaky = tasks.fails_until.using(backend=backend_alias).enqueue(succeed_on=2)
        coroutine = tasks.async_current_span_ids.using(backend=backend_alias).enqueue()
    trace_id = hex_ids(request)[0]
    [enqueue_flaky] = named(spans, "enqueue tests.tasks.fails_until")
    # When a real burst worker, exporting its spans to a file, runs them
    trace_file = tmp_path / "spans.jsonl"
    env = process_env(JOBS_TRACE_FILE=str(trace_file))
    worker = WorkerHandle(["--burst", "--backend", backend_alias], env, tmp_path / "worker.log")
    try:
        assert worker.wait(60) == 0, worker.output()
    finally:
        worker.stop()
    assert Job.objects.get(pk=flaky.id).status == JobStatus.SUCCESSFUL
    # Then the worker's two attempt spans are in the request's trace, children of the enqueue
    exported = [json.loads(line) for line in trace_file.read_text().splitlines()]
    attempts = [s for s in exported if s["name"] == "run tests.tasks.fails_until"]
    assert [s["attributes"]["django_jobs.attempt"] for s in attempts] == [1, 2]
    for span in attempts:
        assert span["context"]["trace_id"] == f"0x{trace_id}"
        assert span["parent_id"] == f"0x{hex_ids(enqueue_flaky)[1]}"
    assert [s["status"]["status_code"] for s in attempts] == ["ERROR", "UNSET"]
    assert attempts[0]["events"][0]["attributes"]["exception.type"] == "RuntimeError"
    # And the coroutine ran on the worker's event loop inside its own attempt span
    [async_attempt] = [s for s in exported if s["name"] == "run tests.tasks.async_current_span_ids"]
    span_id = async_attempt["context"]["span_id"]
    assert Job.objects.get(pk=coroutine.id).return_value == [trace_id, span_id[2:]]
