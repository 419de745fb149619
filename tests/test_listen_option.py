"""OPTIONS["listen"]: PostgreSQL workers behind a transaction-mode pooler only poll."""

import threading

import pytest
from django.db import connection

from django_jobs.brokers.database import DatabaseBroker
from django_jobs.conf import JobsOptions
from django_jobs.tasks_api import task_backends


def test_without_listen_postgresql_polls_as_fast_as_the_other_databases():
    # Given the default options, and listen turned off
    # When the poll interval is worked out for each vendor
    # Then PostgreSQL without LISTEN polls like a database with no push (0.2 s)
    assert JobsOptions().poll_interval_for("postgresql", pushed=False) == 1.0
    assert JobsOptions(listen=False).poll_interval_for("postgresql", pushed=False) == 0.2
    assert JobsOptions(listen=False).poll_interval_for("sqlite", pushed=False) == 0.2
    assert (
        JobsOptions(listen=False, poll_interval=0.5).poll_interval_for("postgresql", False) == 0.5
    )


def test_without_listen_the_broker_opens_no_listen_connection():
    # Given a database broker with listen off (on whichever database this run uses)
    broker = DatabaseBroker(JobsOptions(listen=False))
    # When the worker asks it to listen for wake-ups
    broker.listen(threading.Event())
    # Then no LISTEN thread (and so no session connection) was started
    assert broker._listener is None
    broker.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN is PostgreSQL's")
def test_with_listen_postgresql_starts_its_listen_thread():
    # Given a database broker with the default options on PostgreSQL
    broker = DatabaseBroker(JobsOptions())
    # When the worker asks it to listen
    broker.listen(threading.Event())
    # Then the LISTEN thread runs
    assert broker._listener is not None and broker._listener.is_alive()
    broker.close()
    broker._listener.join(timeout=5)


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["no", 0, None])
def test_listen_takes_true_or_false(settings, value):
    # Given OPTIONS["listen"] that is not a bool
    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": [],
            "OPTIONS": {"listen": value},
        }
    }
    # When the backend is checked
    messages = [m for m in task_backends["default"].check() if m.id == "django_jobs.E020"]
    # Then E020 says it takes True or False
    assert len(messages) == 1 and "listen takes True or False" in messages[0].hint
