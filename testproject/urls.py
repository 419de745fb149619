"""URLs of the test project: the admin, the metrics, and / redirecting to the admin."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from django_jobs.console.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
