"""Read rover images and uploads."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from accounts.services import JoinedRow, token_user, token_user_with
from mission_control.sql_rows import columns_of, first_row
from rover.models import ImageUpload, Rover, RoverImage

from .readable import READABLE_FROM, READABLE_UNTIL, readable, unreadable_warn

MAX_PAGE_SIZE = 100


def _readable_images() -> QuerySet[RoverImage]:
    """Return images whose captured_at Python can load (see `readable`)."""
    return readable(RoverImage.objects.select_related("rover"), "captured_at")


def _image_id_in_range(image_id: int) -> bool:
    # The ORM answers "no such row" for an id beyond the column's range; so do these.
    smallest, largest = connection.ops.integer_field_range(RoverImage._meta.pk.get_internal_type())
    return smallest <= image_id <= largest


def _readable_image_condition(alias: str, image_id: int) -> tuple[str, list]:
    """Return SQL (and its parameters) true of the readable image `image_id` under `alias`."""
    meta = RoverImage._meta
    quote = connection.ops.quote_name
    captured = quote(meta.get_field("captured_at").column)
    sql = (
        f"{alias}.{quote(meta.pk.column)} = %s"
        f" AND {alias}.{captured} >= %s AND {alias}.{captured} < %s"
    )
    adapt = connection.ops.adapt_datetimefield_value
    return sql, [image_id, adapt(READABLE_FROM), adapt(READABLE_UNTIL)]


def _rover_loaded(image: RoverImage | None) -> RoverImage | None:
    if image is not None and not image.original_name:
        # Its download name is "<rover slug>-<id>": load the rover here, in the
        # request's thread, since the async view that reads it must not query.
        image.rover  # noqa: B018
    return image


def image_get(*, image_id: int) -> RoverImage | None:
    """Return a readable image by id, or None; its rover is loaded on first use.

    Every download's access check runs this, so it is written as SQL: compiling
    the same lookup through the ORM took longer than the round trip to
    PostgreSQL (1.5-2.0 ms against 0.6 ms for this query). The readable
    window is the one `readable` applies, and `first_row` converts the values
    as the ORM does. The rover is only needed for an image without an original
    name (its download name), so it is no longer joined on every download.
    """
    if not _image_id_in_range(image_id):
        return None
    condition, params = _readable_image_condition("i", image_id)
    table = connection.ops.quote_name(RoverImage._meta.db_table)
    sql = f"SELECT {columns_of(RoverImage, 'i')} FROM {table} i WHERE {condition}"  # noqa: S608
    image, _ = first_row(RoverImage, sql, params)
    return _rover_loaded(image)


def image_get_for_token(*, image_id: int, raw_token: str) -> tuple[Any, RoverImage | None]:
    """Return (the token's user, `image_get`'s image) from one query; (None, None) for a bad token.

    A download whose token the view checks (`accounts.middleware.checks_token_itself`)
    makes one round trip to PostgreSQL instead of two: on an idle worker each
    was about 0.3-0.6 ms of an X-Accel download's answer (bench/download_latency.py).
    """
    if not _image_id_in_range(image_id):
        return token_user(raw_token), None
    condition, params = _readable_image_condition("i", image_id)
    table = connection.ops.quote_name(RoverImage._meta.db_table)
    joined = JoinedRow(RoverImage, "i", f"LEFT JOIN {table} i ON {condition}", params)
    user, image = token_user_with(raw_token, joined)
    return user, _rover_loaded(image)


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
