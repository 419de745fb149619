"""The worker: supervisor, claim loop, thread pool / event loop, heartbeats and signals."""
