"""Session pages of accounts: the password reset request."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse

from .forms import PasswordResetForm


class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link by email; without a mail server, say so and look nobody up."""

    form_class = PasswordResetForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "reset_by_email": _reset_by_email()}

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _reset_by_email():
            # The same page for every address: nothing is looked up, sent or logged.
            return self.get(request, *args, **kwargs)
        return super().post(request, *args, **kwargs)


def _reset_by_email() -> bool:
    return settings.PASSWORD_RESET_BY_EMAIL
