"""Prometheus metrics (docs/metrics.md): the figures read from the database at scrape time,
the view to mount in urls.py, and the port ``runworker --metrics-port`` serves.

The counters and histograms themselves live in ``django_jobs.instruments``. Nothing here
imports ``prometheus_client`` at import time, so urls.py can name the view whether or not
the ``metrics`` extra is installed.
"""

import hmac
import logging
import os
import shutil
import signal
import tempfile
import threading
from datetime import timedelta
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.db import DatabaseError, connections
from django.http import Http404, HttpResponse
from django.utils import timezone

from django_jobs import instruments
from django_jobs.backend import default_jobs_backend
from django_jobs.console import queries

logger = logging.getLogger(__name__)


class JobsCollector:
    """Queue depths, oldest ready ages and workers, queried each time Prometheus scrapes."""

    def __init__(self, database: str, stale_after: timedelta, queues=()):
        self.database = database
        self.stale_after = stale_after
        #: Queues listed even when idle (the backend's QUEUES): their series never vanish.
        self.queues = sorted(queues)

    def describe(self):
        return []  # no query when the collector is registered

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("django_jobs_database_up", "1: the scrape read the job tables.")
        now = timezone.now()
        try:
            rows = queries.queues(self.database, now, also=self.queues)
            workers = queries.worker_counts(self.database, now, self.stale_after)
        except DatabaseError as e:
            logger.warning("metrics scrape failed database=%s error=%r", self.database, e)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        gauges = {
            "ready": ("queue_depth", "Jobs ready to run now."),
            "scheduled": ("queue_scheduled", "Jobs waiting for their run_after."),
            "running": ("queue_running", "Jobs running (claimed, not finished)."),
            "oldest_ready_age": (
                "queue_oldest_ready_age_seconds",
                "How long the oldest ready job has been ready (0: none is).",
            ),
            "paused": ("queue_paused", "1: the queue is paused."),
        }
        for key, (name, help_text) in gauges.items():
            family = GaugeMetricFamily(f"django_jobs_{name}", help_text, labels=["queue"])
            for row in rows:
                family.add_metric([row["name"]], float(row[key] or 0))
            yield family
        family = GaugeMetricFamily(
            "django_jobs_workers",
            "Worker processes not stopped: live (heartbeating) or stale (silent for a lease).",
            labels=["state"],
        )
        for state, n in workers.items():
            family.add_metric([state], n)
        yield family


def registry(backend, multiprocess_dir: str | None = None):
    """A registry of the app's counters (every process's, in multiprocess mode) and
    ``backend``'s database figures."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    collected = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        MultiProcessCollector(collected, path=path)
    elif counters := instruments.metrics():
        collected.register(counters.registry)
    options = backend.jobs_options
    collected.register(JobsCollector(options.database, options.lease, backend.queues))
    return collected


# --- the view ---------------------------------------------------------------------------
def metrics_view(request):
    """Serve the metrics to Prometheus (bearer token) or to staff who may view jobs."""
    backend = default_jobs_backend()
    if backend is None:
        raise Http404("No django_jobs backend in TASKS.")
    if not _allowed(request, backend.jobs_options.metrics_token):
        response = HttpResponse("Forbidden: see docs/metrics.md.", status=403)
        user = getattr(request, "user", None)
        if not (user and user.is_authenticated):
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="django-jobs metrics"'
        return response
    try:
        from prometheus_client.exposition import choose_encoder
    except ImportError:
        return HttpResponse("Install prometheus-client: django-jobs[metrics].", status=501)
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry(backend)), content_type=content_type)


def _allowed(request, token: str | None) -> bool:
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    user = getattr(request, "user", None)
    return bool(user and user.is_staff and user.has_perm("django_jobs.view_job"))


# --- the worker's port ------------------------------------------------------------------
class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (the stdlib's name)
        pass  # a scrape every few seconds is not worth a log line


class WorkerMetrics:
    """One port for all the processes of a ``runworker``: the supervisor forks a child
    serving it, which adds up the counters each process writes to a shared directory."""

    def __init__(self, backend, port: int, addr: str = "0.0.0.0"):  # noqa: S104
        try:
            from prometheus_client import values
        except ImportError as e:
            missing = "prometheus-client is not installed: pip install 'django-jobs[metrics]'"
            raise ImportError(missing) from e
        self.backend = backend
        # Bind now: a port in use stops runworker at once, not its child again and again.
        self.server = make_server(addr, port, _not_ready, WSGIServer, _QuietHandler)
        self.directory = tempfile.mkdtemp(prefix="django-jobs-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.directory  # inherited by the children
        if not values.ValueClass._multiprocess:
            # The project imported prometheus_client before this: metrics built from now on
            # (ours are built on first use, in the children) must write to the directory.
            values.ValueClass = values.get_value_class()

    @property
    def port(self) -> int:
        return self.server.server_port

    def serve(self, parent_pid: int) -> int:
        """Answer scrapes until SIGTERM/SIGINT or the supervisor is gone (a child's target)."""
        collected = registry(self.backend, self.directory)
        database = self.backend.jobs_options.database
        from prometheus_client import make_wsgi_app

        app = make_wsgi_app(collected)

        def scrape(environ, start_response):
            try:
                return app(environ, start_response)
            finally:
                connections[database].close()  # idle between scrapes: hold no connection

        self.server.set_app(scrape)
        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        signal.signal(signal.SIGINT, lambda *_: stopping.set())
        threading.Thread(target=self.server.serve_forever, args=(0.5,), daemon=True).start()
        logger.info("metrics served port=%s directory=%s", self.port, self.directory)
        while not stopping.wait(1.0):
            if os.getppid() != parent_pid:
                break
        self.server.shutdown()
        return 0

    def close(self) -> None:
        self.server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _not_ready(environ, start_response):
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]
