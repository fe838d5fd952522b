"""On PostgreSQL, rebuild the telemetry frames table partitioned by week of `recorded_at`.

SQLite keeps the plain table: both functions return at once there, and the
model's state is the same on both (this migration changes no field).

The table is renamed aside, a partitioned table with the same columns (and its
own identity sequence, continued from the old one) takes its name, one partition
is created per week that holds rows and for the weeks ahead (see
rover.services.partitions), plus DEFAULT, the rows are copied, the old table
dropped, and its constraints and indexes created again under their own names,
so later migrations find them. A unique constraint or primary key of a
partitioned table must include the partition key, so `recorded_at` is appended
to the primary key (id), to (rover, seq) and to (rover, ingest_id): ids still
come from one sequence, and ingest refuses a duplicate seq under the rover's
row lock (rover.services.telemetry.telemetry_store), not by this constraint.

A BRIN index on `recorded_at` (a few pages per week) serves prune_telemetry's
statements on the week its cutoff falls in. Reversing rebuilds the plain table the same way, with the original constraints.
The table is locked for the copy: on a large table this is downtime (see README).
"""

from __future__ import annotations

from django.db import migrations
from django.utils import timezone

TABLE = "rover_telemetryframe"
KEY = "recorded_at"
# What prune_telemetry asks of the week its cutoff falls in (recorded_at below the
# cutoff, any rover): the btrees lead with rover or id (README, partitions bench).
BRIN = "rover_telemetryframe_recorded_brin"


def _definitions(cursor) -> tuple[list[tuple[str, str, list[str], str]], list[str]]:
    """Return the table's constraints (name, type, columns, definition) and other indexes."""
    cursor.execute(
        "SELECT c.conname, c.contype, "
        "ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), "
        "pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "WHERE c.conrelid = %s::regclass AND c.contype IN ('p', 'u', 'f', 'c') ORDER BY c.conname",
        [TABLE],
    )
    constraints = [(name, kind, list(cols), definition) for name, kind, cols, definition in cursor]
    cursor.execute(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1",
        [TABLE],
    )
    return constraints, [row[0] for row in cursor]


def _rebuild(schema_editor, *, partitioned: bool) -> None:
    from rover.services.partitions import (
        DEFAULT_PARTITION,
        WEEK,
        partition_horizon,
        partition_create,
        week_start,
    )

    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f'LOCK TABLE "{TABLE}" IN ACCESS EXCLUSIVE MODE')
        constraints, indexes = _definitions(cursor)
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        sequence = cursor.fetchone()[0]
        cursor.execute(f"SELECT last_value FROM {sequence}")  # noqa: S608 (from the catalog)
        last_id = cursor.fetchone()[0]
        old = f"{TABLE}_before_rebuild"
        cursor.execute(f'ALTER TABLE "{TABLE}" RENAME TO "{old}"')
        cursor.execute(f'ALTER SEQUENCE {sequence} RENAME TO "{old}_id_seq"')
        cursor.execute(
            f'CREATE TABLE "{TABLE}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING IDENTITY)'
            + (f" PARTITION BY RANGE ({KEY})" if partitioned else "")
        )
        if partitioned:
            cursor.execute(f'CREATE TABLE "{DEFAULT_PARTITION}" PARTITION OF "{TABLE}" DEFAULT')
            cursor.execute(f"SELECT DISTINCT date_trunc('week', {KEY}, 'UTC') FROM \"{old}\"")  # noqa: S608
            weeks = {week_start(row[0]) for row in cursor.fetchall()}
            now = timezone.now()
            start = week_start(now)
            while start <= partition_horizon(now):
                weeks.add(start)
                start += WEEK
            for start in sorted(weeks):
                partition_create(cursor, start)
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{old}"')  # noqa: S608
        cursor.execute(f'DROP TABLE "{old}"')
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, 'id'), "
            f'GREATEST(%s, (SELECT max(id) FROM "{TABLE}"), 1))',  # noqa: S608
            [TABLE, last_id],
        )
        for name, kind, columns, definition in constraints:
            if kind in ("p", "u"):
                columns = [c for c in columns if c != KEY] + ([KEY] if partitioned else [])
                quoted = ", ".join(f'"{c}"' for c in columns)
                definition = f"{'PRIMARY KEY' if kind == 'p' else 'UNIQUE'} ({quoted})"
            cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{name}" {definition}')
        for definition in indexes:
            cursor.execute(definition)


def partition_frames(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        _rebuild(schema_editor, partitioned=True)
        schema_editor.execute(f'CREATE INDEX "{BRIN}" ON "{TABLE}" USING brin ({KEY})')


def unpartition_frames(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{BRIN}"')
        _rebuild(schema_editor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [
        ("rover", "0004_telemetryrollup"),
    ]

    operations = [
        migrations.RunPython(partition_frames, unpartition_frames, elidable=False),
    ]
