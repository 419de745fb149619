"""``manage.py jobs bench``: measure enqueue, drain and latency with real worker processes."""

#: The queue the benchmark's jobs run on (a project that declares QUEUES must list it).
QUEUE = "bench"
