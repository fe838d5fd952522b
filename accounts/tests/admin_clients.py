"""Admin pages as a given user (the `root` superuser is a fixture of the root conftest)."""

from __future__ import annotations

from django.test import Client


def logged_in(user) -> Client:
    """A client logged in as `user` (no password round trip)."""
    client = Client()
    client.force_login(user)
    return client
