"""Delete django-axes' login records past their use (run it from cron, like prune_uploads).

Axes writes an `AccessLog` row for every successful login (and fills in its logout) and
never deletes one; `LOGIN_LOG_RETENTION_DAYS` bounds them. An `AccessAttempt` (failures
of one address, username and user agent) counts only within LOGIN_LOCKOUT_MINUTES of its
last failure; axes deletes the cooled-off ones at the next login anywhere, so on a
quiet site they would linger. `AccessFailureLog` (off here) follows the access log.
"""

from __future__ import annotations

from datetime import timedelta

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone


class Command(BaseCommand):
    help = (
        "Delete login access logs older than --days (default LOGIN_LOG_RETENTION_DAYS) and "
        "failed-login counts past LOGIN_LOCKOUT_MINUTES (no lock is lifted)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, help="age of the access logs to delete (default: the setting)"
        )
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args, days: int | None, dry_run: bool, **options):
        days = settings.LOGIN_LOG_RETENTION_DAYS if days is None else days
        if days < 1:
            raise CommandError("--days must be at least 1.")
        now = timezone.now()
        logs = AccessLog.objects.filter(attempt_time__lt=now - timedelta(days=days))
        failure_logs = AccessFailureLog.objects.filter(attempt_time__lt=now - timedelta(days=days))
        # The lock of an address runs LOGIN_LOCKOUT_MINUTES from its last failure, which
        # is the attempt's attempt_time: older ones no longer count (axes' own clean-up rule).
        cooled_off = AccessAttempt.objects.filter(
            attempt_time__lte=now - settings.AXES_COOLOFF_TIME
        )
        if dry_run:
            counts = (logs.count() + failure_logs.count(), cooled_off.count())
        else:
            with transaction.atomic():
                counts = (logs.delete()[0] + failure_logs.delete()[0], cooled_off.delete()[0])
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {counts[0]} login access log(s) older than {days} day(s) and "
            f"{counts[1]} cooled-off failed-login count(s)."
        )
