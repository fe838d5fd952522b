"""The password reset form, mailing through `accounts.mail` (after the answer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.auth import forms as auth_forms
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.template import loader

from .mail import mail_send_later

# One reset mail per account this often, else anyone could flood a user's mailbox from
# the form. Counted per worker process (the default cache is the process's memory).
MAIL_INTERVAL_SECONDS = 300


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's form; the mail leaves after the answer (accounts/mail.py), once per interval."""

    def get_users(self, email: str) -> Iterator[Any]:
        """Return the users to mail: Django's, less those mailed in the last interval."""
        for user in super().get_users(email):
            if cache.add(f"password-reset-mail:{user.pk}", True, MAIL_INTERVAL_SECONDS):
                yield user

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        """Render the reset mail now; queue it for sending."""
        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        body = loader.render_to_string(email_template_name, context)
        message = EmailMultiAlternatives(subject, body, from_email, [to_email])
        if html_email_template_name is not None:
            html = loader.render_to_string(html_email_template_name, context)
            message.attach_alternative(html, "text/html")
        mail_send_later(message, purpose="password reset")
