"""Read what a client resuming the live feed missed besides frames: alarm changes, images.

The feed's `Last-Event-ID` is a frame's ingest id: the one number a client
hands back. Alarms and images have no place in that order (their ids come from
their own sequences, in insert order, not commit order), so the resume finds
them by time instead: whatever the client missed was committed after it read
frame N, so after frame N was received. Its own timestamp (raised, cleared,
acknowledged, received) was taken in its transaction, before its commit and
possibly before frame N's; RESUME_OVERLAP covers such a transaction and clocks
that differ between servers. The overlap may repeat an alarm or image the
client already had: clients keep both by id (an alarm's state only advances).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q

from ..models import Alarm, Rover, RoverImage, TelemetryFrame
from .readable import readable

RESUME_OVERLAP = timedelta(seconds=60)
# The most alarms and the most images one resume sends (the most recent ones).
RESUME_NOTICES_MAX = 1000


def resume_since(*, rover: Rover, after_id: int) -> datetime | None:
    """Return when the frame a client resumes after was received, less RESUME_OVERLAP.

    None when no frame at or before `after_id` is stored (none yet, or pruned):
    the client then missed everything the rover has.
    """
    received = (
        TelemetryFrame.objects.filter(rover=rover, ingest_id__lte=after_id)
        .order_by("-ingest_id")
        .values_list("received_at", flat=True)
        .first()
    )
    return None if received is None else received - RESUME_OVERLAP


def changed_at(alarm: Alarm) -> datetime:
    """Return when an alarm last changed (raised, cleared or acknowledged)."""
    return max(t for t in (alarm.raised_at, alarm.cleared_at, alarm.acknowledged_at) if t)


def alarms_changed_since(*, rover: Rover, since: datetime | None) -> list[Alarm]:
    """Return the alarms raised, cleared or acknowledged since `since`, oldest change first."""
    alarms = Alarm.objects.filter(rover=rover).select_related("acknowledged_by")
    if since is not None:
        alarms = alarms.filter(
            Q(raised_at__gte=since) | Q(cleared_at__gte=since) | Q(acknowledged_at__gte=since)
        )
    # Few rows (one per raise): the newest raised first bounds them, then order by change.
    recent = list(alarms.order_by("-raised_at", "-id")[:RESUME_NOTICES_MAX])
    return sorted(recent, key=lambda alarm: (changed_at(alarm), alarm.pk))


def images_received_since(*, rover: Rover, since: datetime | None) -> list[RoverImage]:
    """Return the rover's images stored since `since` (whatever their capture time), in order.

    `received_at` has no index of its own, but ids follow it (both are taken at
    the insert): the newest id received a further RESUME_OVERLAP before `since`
    bounds the read to the primary key's recent end, instead of reading every
    image the rover ever sent (a sequential scan: 16 ms at 100,000 images).
    """
    images = readable(RoverImage.objects.filter(rover=rover), "captured_at").select_related("rover")
    if since is not None:
        older = RoverImage.objects.filter(received_at__lt=since - RESUME_OVERLAP).order_by("-pk")
        bound = older.values_list("pk", flat=True).first()
        if bound is not None:
            images = images.filter(pk__gt=bound)
        images = images.filter(received_at__gte=since)
    recent = list(images.order_by("-received_at", "-id")[:RESUME_NOTICES_MAX])
    return recent[::-1]
