from __future__ import annotations

from django.urls import path

from .views import dashboard

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
]
