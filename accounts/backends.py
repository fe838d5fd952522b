"""The login rate limit's authentication backend (django-axes)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LoginRateLimitBackend(AxesStandaloneBackend):
    """Refuse logins from a locked-out address; let calls without a request through.

    Every login that comes over the network (the admin's, /accounts/login/) passes
    its request to authenticate(), and is counted. A call without one (a test
    client's `login()`, a management command) is no network attempt: django-axes
    would raise on it, so it falls through to the next backend instead. Any new
    login view must therefore pass the request to authenticate(), as Django's do.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
