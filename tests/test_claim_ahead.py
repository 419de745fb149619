"""Claiming ahead: a worker takes its slots' next jobs before they are needed, and gives back
the ones that wait too long (behind slow jobs), on a stop, or once cancelled."""

import time

from django.utils import timezone

from django_jobs.jobs import leases
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job
from tests import tasks
from tests.conftest import wait_for


def rows(results) -> list[Job]:
    return list(Job.objects.filter(pk__in=[r.id for r in results]))


def drive(worker, until, timeout=30.0):
    def step():
        worker.run_once(timezone.now())
        return until()

    return wait_for(step, timeout=timeout)


def all_finished(results):
    return lambda: all(job.status == JobStatus.SUCCESSFUL for job in rows(results))


def warm_up(worker, jobs=20):
    """Run quick jobs so the worker has seen how fast it starts them."""
    quick = [tasks.add.enqueue(i, 1) for i in range(jobs)]
    drive(worker, all_finished(quick))
    wait_for(worker.pool.idle, timeout=10)


def test_a_one_slot_worker_that_starts_jobs_quickly_claims_its_next_ones_ahead(make_worker):
    # Given a one-slot worker that has just run quick jobs, and 30 more ready
    worker = make_worker({"claim_ahead": 10}, concurrency=1)
    warm_up(worker)
    ready = [tasks.add.enqueue(i, 2) for i in range(30)]
    # When it claims once
    claimed = worker.run_once(timezone.now())
    # Then it took its slot's job and up to claim_ahead more, not every ready job
    assert 2 <= claimed <= 11
    # And every job runs once, as a single attempt
    drive(worker, all_finished(ready))
    assert {(job.attempts, len(job.worker_ids)) for job in rows(ready)} == {(1, 1)}


def test_without_claim_ahead_a_worker_claims_its_free_slots_only(make_worker):
    # Given a two-slot worker with claim_ahead 0 that has just run quick jobs
    worker = make_worker({"claim_ahead": 0}, concurrency=2)
    warm_up(worker)
    [tasks.add.enqueue(i, 3) for i in range(10)]
    # When it claims once
    # Then it takes two jobs, one per slot
    assert worker.run_once(timezone.now()) == 2


def test_a_job_waiting_behind_a_slow_one_is_given_back_undone(make_worker):
    # Given a one-slot worker that claims ahead, past quick jobs, then a slow job and more
    worker = make_worker({"claim_ahead": 10, "claim_ahead_hold": 0.5}, concurrency=1)
    warm_up(worker)
    slow = tasks.sleep.enqueue(3)
    time.sleep(0.01)  # claimed in enqueue order: the slow job first
    behind = [tasks.add.enqueue(i, 4) for i in range(5)]
    assert worker.run_once(timezone.now()) >= 2  # the slow job and some behind it
    held = [job for job in rows(behind) if job.status == JobStatus.RUNNING]
    assert held
    # When the loop goes on past the hold while the slow job runs
    wait_for(lambda: worker.pool.running, timeout=5)
    drive(worker, lambda: not worker.pool.waiting, timeout=10)
    # Then the jobs that waited are READY again, their claim undone, while the slow job runs
    for job in Job.objects.filter(pk__in=[job.pk for job in held]):
        assert job.status in (JobStatus.READY, JobStatus.RUNNING, JobStatus.SUCCESSFUL)
        if job.status == JobStatus.READY:
            assert (job.attempts, job.worker_ids, job.started_at, job.claimed_by) == (
                0,
                [],
                None,
                None,
            )
    assert Job.objects.get(pk=slow.id).status == JobStatus.RUNNING
    # And every job still runs, once
    drive(worker, all_finished([slow, *behind]), timeout=30)
    assert {job.attempts for job in rows([slow, *behind])} == {1}


def test_a_job_claimed_ahead_gets_its_full_timeout_once_it_starts(make_worker):
    # Given a one-slot worker claiming ahead; a 1.5 s job, then a job with a 1 s timeout
    worker = make_worker({"claim_ahead": 10, "claim_ahead_hold": 10}, concurrency=1)
    warm_up(worker)
    first = tasks.sleep.enqueue(1.5)
    time.sleep(0.01)  # claimed in enqueue order: the slow job first
    timed = tasks.sleep.using(timeout=1).enqueue(0.1)
    # When both are claimed at once and the second waits for the slot longer than its timeout
    assert worker.run_once(timezone.now()) == 2
    drive(worker, all_finished([first, timed]), timeout=30)
    # Then its time in the queue did not count: it ran, and succeeded
    assert Job.objects.get(pk=timed.id).errors == []


def test_a_job_cancelled_while_it_waits_for_a_slot_never_runs(make_worker, tmp_path):
    # Given a one-slot worker claiming ahead: a slow job, and behind it a job that records
    worker = make_worker({"claim_ahead": 10, "claim_ahead_hold": 30}, concurrency=1)
    warm_up(worker)
    slow = tasks.sleep.enqueue(1.5)
    time.sleep(0.01)  # claimed in enqueue order: the slow job first
    marker = tmp_path / "ran"
    behind = tasks.record.enqueue(str(marker), "ran")
    assert worker.run_once(timezone.now()) == 2
    # When its cancellation is requested while it waits
    from django_jobs.jobs import operations

    assert Job.objects.get(pk=behind.id).status == JobStatus.RUNNING
    assert operations.cancel(worker.database, [behind.id]) == 1
    drive(
        worker,
        lambda: Job.objects.get(pk=behind.id).status == JobStatus.CANCELLED,
        timeout=30,
    )
    # Then it ended CANCELLED without running
    assert not marker.exists()
    drive(worker, all_finished([slow]), timeout=30)


def test_a_stop_gives_back_jobs_claimed_ahead(make_worker):
    # Given a one-slot worker running a slow job with jobs claimed ahead
    worker = make_worker({"claim_ahead": 10, "claim_ahead_hold": 30}, concurrency=1)
    warm_up(worker)
    slow = tasks.sleep.enqueue(1)
    time.sleep(0.01)  # claimed in enqueue order: the slow job first
    behind = [tasks.add.enqueue(i, 5) for i in range(4)]
    assert worker.run_once(timezone.now()) >= 2
    wait_for(lambda: worker.pool.running, timeout=5)  # a slot took the slow job
    # When it stops gracefully
    worker.stop()
    worker._drain()
    # Then the jobs that never started are READY again, as if never claimed
    waiting = [job for job in rows(behind) if job.status != JobStatus.SUCCESSFUL]
    assert waiting
    assert {(job.status, job.attempts, job.claimed_by) for job in waiting} == {
        (JobStatus.READY, 0, None)
    }
    assert Job.objects.get(pk=slow.id).status == JobStatus.SUCCESSFUL


def test_unclaim_undoes_a_claim_on_every_database(transactional_db, fast_backend):
    # Given a job run once before (one attempt, one worker) and claimed again by worker w2
    result = tasks.add.enqueue(1, 1)
    job = Job.objects.get(pk=result.id)
    first_start = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.READY, attempts=1, worker_ids=["w1"], started_at=first_start
    )
    Job.objects.filter(pk=job.pk).claim("w2", timezone.now(), fast_backend.jobs_options.lease)
    claimed = Job.objects.get(pk=job.pk)
    assert (claimed.attempts, claimed.worker_ids) == (2, ["w1", "w2"])
    # When w2 gives it back unstarted (fenced by its attempt)
    assert leases.unclaim("default", "w2", [(job.pk, 1)]) == 0  # a stale attempt: refused
    assert leases.unclaim("default", "w2", [(job.pk, 2)]) == 1
    # Then the row is as it was before the claim
    back = Job.objects.get(pk=job.pk)
    assert (back.status, back.attempts, back.worker_ids, back.claimed_by) == (
        JobStatus.READY,
        1,
        ["w1"],
        None,
    )
    assert back.started_at == first_start
    # And a first claim undone leaves no start time
    fresh = tasks.add.enqueue(2, 2)
    Job.objects.filter(pk=fresh.id).claim("w3", timezone.now(), fast_backend.jobs_options.lease)
    assert leases.unclaim("default", "w3", [(fresh.id, 1)]) == 1
    again = Job.objects.get(pk=fresh.id)
    assert (again.attempts, again.worker_ids, again.started_at) == (0, [], None)


def test_jobs_claimed_together_start_in_priority_then_age_order(make_worker, tmp_path):
    # Given a one-slot worker claiming ahead, and jobs of several priorities ready at once
    worker = make_worker({"claim_ahead": 10}, concurrency=1)
    warm_up(worker)
    path = tmp_path / "order"
    results = []
    for priority in (0, 5, 1, 9, 3, 5):
        results.append(tasks.record.using(priority=priority).enqueue(str(path), priority))
        time.sleep(0.002)
    # When they are claimed in batches and run one after the other
    assert worker.run_once(timezone.now()) >= 2
    drive(worker, all_finished(results))
    # Then they ran highest priority first, and in enqueue order within one priority
    assert path.read_text().split() == ["9", "5", "5", "3", "1", "0"]


def test_a_forced_stop_gives_back_a_job_no_slot_took_yet(make_worker):
    # Given a one-slot worker whose slot thread has not taken its claimed job yet (here: the
    # thread is gone, as if the machine were too busy to schedule it before the signals)
    worker = make_worker(concurrency=1)
    worker.pool.inbox.put(None)
    wait_for(lambda: not worker.pool.threads[0].is_alive(), timeout=5)
    result = tasks.add.enqueue(1, 1)
    assert worker.run_once(timezone.now()) == 1
    assert list(worker.pool.waiting) and not worker.pool.running
    # When a second signal stops it at once
    worker.stop(force=True)
    worker._drain()
    # Then the job is READY again, as if never claimed
    job = Job.objects.get(pk=result.id)
    assert (job.status, job.attempts, job.claimed_by, job.worker_ids) == (
        JobStatus.READY,
        0,
        None,
        [],
    )
