"""Root URL map: each app owns its own URLs."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("rover.urls")),
    path("", include("comms.urls")),
]
