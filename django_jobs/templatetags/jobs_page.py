"""Filters of the job page: exact times (to the second) and durations."""

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html

from django_jobs.admin import display

register = template.Library()


@register.filter
def stamp(value: datetime | None) -> str:
    """``<time>`` with the local date and time to the second; '–' when unknown."""
    if value is None:
        return "–"
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        date_format(local, "Y-m-d H:i:s.u T"),
        date_format(local, "Y-m-d H:i:s"),
    )


@register.filter
def span(value: timedelta | float | None) -> str:
    """A duration: '850 ms', '12.3 s', '4 min 3 s'; '–' when unknown."""
    return display.duration(value)
