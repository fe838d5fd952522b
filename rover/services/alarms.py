"""Alarms: raised and cleared from telemetry, announced on the live stream and in the team room.

Each alarm is stored first (at most one active alarm per rover and kind, a
database constraint), then published on `rover.<slug>` as an `alarm` event
(`rover/events.py`) and posted as a
`kind="alarm"` message into the rover's alarm team room. Whoever wins the
constraint (raise) or the conditional update (clear, acknowledge) announces
it, so several workers never announce one change twice.

Thresholds come from the rover's AlarmLimits (defaults when it has none).
Clearing needs the value back past the limit by a margin (hysteresis) so a
reading that hovers at the limit does not flap.

Link lost is time-driven: each worker process runs a small watchdog task
(started lazily by the first ingest or live-stream subscriber in that process)
that raises the alarm when the rover's last frame *received* (the highest ingest
id, whatever its seq or rover time) is older than its `stale_after_seconds` (the
limit the dashboard uses too); the next frame clears it. With several workers
every watchdog checks, and the one-active-per-kind constraint lets exactly one
of them store and announce the alarm.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections.abc import Iterable
from datetime import datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from comms.services import message_post_system
from streams.hub import publish_on_commit

from ..events import alarm_event, rover_stream
from ..models import Alarm, AlarmKind, AlarmLimits, Rover, RoverMode, TelemetryFrame

logger = logging.getLogger(__name__)

BATTERY_HYSTERESIS_PCT = 5.0
TEMP_HYSTERESIS_C = 2.0


def _announce(*, rover: Rover, alarm: Alarm, body: str, kind: str = "alarm") -> None:
    """Publish the alarm and post into the alarm team room once the transaction commits."""
    publish_on_commit(rover_stream(rover.slug), alarm_event(alarm, rover_slug=rover.slug))
    team = rover.alarm_team
    if team is not None:
        message_post_system(team=team, body=body, kind=kind)


def alarm_raise(
    *,
    rover: Rover,
    kind: str,
    message: str,
    value: float | None = None,
    seq: int | None = None,
) -> Alarm | None:
    """Store and announce an alarm; return None when one of that kind is already active."""
    try:
        with transaction.atomic():
            alarm = Alarm.objects.create(
                rover=rover, kind=kind, message=message[:300], value=value, seq=seq
            )
            label = AlarmKind(kind).label
            _announce(rover=rover, alarm=alarm, body=f"ALARM {rover.name}: {label}. {message}")
    except IntegrityError:
        return None
    return alarm


def alarm_clear(*, rover: Rover, alarm: Alarm, reason: str, at: datetime | None = None) -> bool:
    """Clear an active alarm and announce it; return False when it was already cleared."""
    now = at or timezone.now()
    with transaction.atomic():
        changed = Alarm.objects.filter(pk=alarm.pk, cleared_at__isnull=True).update(cleared_at=now)
        if not changed:
            return False
        alarm.cleared_at = now
        label = AlarmKind(alarm.kind).label
        _announce(rover=rover, alarm=alarm, body=f"CLEARED {rover.name}: {label}. {reason}")
    return True


def alarm_acknowledge(*, alarm: Alarm, user: AbstractBaseUser) -> tuple[Alarm, bool]:
    """Record who acknowledged an alarm and announce it; return it and whether it changed."""
    now = timezone.now()
    with transaction.atomic():
        changed = Alarm.objects.filter(pk=alarm.pk, acknowledged_at__isnull=True).update(
            acknowledged_by=user, acknowledged_at=now
        )
        alarm = Alarm.objects.select_related("rover__alarm_team", "acknowledged_by").get(
            pk=alarm.pk
        )
        if changed:
            label = AlarmKind(alarm.kind).label
            _announce(
                rover=alarm.rover,
                alarm=alarm,
                body=f"{user.get_username()} acknowledged {alarm.rover.name}: {label}.",
                kind="system",
            )
    return alarm, bool(changed)


def alarm_limits_for(*, rover: Rover) -> AlarmLimits:
    """Return the rover's limits, or unsaved defaults when none are configured."""
    limits = AlarmLimits.objects.filter(rover=rover).first()
    return limits if limits is not None else AlarmLimits(rover=rover)


def _verdicts(frame: TelemetryFrame, limits: AlarmLimits) -> Iterable[tuple[str, bool | None, str]]:
    """Yield (kind, True to raise / False to clear / None to keep, description)."""
    battery = frame.battery_pct
    if battery < limits.battery_low_pct:
        state = True
    elif battery >= limits.battery_low_pct + BATTERY_HYSTERESIS_PCT:
        state = False
    else:
        state = None
    yield (
        AlarmKind.BATTERY_LOW,
        state,
        f"Battery at {battery:.1f}% (limit {limits.battery_low_pct:g}%).",
    )
    temp = frame.temp_internal_c
    if temp is not None:
        high = limits.temp_internal_max_c
        state = True if temp > high else False if temp <= high - TEMP_HYSTERESIS_C else None
        yield AlarmKind.TEMP_HIGH, state, f"Internal temperature {temp:.1f} °C (max {high:g} °C)."
        low = limits.temp_internal_min_c
        state = True if temp < low else False if temp >= low + TEMP_HYSTERESIS_C else None
        yield AlarmKind.TEMP_LOW, state, f"Internal temperature {temp:.1f} °C (min {low:g} °C)."
    safe = frame.mode == RoverMode.SAFE_MODE
    yield AlarmKind.SAFE_MODE, safe, f"Mode is {RoverMode(frame.mode).label.lower()}."


def alarms_evaluate(
    *,
    rover: Rover,
    frames: list[TelemetryFrame],
    received: list[TelemetryFrame] | None = None,
) -> list[Alarm]:
    """Raise and clear the rover's alarms for new frames (oldest first); return what changed.

    `received` is every frame the ingest stored, late ones too (default: `frames`):
    any of them ends "link lost", which is about arrivals, as the watchdog times it.
    """
    rover = Rover.objects.select_related("alarm_team").get(pk=rover.pk)
    limits = alarm_limits_for(rover=rover)
    active = {a.kind: a for a in Alarm.objects.filter(rover=rover, cleared_at__isnull=True)}
    changed: list[Alarm] = []
    link = active.pop(AlarmKind.LINK_LOST, None)
    heard = frames if received is None else received
    reason = f"Frame {heard[0].seq} received." if heard else ""
    if link is not None and heard and alarm_clear(rover=rover, alarm=link, reason=reason):
        changed.append(link)
    for frame in frames:
        for kind, state, description in _verdicts(frame, limits):
            current = active.get(kind)
            if state and current is None:
                alarm = alarm_raise(
                    rover=rover,
                    kind=kind,
                    message=f"{description} Frame {frame.seq}.",
                    value=_value_of(kind, frame),
                    seq=frame.seq,
                )
                if alarm is not None:
                    active[kind] = alarm
                    changed.append(alarm)
            elif state is False and current is not None:
                if alarm_clear(rover=rover, alarm=current, reason=description):
                    changed.append(current)
                active.pop(kind)
    return changed


def _value_of(kind: str, frame: TelemetryFrame) -> float | None:
    if kind == AlarmKind.BATTERY_LOW:
        return frame.battery_pct
    if kind in (AlarmKind.TEMP_HIGH, AlarmKind.TEMP_LOW):
        return frame.temp_internal_c
    return None


def alarms_check_link_lost(*, now: datetime | None = None) -> list[Alarm]:
    """Raise 'link lost' for every rover whose last frame received is older than its limit."""
    now = now or timezone.now()
    raised: list[Alarm] = []
    for rover in Rover.objects.select_related("alarm_team"):
        limit = rover.stale_after_seconds
        if not limit:
            continue
        # The last frame heard is the last one stored: ingest ids follow commit order
        # (a unique index). The highest seq would not do: one bogus seq (2**63 - 1)
        # stays the highest for good, and silence would be timed from its arrival.
        newest = (
            TelemetryFrame.objects.filter(rover=rover)
            .order_by("-ingest_id")
            .values_list("seq", "received_at")
            .first()
        )
        if newest is None:
            continue
        seq, received_at = newest
        silent = (now - received_at).total_seconds()
        if silent < limit:
            continue
        if Alarm.objects.filter(
            rover=rover, kind=AlarmKind.LINK_LOST, cleared_at__isnull=True
        ).exists():
            continue
        alarm = alarm_raise(
            rover=rover,
            kind=AlarmKind.LINK_LOST,
            message=(f"No frame for {silent:.0f} s (limit {limit} s); last frame {seq}."),
            value=round(silent, 1),
            seq=seq,
        )
        if alarm is not None:
            raised.append(alarm)
    return raised


def _link_check_once() -> None:
    try:
        alarms_check_link_lost()
    finally:
        close_old_connections()


async def _link_watchdog(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sync_to_async(_link_check_once)()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("link-lost watchdog check failed; retrying")


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = (
    weakref.WeakKeyDictionary()
)


def link_watchdog_ensure() -> None:
    """Start this process's link-lost watchdog once (ALARM_WATCHDOG_SECONDS=0 disables it)."""
    interval = float(getattr(settings, "ALARM_WATCHDOG_SECONDS", 1.0))
    if interval <= 0:
        return
    loop = asyncio.get_running_loop()
    task = _watchdogs.get(loop)
    if task is not None and not task.done():
        return
    # A fresh context: the task must not inherit (and outlive) the request's
    # thread-sensitive executor; its database work runs on asgiref's shared thread.
    _watchdogs[loop] = loop.create_task(_link_watchdog(interval), context=contextvars.Context())
