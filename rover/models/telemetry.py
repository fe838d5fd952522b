from __future__ import annotations

from django.db import models

from .rovers import Rover


class RoverMode(models.TextChoices):
    IDLE = "idle", "Idle"
    DRIVING = "driving", "Driving"
    SCIENCE = "science", "Science"
    CHARGING = "charging", "Charging"
    COMMS = "comms", "Communications pass"
    SAFE_MODE = "safe_mode", "Safe mode"


class TelemetryFrame(models.Model):
    rover = models.ForeignKey(Rover, on_delete=models.CASCADE, related_name="frames")
    seq = models.BigIntegerField("frame", help_text="The rover's own frame counter.")
    # The server's order: consecutive per rover in commit order (see
    # rover.services.telemetry.telemetry_store); the SSE `id:` and the resume position.
    ingest_id = models.BigIntegerField(help_text="Server-assigned, per rover, in commit order.")
    recorded_at = models.DateTimeField("recorded (UTC)", help_text="Rover time.")
    received_at = models.DateTimeField(
        "received (UTC)", auto_now_add=True, help_text="Ground receive time."
    )
    x_m = models.FloatField("x, east (m)", null=True, blank=True)
    y_m = models.FloatField("y, north (m)", null=True, blank=True)
    heading_deg = models.FloatField("heading (°)", null=True, blank=True)
    battery_pct = models.FloatField("battery (%)")
    battery_v = models.FloatField("battery voltage (V)", null=True, blank=True)
    signal_dbm = models.FloatField("signal (dBm)")
    temp_internal_c = models.FloatField("internal temperature (°C)", null=True, blank=True)
    temp_ambient_c = models.FloatField("ambient temperature (°C)", null=True, blank=True)
    speed_mps = models.FloatField("speed (m/s)", null=True, blank=True)
    mode = models.CharField(max_length=20, choices=RoverMode.choices, default=RoverMode.IDLE)

    class Meta:
        ordering = ["rover", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["rover", "seq"], name="telemetry_unique_seq"),
            models.UniqueConstraint(
                fields=["rover", "ingest_id"], name="telemetry_unique_ingest_id"
            ),
        ]
        indexes = [models.Index(fields=["rover", "recorded_at"])]

    def __str__(self) -> str:
        return f"{self.rover} #{self.seq}"
