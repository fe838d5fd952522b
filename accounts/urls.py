"""Django's login, logout and password views, the password reset request replaced."""

from __future__ import annotations

from django.contrib.auth import urls as auth_urls
from django.urls import path

from .views import PasswordResetView

urlpatterns = [
    path("password_reset/", PasswordResetView.as_view(), name="password_reset"),
    *(route for route in auth_urls.urlpatterns if route.name != "password_reset"),
]
