"""Admin for schedules: next fire times, last result, a preview, enable/disable/run now."""

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_jobs import registry
from django_jobs.admin import display
from django_jobs.beat import actions, fire_times
from django_jobs.beat.models import Schedule
from django_jobs.beat.sync import discover_tasks, reset_to_code
from django_jobs.exceptions import JobsError
from django_jobs.jobs.models import Job


class ScheduleForm(forms.ModelForm):
    """Offers the declared tasks to choose from; the model's clean() checks the rest."""

    class Meta:
        model = Schedule
        fields = "__all__"  # noqa: DJ007  (every editable field is the point of this form)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        discover_tasks()
        paths = registry.declared()
        current = self.initial.get("task")
        if current and current not in paths:
            paths.append(current)  # still shown, and clean() says it is not declared
        self.fields["task"] = forms.ChoiceField(
            choices=[("", "---------"), *((p, p) for p in paths)],
            help_text=Schedule._meta.get_field("task").help_text,
        )


#: Characters of a schedule's error shown in the changelist (the rest is on hover).
ERROR_PREVIEW = 80


def failing_badge(error: str) -> str:
    """A red "failing" mark with the start of ``error``; the whole text on hover."""
    short = error if len(error) <= ERROR_PREVIEW else error[: ERROR_PREVIEW - 1] + "…"
    return format_html(
        '<span class="jobs-schedule-failing jobs-cut" title="{}">'
        "<strong>failing</strong>: {}</span>",
        error,
        short,
    )


def interval(seconds: int) -> str:
    """'10 s', '15 min', '6 h', '1 d': the largest unit that divides it."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def both_zones(schedule: Schedule, moment) -> str:
    """The exact time in the site's zone and, when it differs, in the schedule's own."""
    if moment is None:
        return ""
    site = f"{display.exact(moment)} (site time)"
    try:
        own = fire_times.zone(schedule.timezone)
    except JobsError:
        return site
    if display.exact(moment, own) == display.exact(moment):
        return site
    return f"{site}\n{display.exact(moment, own)} (the schedule's zone, {schedule.timezone})"


def exact_in_both_zones(schedule: Schedule, moment) -> str:
    """For the schedule's page: 'in 8 s', then the exact second in the site's zone and, when
    it differs, in the schedule's."""
    if moment is None:
        return "–"
    lines = [display.ago(moment), *both_zones(schedule, moment).split("\n")]
    return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = (
        "name_display",
        "task_name",
        "when",
        "zone",
        "on",
        "next_fire",
        "last_fired",
        "last_result",
        "source",
    )
    list_display_links = ("name_display",)
    list_filter = ("enabled", "missed_runs", "backend")
    search_fields = ("name", "task", "description")
    actions = ("enable_schedules", "disable_schedules", "run_now", "reset_to_code")
    readonly_fields = (
        "health",
        "upcoming_fire_times",
        "next_fire_at_exact",
        "last_fired_at_exact",
        "last_result",
        "last_error",
        "source",
    )
    fieldsets = (
        (None, {"fields": ("health", "name", "task", "description", "enabled", "source")}),
        (
            "When (one of cron, interval or one-off time)",
            {"fields": ("cron", "interval_seconds", "run_at", "timezone", "start_at", "end_at")},
        ),
        ("Job", {"fields": ("args", "kwargs", "queue_name", "priority", "backend")}),
        (
            "Missed runs",
            {"fields": ("missed_runs", "misfire_grace_seconds", "catchup_window_seconds")},
        ),
        (
            "State",
            {
                "fields": (
                    "upcoming_fire_times",
                    "next_fire_at_exact",
                    "last_fired_at_exact",
                    "last_result",
                    "last_error",
                )
            },
        ),
    )

    class Media:
        css = {"all": ("django_jobs/console.css",)}

    def get_queryset(self, request):
        last_status = Job.objects.filter(pk=OuterRef("last_job_id")).values("status")[:1]
        return super().get_queryset(request).annotate(last_status=Subquery(last_status))

    def save_model(self, request, obj, form, change) -> None:
        if change and obj.code_hash:
            obj.edited_by_operator = True  # code changes stop applying to this row
        super().save_model(request, obj, form, change)

    # --- columns --------------------------------------------------------------------------
    @admin.display(description="Name", ordering="name")
    def name_display(self, obj: Schedule) -> str:
        title = f"{obj.name}\n{obj.description}" if obj.description else obj.name
        return format_html('<span class="jobs-cut" title="{}">{}</span>', title, obj.name)

    @admin.display(description="Task", ordering="task")
    def task_name(self, obj: Schedule) -> str:
        return display.short_task(obj.task)

    @admin.display(description="When")
    def when(self, obj: Schedule) -> str:
        if obj.cron:
            title = f"cron expression, read in {obj.timezone}"
            return format_html('<span title="{}">{}</span>', title, obj.cron)
        if obj.interval_seconds:
            return f"every {interval(obj.interval_seconds)}"
        if obj.run_at:
            at = display.timestamp(obj.run_at, title=both_zones(obj, obj.run_at))
            return format_html("once, {}", at)
        return "–"

    @admin.display(description="Schedule's zone", ordering="timezone")
    def zone(self, obj: Schedule) -> str:
        title = f"Cron and one-off times are read in {obj.timezone}."
        return format_html('<span class="jobs-cut" title="{}">{}</span>', title, obj.timezone)

    @admin.display(description="on", boolean=True, ordering="enabled")
    def on(self, obj: Schedule) -> bool:
        return obj.enabled

    @admin.display(description="Next fire", ordering="next_fire_at")
    def next_fire(self, obj: Schedule) -> str:
        return display.timestamp(obj.next_fire_at, title=both_zones(obj, obj.next_fire_at))

    @admin.display(description="Last fired", ordering="last_fired_at")
    def last_fired(self, obj: Schedule) -> str:
        return display.timestamp(obj.last_fired_at, title=both_zones(obj, obj.last_fired_at))

    @admin.display(description="Next fire at")
    def next_fire_at_exact(self, obj: Schedule) -> str:
        return exact_in_both_zones(obj, obj.next_fire_at)

    @admin.display(description="Last fired at")
    def last_fired_at_exact(self, obj: Schedule) -> str:
        return exact_in_both_zones(obj, obj.last_fired_at)

    @admin.display(description="Last result")
    def last_result(self, obj: Schedule) -> str:
        if obj.last_error:
            return failing_badge(obj.last_error)
        if not obj.last_job_id:
            return "–"
        status = getattr(obj, "last_status", None)
        badge = display.status_badge(status) if status else "deleted"
        try:
            url = reverse("admin:django_jobs_job_change", args=[obj.last_job_id])
        except NoReverseMatch:
            return badge
        return format_html('<a href="{}">{}</a>', url, badge)

    @admin.display(description="Status")
    def health(self, obj: Schedule) -> str:
        if obj.last_error:
            return format_html(
                '<strong class="errornote jobs-schedule-failing">Failing: {}</strong>',
                obj.last_error,
            )
        if not obj.enabled:
            return "Disabled"
        return "OK" if obj.last_fired_at else "Not fired yet"

    @admin.display(description="Source")
    def source(self, obj: Schedule) -> str:
        if not obj.code_hash:
            return "admin"
        if not obj.edited_by_operator:
            return "code"
        return format_html(
            '<span title="{}">code, edited</span>',
            "Declared in JOBS_SCHEDULES, then edited here: changes in code no longer apply "
            "(the Reset to code definition action undoes the edit).",
        )

    @admin.display(description="Next 5 fire times")
    def upcoming_fire_times(self, obj: Schedule) -> str:
        if not obj.pk:
            return "Shown once saved."
        try:
            times = obj.upcoming(5)
            tz = fire_times.zone(obj.timezone)
        except JobsError as e:
            return str(e)
        if not times:
            return "None: the schedule has ended."
        rows = ((t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z"), t.isoformat()) for t in times)
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{} ({})</li>", rows))

    # --- actions --------------------------------------------------------------------------
    @admin.action(description="Enable selected schedules", permissions=["change"])
    def enable_schedules(self, request, queryset) -> None:
        count = actions.enable(queryset)
        text = ngettext("Enabled %(count)d schedule.", "Enabled %(count)d schedules.", count)
        self.message_user(request, text % {"count": count}, messages.SUCCESS)

    @admin.action(description="Disable selected schedules", permissions=["change"])
    def disable_schedules(self, request, queryset) -> None:
        count = actions.disable(queryset)
        text = ngettext("Disabled %(count)d schedule.", "Disabled %(count)d schedules.", count)
        self.message_user(request, text % {"count": count}, messages.SUCCESS)

    @admin.action(description="Run selected schedules now", permissions=["change"])
    def run_now(self, request, queryset) -> None:
        ids, failures = actions.run_now(queryset)
        if ids:
            text = ngettext("Enqueued %(count)d job.", "Enqueued %(count)d jobs.", len(ids))
            self.message_user(request, text % {"count": len(ids)}, messages.SUCCESS)
        for schedule, error in failures:
            text = _("Schedule “%(name)s” was not run: %(error)s")
            self.message_user(
                request, text % {"name": schedule.name, "error": error}, messages.ERROR
            )

    @admin.action(description="Reset to code definition", permissions=["change"])
    def reset_to_code(self, request, queryset) -> None:
        count = reset_to_code(queryset.db, queryset)
        text = ngettext(
            "Reset %(count)d schedule to JOBS_SCHEDULES.",
            "Reset %(count)d schedules to JOBS_SCHEDULES.",
            count,
        )
        self.message_user(request, text % {"count": count})
