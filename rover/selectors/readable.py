"""Keep rows with unloadable timestamps out of every read, and say so in the log.

Input validation (`mission_control.parsing`) keeps client timestamps between
1970 and a day ahead, but a row written before that rule, by raw SQL or by a
restore can hold anything the database takes: PostgreSQL stores
`0001-01-01T00:00:00+14:00` (year 1 BC in UTC) or `infinity`, SQLite any text.
Loading such a value raises in psycopg or in Django's SQLite converter, and one
such row used to take down the history, the CSV, the live stream's replay and
the image list for everyone.

So every read of frames and images filters the client-supplied timestamp
(`recorded_at`, `captured_at`) to [READABLE_FROM, READABLE_UNTIL) in SQL, where
any stored value compares fine, and a skipped row is never loaded. Whether
rows are being skipped is checked on the same index at most once a minute per
rover and table per process, and logged as a warning naming the rover, so an
operator can find and fix them (`unreadable_count` below). Server-set columns
(`received_at`) are not filtered: no client value reaches them.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from django.db.models import Model, Q, QuerySet

from mission_control.parsing import EPOCH

logger = logging.getLogger(__name__)

READABLE_FROM = EPOCH
# Far below Python's year 9999 limit, so no offset can push a value past it.
READABLE_UNTIL = datetime(9000, 1, 1, tzinfo=UTC)
WARN_INTERVAL_SECONDS = 60.0

_last_warned: dict[tuple[str, int], float] = {}
_lock = threading.Lock()


def readable(queryset: QuerySet, field: str) -> QuerySet:
    """Return `queryset` without rows whose `field` lies outside the readable window."""
    return queryset.filter(**{f"{field}__gte": READABLE_FROM, f"{field}__lt": READABLE_UNTIL})


def unreadable(queryset: QuerySet, field: str) -> QuerySet:
    """Return the rows of `queryset` that `readable` skips."""
    return queryset.filter(
        Q(**{f"{field}__lt": READABLE_FROM}) | Q(**{f"{field}__gte": READABLE_UNTIL})
    )


def unreadable_count(model: type[Model], field: str, **filters) -> int:
    """Return how many rows of `model` matching `filters` are skipped by every read."""
    return unreadable(model.objects.filter(**filters), field).count()


def _due(model: type[Model], field: str, rover_id: int) -> bool:
    """Return whether the rover's skipped rows are due to be checked (once a minute)."""
    key = (f"{model._meta.label}.{field}", rover_id)
    now = time.monotonic()
    with _lock:
        last = _last_warned.get(key)
        if last is not None and now - last < WARN_INTERVAL_SECONDS:
            return False
        _last_warned[key] = now
        return True


def _log(model: type[Model], field: str, rover_id: int, count: int) -> None:
    if count:
        logger.warning(
            "%d %s row(s) of rover %s have %s outside [%s, %s) and are skipped by every read",
            count,
            model._meta.label,
            rover_id,
            field,
            READABLE_FROM.date(),
            READABLE_UNTIL.date(),
        )


def unreadable_warn(model: type[Model], field: str, *, rover_id: int) -> None:
    """Log a warning when the rover has rows every read skips (checked once a minute)."""
    if _due(model, field, rover_id):
        _log(model, field, rover_id, unreadable_count(model, field, rover_id=rover_id))


async def aunreadable_warn(model: type[Model], field: str, *, rover_id: int) -> None:
    """`unreadable_warn` for async code."""
    if _due(model, field, rover_id):
        count = await unreadable(model.objects.filter(rover_id=rover_id), field).acount()
        _log(model, field, rover_id, count)
