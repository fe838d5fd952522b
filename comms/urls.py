from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("api/teams", views.team_list, name="team-list"),
    path("api/teams/<slug:slug>/messages", views.team_messages, name="team-messages"),
]
