"""Delete telemetry frames older than a retention period, and rollups older than theirs.

Rollups (per-second, per-minute and per-hour buckets) are what long history windows read,
so they are kept longer than raw frames: `--rollups-older-than`, by default the
TELEMETRY_ROLLUP_RETENTION setting, and never shorter than `--older-than`.
The frame cutoff is rounded down to a whole rollup bucket, so a bucket never
loses part of its frames and a rebuild from the remaining frames stays exact.
On PostgreSQL the weekly partitions that end by the cutoff are dropped whole
(rover.services.partitions); rows are deleted only in the week the cutoff
falls in and in the DEFAULT partition (or all of them with --rover).
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from rover.models import Rover, TelemetryFrame
from rover.services.partitions import is_partitioned, partitions_drop_before
from rover.services.rollups import ROLLUP_RESOLUTIONS, floor_time, telemetry_rollups_prune

UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(text: str, option: str = "--older-than") -> timedelta:
    """Parse '30d', '12h' or '90m' into a timedelta."""
    match = re.fullmatch(r"\s*(\d{1,7})\s*([dhm])\s*", text or "")
    if match is None:
        raise CommandError(f"{option} must look like 30d, 12h or 90m, not {text!r}.")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = (
        "Delete telemetry frames recorded before now minus --older-than (e.g. 30d, 12h, 90m), "
        "and rollups before now minus --rollups-older-than (default TELEMETRY_ROLLUP_RETENTION)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="age: <n>d, <n>h or <n>m")
        parser.add_argument(
            "--rollups-older-than",
            help="age of the rollups to delete (default: the TELEMETRY_ROLLUP_RETENTION "
            "setting; empty keeps them); never less than --older-than",
        )
        parser.add_argument("--rover", help="only this rover's frames (slug)")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(
        self,
        *args,
        older_than: str,
        rollups_older_than: str | None,
        rover: str | None,
        batch_size: int,
        dry_run: bool,
        **options,
    ):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        age = parse_age(older_than)
        if rollups_older_than is None:
            rollups_older_than = settings.TELEMETRY_ROLLUP_RETENTION
        rollup_age = (
            max(age, parse_age(rollups_older_than, "--rollups-older-than"))
            if rollups_older_than
            else None
        )
        rover_obj = None
        if rover:
            rover_obj = Rover.objects.filter(slug=rover).first()
            if rover_obj is None:
                raise CommandError(f"No rover '{rover}'.")
        now = timezone.now()
        cutoff = floor_time(now - age, max(ROLLUP_RESOLUTIONS))
        frames = TelemetryFrame.objects.filter(recorded_at__lt=cutoff)
        if rover_obj is not None:
            frames = frames.filter(rover=rover_obj)
        # Whole weeks go by DROP TABLE (PostgreSQL); a week holds every rover's
        # frames, so pruning one rover deletes rows instead.
        whole = rover_obj is None and is_partitioned()
        dropped, weeks = (
            partitions_drop_before(cutoff=cutoff, dry_run=dry_run) if whole else (0, [])
        )
        dropped_note = f" ({dropped} by dropping {len(weeks)} weekly partition(s))" if weeks else ""
        if dry_run:
            count = frames.count()
            self.stdout.write(
                f"Would delete {count} telemetry frame(s) recorded before "
                f"{cutoff:%Y-%m-%d %H:%M}Z{dropped_note}."
            )
            return
        deleted = dropped
        # The rest (the boundary week, DEFAULT, or one rover's frames): short
        # transactions of one batch each, so ingest is never blocked for long.
        # recorded_at in the delete lets PostgreSQL skip the later partitions.
        while True:
            with transaction.atomic():
                ids = list(frames.order_by("pk").values_list("pk", flat=True)[:batch_size])
                if not ids:
                    break
                deleted += TelemetryFrame.objects.filter(
                    pk__in=ids, recorded_at__lt=cutoff
                ).delete()[0]
        self.stdout.write(
            f"Deleted {deleted} telemetry frame(s) recorded before "
            f"{cutoff:%Y-%m-%d %H:%M}Z{dropped_note}."
        )
        if rollup_age is None:
            self.stdout.write("Rollups are kept (TELEMETRY_ROLLUP_RETENTION is empty).")
            return
        rollup_cutoff = floor_time(now - rollup_age, max(ROLLUP_RESOLUTIONS))
        pruned = telemetry_rollups_prune(before=rollup_cutoff, rover=rover_obj, batch=batch_size)
        self.stdout.write(
            f"Deleted {pruned} rollup bucket(s) starting before {rollup_cutoff:%Y-%m-%d %H:%M}Z."
        )
