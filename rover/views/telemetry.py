"""Telemetry over HTTP: ingest, history (JSON, downsampled, CSV) and the live SSE feeds."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from accounts.decorators import api_login_required, permission_denied_response
from accounts.http import api_methods, json_error
from accounts.permissions import user_has_perm
from mission_control.parsing import (
    BadParameter,
    bad_parameter_response,
    parse_int,
    parse_timestamp,
    query_int,
)
from streams.encoding import utc_iso
from streams.sse import (
    LastEventIdInvalid,
    event_stream,
    last_event_id,
    release_request_thread,
    sse_response,
    stream_query,
)

from ..events import FRAME_FIELDS, alarm_event, frame_event, frame_json, image_event, rover_stream
from ..models import Rover
from ..selectors.history import telemetry_downsample
from ..selectors.resume import alarms_changed_since, changed_at, images_received_since, resume_since
from ..selectors.rovers import rover_get
from ..selectors.telemetry import (
    telemetry_after,
    telemetry_csv_page,
    telemetry_history,
    telemetry_latest,
)
from ..services.alarms import link_watchdog_ensure
from ..services.telemetry import (
    MAX_BODY_BYTES,
    Stored,
    TelemetryInvalid,
    telemetry_ingest_announce,
    telemetry_ingest_store,
)

REPLAY_PAGE = 500
CSV_PAGE = 2000
HISTORY_DEFAULT_LIMIT = 500
HISTORY_MAX_LIMIT = 10_000
POINTS_MAX = 5000
POINTS_DEFAULT_SPAN = timedelta(hours=1)


async def _rover(slug: str) -> Rover | None:
    return await sync_to_async(rover_get)(slug=slug)


def _no_rover(slug: str) -> JsonResponse:
    return json_error(404, "not_found", f"No rover '{slug}'.")


# --- ingest and history: one URL, two methods ------------------------------------------


async def telemetry_collection(request: HttpRequest, slug: str) -> HttpResponse:
    """POST: ingest frames (needs rover.add_telemetryframe). GET: history (needs a login)."""
    if request.method == "POST":
        return await telemetry_ingest_view(request, slug)
    if request.method in ("GET", "HEAD"):
        return await telemetry_history_view(request, slug)
    response = json_error(405, "method_not_allowed", "Use GET or POST.")
    response["Allow"] = "GET, HEAD, POST"
    return response


INGEST_PERMISSION = "rover.add_telemetryframe"


@api_login_required
async def telemetry_ingest_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Store a frame or a batch; answer {"stored": n, "duplicates": [seq, ...]}.

    Needs rover.add_telemetryframe. The permission, the rover, the body and the
    store are one visit to the request's thread: on a worker writing 1,000
    streams, each hand-over between the loop and the thread waited its turn
    (README, "p99 at 1,000 subscribers").
    """
    # The user api_login_required loaded (cached): a session user is not read again.
    user = await request.auser()
    stored = await sync_to_async(_ingest_checked_and_stored)(request, user, slug)
    if isinstance(stored, HttpResponse):
        return stored
    result = await telemetry_ingest_announce(stored)
    return JsonResponse(
        {"stored": len(result.stored), "duplicates": result.duplicates},
        status=201 if result.stored else 200,
    )


def _ingest_checked_and_stored(
    request: HttpRequest, user: AbstractBaseUser, slug: str
) -> HttpResponse | Stored:
    """Return the refusal of an ingest (403, 404, 413, 400), or store it and say what it stored."""
    if not user_has_perm(user, INGEST_PERMISSION):
        return permission_denied_response(INGEST_PERMISSION)
    rover = rover_get(slug=slug)
    if rover is None:
        return _no_rover(slug)
    too_big = json_error(
        413, "too_large", f"A telemetry request carries at most {MAX_BODY_BYTES} bytes."
    )
    try:
        declared = parse_int(
            request.META.get("CONTENT_LENGTH"), name="Content-Length", default=0, header=True
        )
    except BadParameter as exc:
        return bad_parameter_response(exc)
    if declared > MAX_BODY_BYTES:
        return too_big
    try:
        body = request.body
    except RequestDataTooBig:
        return too_big
    if len(body) > MAX_BODY_BYTES:
        return too_big
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return json_error(400, "bad_json", "The body is not valid JSON.")
    try:
        return telemetry_ingest_store(rover=rover, payload=payload)
    except TelemetryInvalid as exc:
        return json_error(400, "invalid_frames", exc.detail, frames=exc.frames)


@api_login_required
async def telemetry_history_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Return frames in seq order as JSON, downsampled (points=N), or streamed CSV."""
    rover = await _rover(slug)
    if rover is None:
        return _no_rover(slug)
    fmt = request.GET.get("format", "json")
    try:
        if fmt not in ("json", "csv"):
            raise BadParameter("format", "'format' must be 'json' or 'csv'.")
        since = parse_timestamp(request.GET.get("since"), name="since", query=True)
        until = parse_timestamp(request.GET.get("until"), name="until", query=True)
        if since is not None and until is not None and until <= since:
            raise BadParameter("until", "'until' must be after 'since'.")
        limit = query_int(
            request.GET,
            "limit",
            default=HISTORY_DEFAULT_LIMIT,
            minimum=1,
            maximum=HISTORY_MAX_LIMIT,
        )
        points = query_int(request.GET, "points", minimum=1, maximum=POINTS_MAX)
        if points is not None and fmt == "csv":
            raise BadParameter("points", "'points' applies to JSON only.")
    except BadParameter as exc:
        return bad_parameter_response(exc)
    if fmt == "csv":
        response = StreamingHttpResponse(
            _csv_stream(rover=rover, since=since, until=until), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="{rover.slug}-telemetry.csv"'
        return response
    body: dict = {"rover": rover.slug}
    if points is not None:
        until = until or datetime.now(UTC)
        since = since or until - POINTS_DEFAULT_SPAN
        downsampled = await sync_to_async(telemetry_downsample)(
            rover=rover, since=since, until=until, points=points
        )
        body.update(
            points=points,
            since=utc_iso(since),
            until=utc_iso(until),
            bucket_seconds=downsampled.bucket_s,
            resolution_seconds=downsampled.resolution_s,
            frames=downsampled.frames,
        )
    else:
        frames, truncated = await sync_to_async(telemetry_history)(
            rover=rover, since=since, until=until, limit=limit
        )
        body.update(truncated=truncated, frames=[frame_json(frame) for frame in frames])
    body["count"] = len(body["frames"])
    return JsonResponse(body)


def _csv_cell(value) -> object:
    if isinstance(value, datetime):
        return utc_iso(value)
    return "" if value is None else value


async def _csv_stream(
    *, rover: Rover, since: datetime | None, until: datetime | None
) -> AsyncIterator[str]:
    """Yield the CSV a page of frames at a time (keyset by seq), never the whole range."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FRAME_FIELDS)
    yield buffer.getvalue()
    after = -1
    while True:
        rows = await telemetry_csv_page(
            rover=rover, since=since, until=until, after_seq=after, limit=CSV_PAGE
        )
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            writer.writerow([_csv_cell(value) for value in row])
        yield buffer.getvalue()
        after = rows[-1][0]


# --- live feeds ----------------------------------------------------------------------


def _missed_notices(*, rover: Rover, after_id: int) -> list[dict]:
    """Return the alarm and image events a client resuming after `after_id` may have missed.

    Each alarm changed (raised, cleared, acknowledged) and each image stored since
    frame `after_id` was received, with some overlap (`rover.selectors.resume`), once,
    in the order they happened; an alarm in its current state.
    """
    since = resume_since(rover=rover, after_id=after_id)
    timed = [
        (changed_at(alarm), alarm_event(alarm, rover_slug=rover.slug))
        for alarm in alarms_changed_since(rover=rover, since=since)
    ]
    timed += [
        (image.received_at, image_event(image))
        for image in images_received_since(rover=rover, since=since)
    ]
    timed.sort(key=lambda pair: pair[0])
    return [event for _, event in timed]


async def _rover_feed(request: HttpRequest, rover: Rover) -> HttpResponse:
    """Return the SSE response of a rover's live stream, resuming after Last-Event-ID.

    Event ids are the frames' ingest ids (the server's order), not their seqs.
    A first connect (no Last-Event-ID) starts with the newest stored frame (the
    highest seq) sent with the id of the stream's position, the last ingest id,
    so a dashboard shows the rover's state at once and its EventSource holds an
    id to resume from; then it continues live with every frame stored after.
    """
    try:
        after = last_event_id(request)
    except LastEventIdInvalid as exc:
        return bad_parameter_response(exc)
    if after is not None and after > rover.last_ingest_id:
        # No client can hold an id above the counter (ids are published after commit):
        # this one comes from elsewhere (a restored database, a renumbered rover).
        # Resuming after it would skip every frame, so it starts afresh instead.
        after = None

    async def replay(after_id: int) -> list[dict]:
        frames = await stream_query(
            telemetry_after, rover=rover, after_id=after_id, limit=REPLAY_PAGE
        )
        return [frame_event(frame) for frame in frames]

    async def missed(after_id: int) -> list[dict]:
        return await stream_query(_missed_notices, rover=rover, after_id=after_id)

    async def initial() -> tuple[list[dict], int]:
        latest, position = await stream_query(telemetry_latest, rover=rover)
        if latest is None:
            return [], position
        return [{**frame_event(latest), "id": position}], position

    await release_request_thread()
    link_watchdog_ensure()
    return sse_response(
        request,
        event_stream(
            stream=rover_stream(rover.slug),
            resumable_event="telemetry",
            after=after,
            replay=replay,
            initial=initial,
            missed=missed,
        ),
    )


@api_methods("GET")
@api_login_required(public_setting="PUBLIC_FEEDS")
async def default_rover_telemetry_stream(request: HttpRequest) -> HttpResponse:
    """The seed's `/stream/rover-telemetry`: the default rover's live feed."""
    slug = settings.DEFAULT_ROVER_SLUG
    rover = await _rover(slug)
    if rover is None:
        return _no_rover(slug)
    return await _rover_feed(request, rover)


@api_methods("GET")
@api_login_required
async def rover_telemetry_stream(request: HttpRequest, slug: str) -> HttpResponse:
    """Any rover's live feed: `GET /rovers/<slug>/telemetry/stream`."""
    rover = await _rover(slug)
    if rover is None:
        return _no_rover(slug)
    return await _rover_feed(request, rover)
