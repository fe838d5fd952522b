"""Telemetry rollups: per-rover time buckets of frames, so history reads buckets, not frames."""

from __future__ import annotations

from django.db import models

from .rovers import Rover
from .telemetry import RoverMode, TelemetryFrame

# Every measured (float) field of a frame, in the frame's field order: each has a
# min, a max, a sum and a count of non-null values in a rollup bucket.
ROLLUP_FIELDS: tuple[str, ...] = tuple(
    field.name
    for field in TelemetryFrame._meta.concrete_fields
    if isinstance(field, models.FloatField)
)


class TelemetryRollup(models.Model):
    """The frames of one rover recorded in [bucket_start, bucket_start + resolution_s).

    Sums and counts (not averages) are stored so that buckets combine exactly:
    a late frame adds to its bucket, and a coarser answer adds buckets up.
    min and max keep a single spike frame visible at any zoom.
    """

    rover = models.ForeignKey(Rover, on_delete=models.CASCADE, related_name="rollups")
    resolution_s = models.PositiveIntegerField(help_text="Bucket width in seconds.")
    bucket_start = models.DateTimeField(help_text="Rover time, a multiple of the resolution.")
    frame_count = models.BigIntegerField()
    # Sum of (recorded_at - bucket_start) in seconds: the mean frame time of a bucket.
    offset_sum_s = models.FloatField()
    seq_max = models.BigIntegerField(help_text="The highest seq in the bucket.")
    received_max = models.DateTimeField(help_text="The latest ground receive time.")
    mode = models.CharField(
        max_length=20, choices=RoverMode.choices, help_text="Mode of the highest-seq frame."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rover", "resolution_s", "bucket_start"], name="telemetry_rollup_bucket"
            )
        ]
        indexes = [models.Index(fields=["bucket_start"], name="telemetry_rollup_start")]

    def __str__(self) -> str:
        return f"{self.rover_id} {self.resolution_s}s @ {self.bucket_start:%Y-%m-%d %H:%M:%S}"


for _name in ROLLUP_FIELDS:
    TelemetryRollup.add_to_class(f"{_name}_count", models.IntegerField(default=0))
    TelemetryRollup.add_to_class(f"{_name}_sum", models.FloatField(default=0.0))
    TelemetryRollup.add_to_class(f"{_name}_min", models.FloatField(null=True))
    TelemetryRollup.add_to_class(f"{_name}_max", models.FloatField(null=True))
