"""Give every telemetry frame a server-assigned ingest id, and each rover its counter.

Existing frames get ingest_id = seq, so a Last-Event-ID a client holds from
before the upgrade (the SSE `id:` was the seq) names exactly the same position
afterwards; each rover's counter starts at its highest seq, and new frames
continue from there. Seqs are unique per rover (a constraint), so these ids are
unique too; they may have gaps, which replay by `ingest_id >` handles.

A rover whose highest seq leaves no room for further ids (above 2**62) is
renumbered 1..n in (seq, id) order instead; its clients' old Last-Event-IDs
are then above its counter, and the live feed starts them afresh (README,
upgrade notes).
"""

from __future__ import annotations

from django.db import migrations, models
from django.db.models import F, Max

# Beyond this, ingest_id = seq would leave too few ids before the BigInteger limit.
RENUMBER_ABOVE = 2**62
BATCH = 5000


def assign_ingest_ids(apps, schema_editor) -> None:
    Rover = apps.get_model("rover", "Rover")
    Frame = apps.get_model("rover", "TelemetryFrame")
    Frame.objects.update(ingest_id=F("seq"))
    for row in Frame.objects.values("rover").annotate(top=Max("seq")).order_by("rover"):
        top = row["top"]
        if top > RENUMBER_ABOVE:
            top = _renumber(Frame, rover_id=row["rover"])
        Rover.objects.filter(pk=row["rover"]).update(last_ingest_id=top)
    if schema_editor.connection.vendor == "postgresql":
        # The updates queue PostgreSQL's deferred foreign-key checks, and the
        # ALTER TABLE below refuses to run while any are pending: run them now.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _renumber(Frame, *, rover_id: int) -> int:
    """Number a rover's frames 1..n in (seq, id) order; return n."""
    frames = Frame.objects.filter(rover_id=rover_id).order_by("seq", "id").only("pk")
    batch, next_id = [], 0
    for frame in frames.iterator(chunk_size=BATCH):
        next_id += 1
        frame.ingest_id = next_id
        batch.append(frame)
        if len(batch) == BATCH:
            Frame.objects.bulk_update(batch, ["ingest_id"])
            batch = []
    Frame.objects.bulk_update(batch, ["ingest_id"])
    return next_id


class Migration(migrations.Migration):
    dependencies = [
        ("rover", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="rover",
            name="last_ingest_id",
            field=models.BigIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="telemetryframe",
            name="ingest_id",
            field=models.BigIntegerField(null=True),
        ),
        migrations.RunPython(assign_ingest_ids, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="telemetryframe",
            name="ingest_id",
            field=models.BigIntegerField(
                help_text="Server-assigned, per rover, in commit order."
            ),
        ),
        migrations.AddConstraint(
            model_name="telemetryframe",
            constraint=models.UniqueConstraint(
                fields=("rover", "ingest_id"), name="telemetry_unique_ingest_id"
            ),
        ),
    ]
