"""The Prometheus counters and histograms the app updates as it works (docs/metrics.md).

Every function here is a no-op while ``prometheus_client`` is not installed (it is the
``django-jobs[metrics]`` extra). The metrics are built on first use, not at import: the
``PROMETHEUS_MULTIPROC_DIR`` that ``runworker --metrics-port`` sets must be in place before
the first one exists, and the modules calling these are imported before that.
"""

import threading
from collections.abc import Iterable
from datetime import datetime

#: Upper bounds (seconds) of the run-time and queue-wait histograms: milliseconds to an hour.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

_lock = threading.Lock()
_metrics = None  # None: not built yet; False: prometheus_client is not installed


class _Metrics:
    def __init__(self, prometheus_client):
        self.registry = prometheus_client.CollectorRegistry(auto_describe=True)
        counter, histogram = prometheus_client.Counter, prometheus_client.Histogram
        common = {"namespace": "django_jobs", "registry": self.registry}
        self.enqueued = counter("enqueued", "Jobs enqueued.", ["queue", "task"], **common)
        self.started = counter(
            "started", "Attempts started (jobs claimed by a worker).", ["queue", "task"], **common
        )
        self.finished = counter(
            "finished",
            "Attempts finished, by outcome: successful, failed, cancelled, retried, snoozed, "
            "lost (the lease was lost, the outcome dropped).",
            ["queue", "task", "outcome"],
            **common,
        )
        self.run_seconds = histogram(
            "run_seconds",
            "Time the task ran, per attempt.",
            ["queue", "task"],
            buckets=BUCKETS,
            **common,
        )
        self.queue_wait_seconds = histogram(
            "queue_wait_seconds",
            "Time from a job's run_after (when it became ready) to its claim.",
            ["queue", "task"],
            buckets=BUCKETS,
            **common,
        )
        self.claim_errors = counter(
            "claim_errors", "Claims that failed, by exception class.", ["error"], **common
        )


def metrics() -> "_Metrics | None":
    """The app's metrics, built on first call; None without prometheus_client."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                try:
                    import prometheus_client
                except ImportError:
                    _metrics = False
                else:
                    _metrics = _Metrics(prometheus_client)
    return _metrics or None


def _child(metric, *labels):
    """``metric.labels(*labels)``, remembered: the labelled child is looked up once per key
    (``labels()`` validates and locks on every call; the hot path counts every job)."""
    children = _children.setdefault(id(metric), {})
    child = children.get(labels)
    if child is None:
        child = children[labels] = metric.labels(*labels)
    return child


_children: dict[int, dict[tuple, object]] = {}


def jobs_enqueued(jobs: Iterable) -> None:
    """Count new job rows."""
    if m := metrics():
        counts: dict[tuple, int] = {}
        for job in jobs:
            key = (job.queue_name, job.task_path)
            counts[key] = counts.get(key, 0) + 1
        for key, count in counts.items():
            _child(m.enqueued, *key).inc(count)


def jobs_started(jobs: Iterable, now: datetime) -> None:
    """Count claimed jobs and how long each waited since it became ready."""
    if m := metrics():
        counts: dict[tuple, int] = {}
        for job in jobs:
            key = (job.queue_name, job.task_path)
            counts[key] = counts.get(key, 0) + 1
            claimed_at = job.last_attempted_at or now
            wait = max((claimed_at - job.run_after).total_seconds(), 0.0)
            _child(m.queue_wait_seconds, *key).observe(wait)
        for key, count in counts.items():
            _child(m.started, *key).inc(count)


def job_finished(job, outcome: str, seconds: float | None) -> None:
    """Count one recorded attempt by ``outcome`` and observe its run time."""
    if m := metrics():
        _child(m.finished, job.queue_name, job.task_path, outcome).inc()
        if seconds is not None:
            _child(m.run_seconds, job.queue_name, job.task_path).observe(seconds)


def claim_failed(error: BaseException) -> None:
    """Count a claim that raised ``error``."""
    if m := metrics():
        m.claim_errors.labels(type(error).__name__).inc()
