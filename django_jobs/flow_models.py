"""Rows of flow control: a Gate per limit key, a Workflow per chain, group or chord."""

import uuid

from django.db import models


class Gate(models.Model):
    """The shared state of one limit key; claims of gated jobs lock this row.

    ``starts`` holds the start times (epoch seconds) inside the current rate window: a sliding
    log, so no window of the rate's length ever holds more starts than the rate allows.
    """

    key = models.CharField(primary_key=True, max_length=255)
    starts = models.JSONField(default=list, blank=True)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "django_jobs_gate"
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class FailurePolicy(models.TextChoices):
    STOP = "stop", "Stop: cancel the steps not started"
    CONTINUE = "continue", "Continue: run the next steps anyway"


class Workflow(models.Model):
    """A chain, group or chord: its steps are jobs pointing here (``Job.workflow``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    backend = models.CharField(max_length=100, default="default")
    name = models.CharField(max_length=255, blank=True, help_text="What the canvas looks like.")
    on_failure = models.CharField(max_length=10, choices=FailurePolicy, default=FailurePolicy.STOP)
    #: Step ids in canvas order; ``leaves`` are the steps whose results are the workflow's.
    steps = models.JSONField(default=list, blank=True)
    leaves = models.JSONField(default=list, blank=True)
    #: Whether the result is the list of the leaves' results (the canvas ends with a group).
    returns_list = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "django_jobs_workflow"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or 'workflow'} {self.id}"
