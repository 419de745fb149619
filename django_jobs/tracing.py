"""OpenTelemetry spans: one for each enqueue, one for each attempt, linked through the trace
context stored on the job's row (``Job.trace_context``, W3C ``traceparent`` written by the
configured propagator), so the trace of the request that enqueued a job continues into every
attempt of it, retries included.

Optional: without ``opentelemetry-api`` (the ``otel`` extra) every helper does nothing. With
the API but no tracer provider configured, no span is started and no context stored; a job
that holds one (enqueued by a traced process) still runs with it as the current context.
"""

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django_jobs.exceptions import Discard, JobCancelled, Snooze

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    _NO_OP = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
except ImportError:  # the "otel" extra is not installed: nothing is traced
    trace = None

#: Whether OpenTelemetry's API is installed (spans are recorded only with a tracer provider).
enabled = trace is not None

SYSTEM = "django_jobs"

logger = logging.getLogger(__name__)


def _tracer():
    """Our tracer from the configured provider; None while no provider is (spans would be
    no-ops: skipping them keeps an untraced enqueue or attempt at no cost)."""
    global _cached
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, _NO_OP):
        return None
    # Taken again when the provider changes (tests set theirs, and take it back).
    if _cached[0] is not provider:
        _cached = (provider, provider.get_tracer(SYSTEM))
    return _cached[1]


_cached: tuple = (None, None)


@contextmanager
def enqueue_span(jobs: Sequence, name: str = "") -> Iterator[None]:
    """Trace enqueuing ``jobs`` (one span) and store its context on each job, unsaved yet."""
    tracer = _tracer()
    if tracer is None or not jobs:
        yield
        return
    attributes = {"messaging.system": SYSTEM, "messaging.operation.type": "send"}
    if len(jobs) == 1:
        attributes.update(_job_attributes(jobs[0]))
    else:
        attributes["messaging.batch.message_count"] = len(jobs)
    name = name or f"enqueue {jobs[0].task_path}"
    with tracer.start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=attributes):
        found = context()
        for job in jobs:
            job.trace_context = dict(found) if found else None
        yield


def context() -> dict | None:
    """The current trace context as the propagator writes it (``traceparent``…), or None."""
    if trace is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def note_duplicate(holder) -> None:
    """Say on the enqueue span that a unique call found its key held by ``holder``."""
    if trace is not None:
        trace.get_current_span().set_attribute("django_jobs.duplicate_of", str(holder.pk))


def traces(job) -> bool:
    """Whether running ``job`` has anything to trace: a tracer, or a context its enqueue
    stored (which the task's code passes on). Without either, the attempt skips tracing."""
    return bool(job.trace_context) or _tracer() is not None


@contextmanager
def attempt_span(job, worker_id: str) -> Iterator[None]:
    """Trace one attempt of ``job``, as a child of the context its enqueue stored."""
    tracer = _tracer()
    if tracer is None:
        with _continued(job.trace_context):
            yield
        return
    parent = _extract(job.trace_context)
    attributes = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        **_job_attributes(job),
        "django_jobs.attempt": job.attempts,
        "django_jobs.worker_id": worker_id,
    }
    with tracer.start_as_current_span(
        f"run {job.task_path}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        # ``execute`` returns the task's exception in its Outcome; ``end_attempt`` records it.
        record_exception=False,
        set_status_on_exception=False,
    ):
        yield


@contextmanager
def _continued(trace_context: dict | None) -> Iterator[None]:
    """Make the enqueuer's context current (no span of ours): the task's code still passes the
    trace on, e.g. in the headers of the requests it makes."""
    if trace is None or not isinstance(trace_context, dict):
        yield
        return
    token = otel_context.attach(_extract(trace_context))
    try:
        yield
    finally:
        otel_context.detach(token)


def end_attempt(error: BaseException | None, cancelled: bool = False) -> None:
    """Record how the current attempt ended: its outcome and, if it raised, the exception."""
    if trace is None:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    try:
        if error is None:
            span.set_attribute("django_jobs.outcome", "successful")
        elif isinstance(error, Snooze) and not cancelled:
            span.set_attribute("django_jobs.outcome", "snoozed")
        else:
            cancel = cancelled or isinstance(error, JobCancelled | Discard)
            span.set_attribute("django_jobs.outcome", "cancelled" if cancel else "failed")
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    except Exception:  # noqa: BLE001  (tracing never changes a job's outcome)
        logger.exception("could not record the attempt on its span")


def _extract(trace_context):
    """The context stored on a row; without one (or with anything but a dict: a row written by
    hand must not fail its job) an empty context, so the attempt starts a trace of its own."""
    if isinstance(trace_context, dict):
        return propagate.extract(trace_context)
    return otel_context.Context()


def trace_id(trace_context: dict | None) -> str | None:
    """The trace id in a stored context's ``traceparent`` (``00-<trace id>-<span id>-01``)."""
    if not isinstance(trace_context, dict):
        return None
    parts = str(trace_context.get("traceparent", "")).split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def flush(timeout_millis: int = 5000) -> None:
    """Export the spans the tracer provider still buffers (a worker process about to exit)."""
    if trace is None:
        return
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    try:
        if force_flush is not None:
            force_flush(timeout_millis)
    except Exception:  # noqa: BLE001  (an exporter's failure must not keep a worker alive)
        logger.exception("could not flush the tracer provider's spans")


def _job_attributes(job) -> dict:
    return {
        "django_jobs.job_id": str(job.pk),
        "django_jobs.task": job.task_path,
        "django_jobs.queue": job.queue_name,
    }
