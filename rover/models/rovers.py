from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Rover(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    # The room that hears this rover's alarms (the engineering team by default).
    alarm_team = models.ForeignKey(
        "comms.Team",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="alarm_rovers",
    )
    landing_date = models.DateTimeField(
        "landing (UTC)",
        null=True,
        blank=True,
        help_text="When the rover landed. Set, the dashboard shows the sol (landing = sol 0) "
        "beside UTC times.",
    )
    # One staleness limit per rover: the dashboard greys its values and says LINK LOST
    # after it, and the link-lost alarm is raised after it.
    stale_after_seconds = models.PositiveIntegerField(
        "stale after (s)",
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(86400)],
        help_text="Seconds without a frame after which the rover's link counts as lost: the "
        "dashboard says LINK LOST and the link-lost alarm is raised.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The ingest id of the newest stored frame: the next frames take the following ones,
    # under this row's lock, so ids are consecutive and commit order is id order.
    last_ingest_id = models.BigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
