"""Create, check and revoke API tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from mission_control.sql_rows import columns_of, first_row, instance_from

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


@dataclass(frozen=True)
class JoinedRow:
    """Another table's row fetched in a token's own query (`token_user_with`).

    `join` is a LEFT JOIN of the table under `alias` with its own `%s` parameters,
    so the token's row comes back whether or not this one exists.
    """

    model: type[Model]
    alias: str
    join: str
    params: Sequence[Any] = ()


def _token_owner(
    key_hash: str, *, stale_before, joined: JoinedRow | None = None
) -> tuple[AbstractBaseUser | None, int, bool, Model | None]:
    """Return the owner of the unrevoked token with this hash, in one query.

    Also the token's id, whether its last use is older than `stale_before`, and
    `joined`'s row if asked for and found ((None, 0, False, None) without such a token).
    """
    user_model = get_user_model()
    quote = connection.ops.quote_name
    users, tokens = quote(user_model._meta.db_table), quote(ApiToken._meta.db_table)
    field = ApiToken._meta.get_field
    token_id, last_used = quote(field("id").column), quote(field("last_used_at").column)
    also = f", {columns_of(joined.model, joined.alias)}" if joined else ""
    sql = (
        f"SELECT {columns_of(user_model, 'u')}, t.{token_id},"  # noqa: S608 (names from the models)
        f" (t.{last_used} IS NULL OR t.{last_used} < %s){also}"
        f" FROM {users} u INNER JOIN {tokens} t"
        f" ON t.{quote(field('user').column)} = u.{quote(user_model._meta.pk.column)}"
        f" {joined.join if joined else ''}"
        f" WHERE t.{quote(field('key_hash').column)} = %s"
        f" AND t.{quote(field('revoked_at').column)} IS NULL"
    )
    params = [
        connection.ops.adapt_datetimefield_value(stale_before),
        *(joined.params if joined else ()),
        key_hash,
    ]
    # Every token request runs it: planned once per pooled connection.
    user, extra = first_row(user_model, sql, params, prepare=True)
    if user is None:
        return None, 0, False, None
    row = None
    # A LEFT JOIN that found nothing gives NULL for every column, the primary key too.
    if joined and extra[2 + _pk_position(joined.model)] is not None:
        row = instance_from(joined.model, extra[2:])
    return user, extra[0], bool(extra[1]), row


def _pk_position(model: type[Model]) -> int:
    return model._meta.concrete_fields.index(model._meta.pk)


def token_user(raw: str) -> AbstractBaseUser | None:
    """Return the active user a raw token belongs to, or None.

    Every token request (API, SSE, WebSocket) runs this, and it is checked in
    the database each time, so a revoked token stops working at once. It is
    written as SQL: compiling the token-and-user lookup through the ORM took
    longer than the round trip to PostgreSQL (about 1 ms of 1.7 ms).
    """
    return token_user_with(raw, None)[0]


def token_user_with(
    raw: str, joined: JoinedRow | None
) -> tuple[AbstractBaseUser | None, Model | None]:
    """`token_user`, with `joined`'s row fetched in the same query (None without it).

    For the views that check their token themselves (`accounts.middleware.
    checks_token_itself`): a download's access check was two round trips to
    PostgreSQL, the token's and the image's, each a large part of an idle
    worker's answer to an X-Accel download. The row is None, unlooked-at,
    whenever the user is.
    """
    if not raw or len(raw) > 200:
        return None, None
    now = timezone.now()
    user, token_id, stale, row = _token_owner(
        _hash(raw), stale_before=now - LAST_USED_GRANULARITY, joined=joined
    )
    if user is None or not user.is_active:
        return None, None
    if stale:
        ApiToken.objects.filter(pk=token_id).update(last_used_at=now)
    return user, row


def token_revoke(*, token: ApiToken) -> None:
    """Revoke a token; it stops working on the next request."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
