"""``manage.py jobs bench``: measure enqueue, drain and latency with real worker processes."""
