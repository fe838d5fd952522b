"""The password reset form, mailing through `accounts.mail` (after the answer)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import forms as auth_forms
from django.core.mail import EmailMultiAlternatives
from django.template import loader

from .mail import mail_send_later


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Django's form, except that the mail leaves after the answer (see accounts/mail.py)."""

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
