"""Build a database as it was before ingest ids (rover 0001), then migrate it forward."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from rover.tests.factories import BASE_TIME

BEFORE = [("rover", "0001_initial")]


def migrate_from_seq_ids(frames: dict[str, list[int]]) -> None:
    """Roll rover back to 0001, store rovers with these seqs (inserted in the order
    given), then apply every migration again, as an upgrade would."""
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    old_rover = apps.get_model("rover", "Rover")
    old_frame = apps.get_model("rover", "TelemetryFrame")
    for slug, seqs in frames.items():
        rover = old_rover.objects.get_or_create(slug=slug, defaults={"name": slug.title()})[0]
        old_frame.objects.bulk_create(
            old_frame(
                rover=rover,
                seq=seq,
                recorded_at=BASE_TIME + timedelta(seconds=index),
                battery_pct=80.0,
                signal_dbm=-90.0,
            )
            for index, seq in enumerate(seqs)
        )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
