"""Console pages that are not lists of rows (failures, tasks): an index entry, view-only."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied

VIEW = "django_jobs.view_job"


class PageAdmin(admin.ModelAdmin):
    """A proxy's admin that only serves its own views, to anyone who may view jobs."""

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(VIEW)

    def has_module_permission(self, request) -> bool:
        return request.user.has_perm(VIEW)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def check_view(self, request) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def page_context(self, request, title: str) -> dict:
        return {**self.admin_site.each_context(request), "title": title, "opts": self.model._meta}
