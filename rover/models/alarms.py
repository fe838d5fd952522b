from __future__ import annotations

from django.conf import settings
from django.db import models

from .rovers import Rover


class AlarmLimits(models.Model):
    """Per-rover alarm thresholds, edited in the admin."""

    rover = models.OneToOneField(Rover, on_delete=models.CASCADE, related_name="alarm_limits")
    battery_low_pct = models.FloatField("battery low below (%)", default=20.0)
    temp_internal_min_c = models.FloatField("internal temperature min (°C)", default=-40.0)
    temp_internal_max_c = models.FloatField("internal temperature max (°C)", default=50.0)

    class Meta:
        verbose_name = "alarm limits"
        verbose_name_plural = "alarm limits"

    def __str__(self) -> str:
        return f"Alarm limits for {self.rover}"


class AlarmKind(models.TextChoices):
    BATTERY_LOW = "battery_low", "Battery low"
    TEMP_HIGH = "temp_high", "Temperature high"
    TEMP_LOW = "temp_low", "Temperature low"
    LINK_LOST = "link_lost", "Link lost"
    SAFE_MODE = "safe_mode", "Safe mode"


class Alarm(models.Model):
    rover = models.ForeignKey(Rover, on_delete=models.CASCADE, related_name="alarms")
    kind = models.CharField(max_length=20, choices=AlarmKind.choices)
    message = models.CharField(max_length=300)
    value = models.FloatField(null=True, blank=True)
    seq = models.BigIntegerField(null=True, blank=True, help_text="Frame that raised it.")
    raised_at = models.DateTimeField("raised (UTC)", auto_now_add=True)
    cleared_at = models.DateTimeField("cleared (UTC)", null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    acknowledged_at = models.DateTimeField("acknowledged (UTC)", null=True, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            # At most one active alarm of a kind per rover.
            models.UniqueConstraint(
                fields=["rover", "kind"],
                condition=models.Q(cleared_at__isnull=True),
                name="alarm_one_active_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.rover}: {self.get_kind_display()}"

    @property
    def is_active(self) -> bool:
        return self.cleared_at is None
