"""Delete telemetry frames older than a retention period, in batches."""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from rover.models import TelemetryFrame

UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(text: str) -> timedelta:
    """Parse '30d', '12h' or '90m' into a timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text or "")
    if match is None:
        raise CommandError(f"--older-than must look like 30d, 12h or 90m, not {text!r}.")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = "Delete telemetry frames recorded before now minus --older-than (e.g. 30d, 12h, 90m)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="age: <n>d, <n>h or <n>m")
        parser.add_argument("--rover", help="only this rover's frames (slug)")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(
        self, *args, older_than: str, rover: str | None, batch_size: int, dry_run: bool, **options
    ):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        cutoff = timezone.now() - parse_age(older_than)
        frames = TelemetryFrame.objects.filter(recorded_at__lt=cutoff)
        if rover:
            frames = frames.filter(rover__slug=rover)
        if dry_run:
            count = frames.count()
            self.stdout.write(
                f"Would delete {count} telemetry frame(s) recorded before {cutoff:%Y-%m-%d %H:%M}Z."
            )
            return
        deleted = 0
        # Short transactions of one batch each, so ingest is never blocked for long.
        while True:
            with transaction.atomic():
                ids = list(frames.order_by("pk").values_list("pk", flat=True)[:batch_size])
                if not ids:
                    break
                deleted += TelemetryFrame.objects.filter(pk__in=ids).delete()[0]
        self.stdout.write(
            f"Deleted {deleted} telemetry frame(s) recorded before {cutoff:%Y-%m-%d %H:%M}Z."
        )
