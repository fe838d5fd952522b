"""Recompute the history rollups of one or every rover from the stored frames."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from rover.models import Rover
from rover.services.rollups import telemetry_rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the telemetry rollups from the stored frames (after a bulk load or a restore; "
        "ingest keeps them up to date by itself). Ingest may continue meanwhile."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rover", help="only this rover (slug)")

    def handle(self, *args, rover: str | None, **options):
        rovers = Rover.objects.order_by("pk")
        if rover:
            rovers = rovers.filter(slug=rover)
            if not rovers.exists():
                raise CommandError(f"No rover '{rover}'.")
        for each in rovers:
            started = time.monotonic()
            frames = telemetry_rollups_rebuild(rover=each)
            self.stdout.write(
                f"{each.slug}: rollups rebuilt from {frames} frame(s) "
                f"in {time.monotonic() - started:.1f} s."
            )
