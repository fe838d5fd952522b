"""One uplinked image per rover and bytes: the uplink's idempotency, kept by the database.

Rows already stored are all marked not uplinked (nobody can tell now which came from
the rover), so existing duplicates stay as they are and the constraint holds at once;
the uplink's look-up still finds them and answers with the oldest (image_store_once).
Adding a boolean with a constant default rewrites no table on PostgreSQL 11+; the
default stays in the database, so workers still on the old code (a rolling upgrade) and
raw inserts without the column keep working.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rover", "0005_partition_telemetry_frames"),
    ]

    operations = [
        migrations.AddField(
            model_name="roverimage",
            name="uplinked",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AddConstraint(
            model_name="roverimage",
            constraint=models.UniqueConstraint(
                condition=models.Q(("uplinked", True)),
                fields=("rover", "sha256"),
                name="roverimage_uplinked_once",
            ),
        ),
    ]
