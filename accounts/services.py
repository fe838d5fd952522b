"""Create, check and revoke API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from .models import ApiToken

TOKEN_PREFIX = "mc_"  # noqa: S105 - a label, not a secret
# last_used_at is informative only; writing it on every request would turn
# each telemetry post into two writes.
LAST_USED_GRANULARITY = timedelta(minutes=1)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_secret_assign(token: ApiToken) -> str:
    """Give an unsaved token a fresh secret; return the raw secret, shown only once."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token.prefix = raw[: len(TOKEN_PREFIX) + 6]
    token.key_hash = _hash(raw)
    return raw


def token_create(*, user: AbstractBaseUser, name: str = "") -> tuple[ApiToken, str]:
    """Create a token for the user; return it with the raw secret."""
    token = ApiToken(user=user, name=name)
    raw = token_secret_assign(token)
    token.save()
    return token, raw


def token_user(raw: str) -> AbstractBaseUser | None:
    """Return the active user a raw token belongs to, or None."""
    if not raw or len(raw) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_hash(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def token_revoke(*, token: ApiToken) -> None:
    """Revoke a token; it stops working on the next request."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
