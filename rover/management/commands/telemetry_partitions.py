"""Create the weekly partitions of the telemetry frames (PostgreSQL) and list them."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from rover.services.partitions import (
    DEFAULT_PARTITION,
    is_partitioned,
    partition_horizon,
    partitions_ensure,
    partitions_list,
)


class Command(BaseCommand):
    help = (
        "Create the weekly telemetry partitions from --since (default: this week) through the "
        "weeks ingest keeps ahead, then list them. Ingest creates the weeks ahead by itself; "
        "run this before loading or restoring older frames, which would otherwise go to DEFAULT."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="first day to cover, YYYY-MM-DD (UTC)")

    def handle(self, *args, since: str | None, **options):
        if not is_partitioned():
            self.stdout.write("The frames table is not partitioned (SQLite keeps a plain table).")
            return
        start = None
        if since:
            try:
                start = datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=UTC)
            except ValueError as exc:
                raise CommandError("--since must look like 2026-11-23.") from exc
        created = partitions_ensure(since=start, until=partition_horizon(timezone.now()))
        self.stdout.write(f"Created {len(created)} partition(s).")
        with connection.cursor() as cursor:
            for partition in partitions_list():
                cursor.execute(f'SELECT count(*) FROM "{partition.name}"')  # noqa: S608
                self.stdout.write(
                    f"{partition.name}: {partition.start:%Y-%m-%d} to {partition.end:%Y-%m-%d}, "
                    f"{cursor.fetchone()[0]} frame(s)"
                )
            cursor.execute(f'SELECT count(*) FROM "{DEFAULT_PARTITION}"')  # noqa: S608
            self.stdout.write(f"{DEFAULT_PARTITION}: {cursor.fetchone()[0]} frame(s)")
