"""A changelist paginator that never counts a long history row by row."""

from django.core.paginator import Paginator
from django.utils.functional import cached_property

from django_jobs.console import queries

#: Filtered lists are counted up to this many rows; past it, the page list stops there.
COUNT_CAP = 10_000


class EstimatedCountPaginator(Paginator):
    """Unfiltered and large: the planner's estimate. Filtered: a count capped at COUNT_CAP."""

    @cached_property
    def count(self) -> int:
        jobs = self.object_list
        if not jobs.query.where:
            estimate = queries.planner_estimate(jobs.db)
            if estimate is not None and estimate > COUNT_CAP:
                return estimate
        return jobs.order_by()[: COUNT_CAP + 1].count()
