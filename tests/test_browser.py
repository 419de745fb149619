"""The console in a real browser (Playwright + Debian's chromium) against a live server."""

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from django_jobs.brokers.fallback import OUTAGE_NOTE
from django_jobs.jobs.status import JobStatus
from django_jobs.models import Job, Queue, Worker
from tests import tasks
from tests.conftest import ROOT, wait_for
from tests.console import (
    LONG_TASKS,
    PASSWORD,
    busy_day,
    failed_job,
    make_user,
    realistic_jobs,
    realistic_schedules,
)

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Set to save the screenshots into docs/images (they are committed).
SAVE_SCREENSHOTS = os.environ.get("JOBS_SCREENSHOTS") == "1"


def missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} not found: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright not installed: pip install -e '.[dev]'")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


#: Screens the console lists must fit without scrolling sideways: a laptop with the admin's
#: navigation sidebar open (Django's default) and closed, and a desktop.
SCREENS = {"1280x800": (1280, 800, True), "1280x800-nav-closed": (1280, 800, False),
           "1920x1080": (1920, 1080, True)}  # fmt: skip


@pytest.fixture(params=list(SCREENS))
def screen(browser, request):
    width, height, nav_open = SCREENS[request.param]
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(20_000)
    # What the admin's toggle remembers (nav_sidebar.js): nothing stored means open.
    if not nav_open:
        context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page = context.new_page()
    page.screen_name = request.param
    yield page
    context.close()


def log_in(page, base: str, username: str) -> None:
    page.goto(base + reverse("admin:login"))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def screenshot(page, name: str, tmp_path: Path, full_page: bool = True) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=full_page)
    if SAVE_SCREENSHOTS:
        shutil.copy(path, ROOT / "docs" / "images" / name)


def job_status(job_id) -> str:
    return Job.objects.get(pk=job_id).status


@pytest.mark.processes
def test_operator_sees_a_failed_job_retries_it_and_watches_it_succeed(
    page, live_server, spawn_worker, tmp_path
):
    # Given a worker that ran some jobs, one of which failed
    make_user("admin", superuser=True)
    for i in range(24):
        tasks.add.enqueue(i, i)
    flaky = tasks.fails_first_time.enqueue()
    tasks.other_queue.using(run_after=None).enqueue("mail")
    spawn_worker("--concurrency", "2")
    wait_for(lambda: job_status(flaky.id) == JobStatus.FAILED, message="the job to fail")
    wait_for(lambda: not Job.objects.exclude(status__in=["SUCCESSFUL", "FAILED"]).exists())
    base = live_server.url
    log_in(page, base, "admin")

    # When the operator opens the dashboard from the admin index
    page.click(f"a[href='{reverse('admin:django_jobs_dashboard_changelist')}']")
    # Then it shows the failure and the live worker
    failure = page.locator("#jobs-card-failure .jobs-card-value")
    assert failure.inner_text() != "–"
    assert page.locator("#jobs-workers tbody tr").count() == 1
    assert "live" in page.locator("#jobs-workers").inner_text()
    page.click("#jobs-refresh")  # the JSON endpoint answers and the page re-renders
    page.wait_for_function("Number(document.getElementById('jobs-dashboard').dataset.loaded) >= 2")

    # When they follow "failed jobs" to the job's page
    page.click("text=failed jobs")
    page.click("#result_list [title='tests.tasks.fails_first_time']")
    # Then the page shows the error first, with its traceback, then the attempt and its worker
    assert "the payment provider timed out" in page.locator("#jobs-errors").inner_text()
    assert "Traceback" in page.locator("#jobs-errors").inner_text()
    assert "failed" in page.locator("#jobs-attempts tbody tr").inner_text()
    screenshot(page, "job.png", tmp_path)

    # When they press Retry
    page.click("#jobs-retry")
    assert "Retried 1 job." in page.locator(".messagelist").inner_text()

    # Then the job runs again and the page shows it succeeded, with its return value
    def shows_success():
        page.reload()
        return "Successful" in page.locator("#jobs-status").inner_text()

    wait_for(shows_success, message="the retried job to succeed")
    assert "charged" in page.locator("#jobs-outcome").inner_text()


def test_read_only_user_sees_the_console_but_is_offered_no_action(page, live_server):
    # Given a failed job and a user with view_job only
    job = failed_job("x")
    make_user("viewer", "view_job", "view_worker")
    log_in(page, live_server.url, "viewer")
    # When they open the job list, the job page and the dashboard
    page.goto(live_server.url + reverse("admin:django_jobs_job_changelist"))
    assert page.locator("#result_list a:has-text('tests.tasks.echo')").count() == 1
    assert page.locator("select[name=action]").count() == 0
    page.click("#result_list a:has-text('tests.tasks.echo')")
    assert "ValueError: boom" in page.locator("#jobs-errors").inner_text()
    assert page.locator("#jobs-retry").count() == 0
    page.goto(live_server.url + reverse("admin:django_jobs_dashboard_changelist"))
    page.wait_for_selector("#jobs-queues tbody tr")
    # Then nothing offers to change anything
    assert page.locator("#jobs-queues button").count() == 0
    assert job_status(job.pk) == JobStatus.FAILED


def test_operator_pauses_and_resumes_a_queue_from_the_dashboard(page, live_server):
    make_user("admin", superuser=True)
    tasks.add.enqueue(1, 2)
    log_in(page, live_server.url, "admin")
    page.goto(live_server.url + reverse("admin:django_jobs_dashboard_changelist"))
    page.click("#jobs-queues tr[data-queue=default] button[data-action=pause]")
    page.wait_for_selector("#jobs-queues tr[data-queue=default] button[data-action=resume]")
    assert "paused" in page.locator("#jobs-queues tr[data-queue=default]").inner_text()
    assert Queue.objects.get(pk="default").paused
    page.click("#jobs-queues tr[data-queue=default] button[data-action=resume]")
    page.wait_for_selector("#jobs-queues tr[data-queue=default] button[data-action=pause]")
    assert not Queue.objects.get(pk="default").paused


def test_dashboard_shows_a_worker_polling_the_database_while_redis_is_down(page, live_server):
    # Given a live worker whose Redis is down (the note its broker writes on its row)
    now = timezone.now()
    Worker.objects.create(
        id="a" * 32, hostname="web-1", pid=4242, started_at=now, last_heartbeat_at=now,
        note=OUTAGE_NOTE,
    )  # fmt: skip
    make_user("admin", superuser=True)
    log_in(page, live_server.url, "admin")
    # When the operator opens the dashboard
    page.goto(live_server.url + reverse("admin:django_jobs_dashboard_changelist"))
    page.wait_for_function("Number(document.getElementById('jobs-dashboard').dataset.loaded) >= 1")
    # Then the worker's row says it is live and polling the database
    row = page.locator("#jobs-workers tbody tr").inner_text()
    assert "live" in row and OUTAGE_NOTE in row, row


def job_url(base: str, job_id) -> str:
    return base + reverse("admin:django_jobs_job_change", args=[job_id])


def live_status(page, status: str) -> None:
    """Wait until the job page's live updates show ``status``."""
    page.wait_for_function(
        f"document.getElementById('jobs-job').dataset.status === '{status}'", timeout=90_000
    )


@pytest.mark.processes
def test_operator_cancels_a_running_job_from_its_page(page, live_server, spawn_worker, tmp_path):
    # Given a job running on a real worker, checking for cancellation as it goes
    make_user("admin", superuser=True)
    started = tmp_path / "started"
    result = tasks.stops_when_cancelled.enqueue(str(started))
    spawn_worker()
    wait_for(started.exists, message="the job to start")
    log_in(page, live_server.url, "admin")
    page.goto(job_url(live_server.url, result.id))
    assert "Running" in page.locator("#jobs-status").inner_text()
    # When the operator presses Cancel, then confirms
    page.click("#jobs-cancel")
    assert "It is running" in page.locator("#content-main").inner_text()
    page.click("#jobs-cancel-confirm")
    # Then the page says a stop was asked for, not that the job was cancelled
    assert "Asked 1 running job to stop." in page.locator(".messagelist").inner_text()
    assert page.locator("#jobs-cancel").count() == 0
    # And the job stops: the page shows it CANCELLED without being reloaded
    page.evaluate("window.jobsNotReloaded = true")
    live_status(page, "CANCELLED")
    assert page.evaluate("window.jobsNotReloaded") is True
    assert "Cancelled" in page.locator("#jobs-status").inner_text()
    assert "JobCancelled" in page.locator("#jobs-attempts").inner_text()
    assert job_status(result.id) == JobStatus.CANCELLED


@pytest.mark.processes
def test_job_list_and_page_follow_a_running_job_live(page, live_server, spawn_worker, tmp_path):
    # Given a running job that reported half its progress and waits for a file
    make_user("admin", superuser=True)
    go = tmp_path / "go"
    result = tasks.progress_then_wait.enqueue(str(go))
    for i in range(5):
        tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(i, i)
    spawn_worker()
    wait_for(lambda: Job.objects.get(pk=result.id).progress, message="the progress report")
    log_in(page, live_server.url, "admin")
    # When the operator opens the job list: the running row gets its progress bar
    page.goto(live_server.url + reverse("admin:django_jobs_job_changelist"))
    row = page.locator(f"#result_list tr:has(a[href*='{result.id}'])")
    row.locator("progress.jobs-progress").wait_for()
    assert "Running" in row.inner_text()
    # When they open its page: the header shows the progress
    page.goto(job_url(live_server.url, result.id))
    assert "50 %" in page.locator(".jobs-summary-progress").inner_text()
    assert "half way" in page.locator(".jobs-summary-progress").inner_text()
    screenshot(page, "job-running.png", tmp_path)
    # When the job goes on and ends: the page shows it, with its return value, without a reload
    page.evaluate("window.jobsNotReloaded = true")
    go.write_text("go")
    live_status(page, "SUCCESSFUL")
    assert page.evaluate("window.jobsNotReloaded") is True
    assert "Successful" in page.locator("#jobs-status").inner_text()
    assert '"done"' in page.locator("#jobs-outcome").inner_text()
    assert "succeeded" in page.locator("#jobs-attempts").inner_text()


def test_operator_retries_a_failure_group_from_the_failures_page(browser, live_server, tmp_path):
    # Given failures of two tasks and three exception classes, and a task with a schedule
    from django_jobs.models import Schedule
    from tests.console import ended_job

    make_user("admin", superuser=True)
    group = [
        ended_job(tasks.echo, "builtins.ValueError", ago=timezone.timedelta(minutes=m))
        for m in (2, 9, 40)
    ]
    others = [
        ended_job(tasks.echo, "builtins.KeyError", "payments.errors.ProviderTimeout"),
        ended_job(tasks.add, "payments.errors.ProviderTimeout", ago=timezone.timedelta(hours=3)),
        ended_job(tasks.add, "builtins.ZeroDivisionError", ago=timezone.timedelta(minutes=1)),
    ]
    for i in range(40):
        ago = timezone.timedelta(minutes=i * 7)
        ended_job(tasks.add, status=JobStatus.SUCCESSFUL, ago=ago, run=0.2 + i / 10)
    Schedule.objects.create(name="nightly totals", task="tests.tasks.add", cron="0 3 * * *")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    base = live_server.url
    log_in(page, base, "admin")

    # When the operator opens Failures from the admin index
    page.click(f"a[href='{reverse('admin:django_jobs_failure_changelist')}']")
    # Then each task × class is a group, the largest first, with a sample traceback
    rows = page.locator("tr.jobs-failure-group")
    assert rows.count() == 4
    first = rows.first.inner_text()
    assert "tests.tasks.echo" in first and "ValueError" in first and "3" in first
    page.locator("tr.jobs-failure-sample summary").first.click()
    assert "builtins.ValueError: attempt 1" in page.locator("pre.jobs-traceback").first.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "failures.png", tmp_path)

    # When they retry that group and confirm
    rows.first.locator("button.jobs-retry-group").click()
    assert "Retry 3 failed jobs" in page.locator("#content-main").inner_text()
    page.click("#jobs-confirm")
    # Then exactly its three jobs are READY again, and the others are still failed
    assert "Retried 3 failed jobs" in page.locator(".messagelist").inner_text()
    assert [job_status(pk) for pk in group] == [JobStatus.READY] * 3
    assert [job_status(pk) for pk in others] == [JobStatus.FAILED] * 3
    assert page.locator("tr.jobs-failure-group").count() == 3

    # When they follow a task to its page
    page.click("tr.jobs-failure-group a:has-text('tests.tasks.add')")
    # Then it shows the task's figures, failures, schedule and limits
    assert "ZeroDivisionError" in page.locator("#jobs-task-failures").inner_text()
    assert "nightly totals" in page.locator("#jobs-task-schedules").inner_text()
    assert "max_attempts" in page.locator("#jobs-task-options").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "task.png", tmp_path)
    context.close()


#: Boxes that scroll sideways: the page, and the changelist's results (Django wraps the table
#: in ``.results`` with ``overflow-x: auto``, so a table too wide scrolls there).
OVERFLOW = r"""(selectors) => selectors.map((s) => document.querySelector(s))
    .filter((box) => box.scrollWidth > box.clientWidth)
    .map((box) => `${box.className || box.tagName}: ${box.scrollWidth} > ${box.clientWidth}`)"""

#: Rows clearly taller than the shortest (a cell whose text wraps doubles its row; a badge
#: may add a pixel).
TALL_ROWS = r"""() => {
    const rows = [...document.querySelectorAll('#result_list tbody tr')];
    const lowest = Math.min(...rows.map((row) => row.offsetHeight));
    return rows.filter((row) => row.offsetHeight > lowest * 1.3)
        .map((row) => row.innerText.replace(/\s+/g, ' ').slice(0, 60));
}"""

#: Column headers not shown (stepped aside on a narrow list).
HIDDEN_COLUMNS = r"""() => [...document.querySelectorAll('#result_list thead th')]
    .filter((th) => !th.offsetWidth).map((th) => th.className.match(/column-(\S+)/)[1])"""


def assert_fits(page) -> None:
    assert page.evaluate(OVERFLOW, ["html", "#changelist .results"]) == []
    assert page.evaluate(TALL_ROWS) == []
    assert page.locator("#result_list tbody tr").first.evaluate("row => row.offsetHeight") < 40
    hidden = page.evaluate(HIDDEN_COLUMNS)
    if page.screen_name == "1280x800":  # both sidebars open: the least needed columns step aside
        assert set(hidden) <= {"worker_display", "wait_display", "source", "task_name"}, hidden
    else:
        assert hidden == []


def test_job_list_fits_the_screen_with_long_task_paths(screen, live_server, tmp_path):
    # Given jobs in every status with long task paths, queues and worker ids, running ones
    # reporting progress with a long message
    realistic_jobs()
    make_user("admin", superuser=True)
    log_in(screen, live_server.url, "admin")
    for ordering in ("", "?o=-2.4"):  # sorted by a column or two: the headers grow
        # When the operator opens the job list
        screen.goto(live_server.url + reverse("admin:django_jobs_job_changelist") + ordering)
        # (once the live updates drew the running jobs' progress bars beside their status)
        screen.wait_for_function("Number(document.querySelector('#result_list').dataset.polls)")
        progress = screen.locator("#result_list .jobs-progress-line").first
        assert progress.get_attribute("title").startswith("41 % (4127/10000) · reconciling")
        # Then nothing scrolls sideways and every row is one line high
        assert_fits(screen)
        if screen.screen_name == "1280x800" and not ordering:
            screenshot(screen, "jobs.png", tmp_path, full_page=False)
    # And a shortened task path has the whole path on hover, a time its exact second
    task = screen.locator("#result_list tbody tr .field-task_name [title]").first
    assert task.inner_text().startswith("…")
    assert task.get_attribute("title") in LONG_TASKS
    enqueued = screen.locator("#result_list tbody tr .field-enqueued time").first
    assert re.fullmatch(r"\d+ (s|min|h|d) ago", enqueued.inner_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", enqueued.get_attribute("title"))


def test_schedule_list_fits_the_screen_with_failing_schedules(screen, live_server, tmp_path):
    # Given schedules in far time zones with long names and task paths, two failing
    realistic_schedules()
    make_user("admin", superuser=True)
    log_in(screen, live_server.url, "admin")
    # When the operator opens the schedule list
    screen.goto(live_server.url + reverse("admin:django_jobs_schedule_changelist"))
    # Then nothing scrolls sideways, every row is one line high, and the errors show as failing
    assert_fits(screen)
    assert screen.locator("#result_list .jobs-schedule-failing").count() == 2
    # And a next fire time says when relative to now, exact in both zones on hover
    weekly = screen.locator("#result_list tr:has-text('weekly digest') .field-next_fire time")
    assert re.fullmatch(r"in \d+ (s|min|h|d)", weekly.inner_text())
    assert re.fullmatch(
        r"\S+ \S+ UTC \(site time\)\n\S+ \S+ IST \(the schedule's zone, Asia/Kolkata\)",
        weekly.get_attribute("title"),
    )
    if screen.screen_name == "1280x800":
        screenshot(screen, "schedules.png", tmp_path, full_page=False)


def test_worker_list_fits_the_screen_with_long_host_names(screen, live_server):
    # Given workers on hosts with long names
    realistic_jobs()
    make_user("admin", superuser=True)
    log_in(screen, live_server.url, "admin")
    # When the operator opens the worker list
    screen.goto(live_server.url + reverse("admin:django_jobs_worker_changelist"))
    # Then nothing scrolls sideways, and the heartbeat is relative with its exact second on hover
    assert_fits(screen)
    heartbeat = screen.locator("#result_list .field-heartbeat_age [title]").first
    assert re.fullmatch(r"\d+ s ago", heartbeat.inner_text())


#: The time-axis labels of a chart: text, box, and font size as drawn.
AXIS_LABELS = r"""(id) => [...document.querySelectorAll('#' + id + ' text.jobs-label')]
    .filter((label) => label.getAttribute('text-anchor') === 'middle')
    .map((label) => {
        const box = label.getBoundingClientRect();
        const scale = box.height / label.getBBox().height;  // 1 unless the chart is stretched
        const size = parseFloat(getComputedStyle(label).fontSize) * scale;
        return {text: label.textContent, left: box.left, right: box.right, size: size};
    })"""


def test_dashboard_charts_label_their_time_axis_with_readable_ticks(page, live_server, tmp_path):
    # Given a day of finished jobs, running jobs and live workers
    busy_day()
    realistic_jobs()
    make_user("admin", superuser=True)
    log_in(page, live_server.url, "admin")
    # When the operator opens the dashboard on a 1280 px screen
    page.goto(live_server.url + reverse("admin:django_jobs_dashboard_changelist"))
    page.wait_for_function("Number(document.getElementById('jobs-dashboard').dataset.loaded) >= 1")
    # Then each chart's time axis has several times between its ends, drawn at a readable size
    # and not overlapping
    hour, day = r"\d\d:\d0( [AP]M)?", r"\d\d:00( [AP]M)?|\w+ \d+"  # the browser's 12 or 24 h clock
    for chart, pattern in (("jobs-chart-hour", hour), ("jobs-chart-day", day)):
        labels = page.evaluate(AXIS_LABELS, chart)
        assert len(labels) >= 3, labels
        assert all(re.fullmatch(pattern, label["text"]) for label in labels), labels
        assert all(label["size"] >= 10 for label in labels), labels
        assert all(a["right"] < b["left"] for a, b in zip(labels, labels[1:], strict=False)), labels
    assert page.evaluate(OVERFLOW, ["html", "#jobs-dashboard"]) == []
    screenshot(page, "dashboard.png", tmp_path)
