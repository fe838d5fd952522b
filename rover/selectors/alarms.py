"""Read alarms."""

from __future__ import annotations

from rover.models import Alarm, Rover


def alarm_get(*, alarm_id: int) -> Alarm | None:
    """Return the alarm with this id, or None."""
    return Alarm.objects.filter(pk=alarm_id).first()


def alarm_list(*, rover: Rover, active_only: bool, limit: int) -> list[Alarm]:
    """Return up to `limit` of the rover's alarms in the model's order (newest first).

    `active_only` keeps the alarms not yet cleared. Who acknowledged each one
    is fetched in the same query, since every item shows it.
    """
    alarms = Alarm.objects.filter(rover=rover).select_related("acknowledged_by")
    if active_only:
        alarms = alarms.filter(cleared_at__isnull=True)
    return list(alarms[:limit])
