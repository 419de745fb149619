"""The queues and workers pages in a real browser at 1280 × 800 (a laptop's screen)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from django_jobs import chain
from django_jobs.jobs.operations import pause_queue
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Queue, Worker
from tests import tasks
from tests.console import make_user
from tests.test_browser import browser, log_in, screenshot  # noqa: F401  (fixture, helpers)

pytestmark = pytest.mark.browser


@pytest.fixture
def laptop(browser):  # noqa: F811  (the fixture imported above)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def fits_the_width(page) -> bool:
    """Neither the page nor a changelist's table (which scrolls inside its box) overflows."""
    return page.evaluate(
        "[document.documentElement, ...document.querySelectorAll('.results')]"
        ".every(e => e.scrollWidth <= e.clientWidth)"
    )


def test_operator_pauses_and_resumes_a_queue_from_the_queues_page(laptop, live_server, tmp_path):
    make_user("admin", superuser=True)
    for i in range(3):
        tasks.add.enqueue(i, i)
    tasks.other_queue.enqueue("mail")
    pause_queue("default", "reports")
    log_in(laptop, live_server.url, "admin")
    laptop.goto(live_server.url + reverse("admin:django_jobs_queue_changelist"))

    default = laptop.locator("#jobs-queue-list tr[data-queue=default]")
    reports = laptop.locator("#jobs-queue-list tr[data-queue=reports]")
    assert "active" in default.inner_text() and "3" in default.inner_text()
    assert "paused" in reports.inner_text()
    screenshot(laptop, "queues.png", tmp_path)
    assert fits_the_width(laptop)

    default.locator("button[value=pause]").click()
    laptop.wait_for_selector("#jobs-queue-list tr[data-queue=default] button[value=resume]")
    assert "paused" in default.inner_text()
    assert Queue.objects.get(pk="default").paused
    reports.locator("button[value=resume]").click()
    laptop.wait_for_selector("#jobs-queue-list tr[data-queue=reports] button[value=pause]")
    assert "active" in reports.inner_text()
    assert not Queue.objects.get(pk="reports").paused


def test_workers_list_fits_a_laptop_screen(laptop, live_server, tmp_path):
    make_user("admin", superuser=True)
    now = timezone.now()
    for n, (host, ago, stopped) in enumerate(
        [
            ("web-1.prod.example.com", 2, None),
            ("web-2.prod.example.com", 4, None),
            ("batch-reports-7f9c8d6b5-x2k4q", 400, None),
            ("web-3.prod.example.com", 90, now - timedelta(minutes=1)),
        ]
    ):
        worker = Worker.objects.create(
            id=f"{host}-{1000 + n}-9f3b2c7a1d",
            hostname=host,
            pid=1000 + n,
            queues=["default", "emails"] if n != 2 else ["reports"],
            concurrency=8,
            started_at=now - timedelta(hours=3),
            last_heartbeat_at=now - timedelta(seconds=ago),
            stopped_at=stopped,
        )
        for i in range(n + 1):
            job = tasks.add.enqueue(i, i)
            Job.objects.filter(pk=job.id).update(
                status=JobStatus.RUNNING,
                claimed_by=worker.pk,
                attempts=1,
                last_attempted_at=now,
                lease_expires_at=now + timedelta(minutes=1),
            )
    log_in(laptop, live_server.url, "admin")
    laptop.goto(live_server.url + reverse("admin:django_jobs_worker_changelist"))

    rows = laptop.locator("#result_list tbody tr")
    assert rows.count() == 4
    assert "live" in rows.first.inner_text() and "ago" in rows.first.inner_text()
    screenshot(laptop, "workers.png", tmp_path)
    assert fits_the_width(laptop)

    rows.first.locator("a", has_text="its jobs").click()
    laptop.wait_for_selector("#result_list")
    assert laptop.locator("#result_list tbody tr").count() == 1

    laptop.go_back()
    rows.nth(1).locator("th a").click()
    laptop.wait_for_selector(".field-running_jobs_display table")
    assert laptop.locator(".field-running_jobs_display tbody tr").count() == 2
    laptop.screenshot(path=str(tmp_path / "worker.png"), full_page=True)
    assert fits_the_width(laptop)


def test_workflows_list_and_page_fit_a_laptop_screen(laptop, live_server, tmp_path):
    make_user("admin", superuser=True)
    for i in range(3):
        chain(tasks.add.s(i, 1), tasks.add.s(10), tasks.mul.si(3, 4)).enqueue()
    log_in(laptop, live_server.url, "admin")
    laptop.goto(live_server.url + reverse("admin:django_jobs_workflow_changelist"))
    rows = laptop.locator("#result_list tbody tr")
    assert rows.count() == 3 and "Waiting" in rows.first.inner_text()
    laptop.screenshot(path=str(tmp_path / "workflows.png"), full_page=True)
    assert fits_the_width(laptop)
    rows.first.locator("th a").click()
    laptop.wait_for_selector(".field-steps_display table")
    assert laptop.locator(".field-steps_display tbody tr").count() == 3
    laptop.screenshot(path=str(tmp_path / "workflow.png"), full_page=True)
    assert fits_the_width(laptop)
