from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from .rovers import Rover


class Camera(models.TextChoices):
    NAVCAM = "navcam", "Navigation camera"
    HAZCAM_FRONT = "hazcam_front", "Front hazard camera"
    HAZCAM_REAR = "hazcam_rear", "Rear hazard camera"
    MASTCAM = "mastcam", "Mast camera"
    CHEMCAM = "chemcam", "Chemistry camera"
    MAHLI = "mahli", "Hand lens imager"


class RoverImage(models.Model):
    rover = models.ForeignKey(Rover, on_delete=models.CASCADE, related_name="images")
    camera = models.CharField(max_length=20, choices=Camera.choices, default=Camera.NAVCAM)
    captured_at = models.DateTimeField(db_index=True)
    received_at = models.DateTimeField(auto_now_add=True)
    file = models.FileField(upload_to="rover-images/%Y/%m/%d/", max_length=255)
    original_name = models.CharField(max_length=255, blank=True)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    content_type = models.CharField(max_length=100)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    thumbnail = models.FileField(upload_to="rover-thumbnails/%Y/%m/%d/", blank=True)
    # Stored by the rover's idempotent uplink (multipart or tus), which keeps one row per
    # rover and bytes; the admin and seed_demo may store the same bytes again on purpose.
    # A database default too: a worker still on the old code inserts without it.
    uplinked = models.BooleanField(default=False, db_default=False, editable=False)

    class Meta:
        ordering = ["-captured_at", "-id"]
        indexes = [models.Index(fields=["rover", "-captured_at", "-id"])]
        constraints = [
            # What makes the uplink idempotent under concurrency: of two uplinks of the
            # same bytes racing past the look-up, the second insert fails (image_store_once).
            models.UniqueConstraint(
                fields=["rover", "sha256"],
                condition=models.Q(uplinked=True),
                name="roverimage_uplinked_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.rover} {self.camera} {self.captured_at:%Y-%m-%d %H:%M:%S}"


class ImageUpload(models.Model):
    """A resumable (tus) upload in progress; its bytes live in a temporary file."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    rover = models.ForeignKey(Rover, on_delete=models.CASCADE, related_name="uploads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    length = models.BigIntegerField()
    offset = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    image = models.ForeignKey(RoverImage, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"upload {self.id} ({self.offset}/{self.length})"
