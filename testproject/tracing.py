"""Export every span of this process to a file, one JSON object a line (JOBS_TRACE_FILE).

The tests' worker processes use it (tests/test_tracing.py); a real project configures its own
tracer provider and exporter (docs/tracing.md).
"""

import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor


def export_spans_to(path: str) -> None:
    """Send every span this process ends to ``path`` (appended, flushed at each span)."""
    exporter = ConsoleSpanExporter(
        out=open(path, "a"),  # open as long as the process lives
        formatter=lambda span: span.to_json(indent=None) + os.linesep,
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
