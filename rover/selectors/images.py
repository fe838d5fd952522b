"""Read rover images and uploads."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from rover.models import ImageUpload, Rover, RoverImage

from .readable import readable, unreadable_warn

MAX_PAGE_SIZE = 100


def _readable_images() -> QuerySet[RoverImage]:
    """Return images whose captured_at Python can load (see `readable`)."""
    return readable(RoverImage.objects.select_related("rover"), "captured_at")


def image_get(*, image_id: int) -> RoverImage | None:
    """Return an image by id (with its rover), or None."""
    return _readable_images().filter(pk=image_id).first()


def image_latest(*, rover_slug: str) -> RoverImage | None:
    """Return the newest image (by capture time) of a rover, or None."""
    return _readable_images().filter(rover__slug=rover_slug).order_by("-captured_at", "-id").first()


def image_list(*, rover: Rover, camera: str | None = None) -> QuerySet[RoverImage]:
    """Return a rover's images (of one camera, if given), newest capture first."""
    unreadable_warn(RoverImage, "captured_at", rover_id=rover.pk)
    images = _readable_images().filter(rover=rover)
    if camera is not None:
        images = images.filter(camera=camera)
    return images.order_by("-captured_at", "-id")


def image_page(
    *, rover: Rover, page: int, limit: int, camera: str | None = None
) -> tuple[list[RoverImage], int]:
    """Return one page of a rover's images (1-based) and the total count."""
    images = image_list(rover=rover, camera=camera)
    start = (page - 1) * limit
    return list(images[start : start + limit]), images.count()


def upload_get(*, upload_id: str, rover: Rover, user) -> ImageUpload | None:
    """Return the user's unfinished upload to this rover, or None (also for a bad id)."""
    try:
        key = uuid.UUID(str(upload_id))
    except ValueError:
        return None
    return ImageUpload.objects.filter(pk=key, rover=rover, user=user).first()
