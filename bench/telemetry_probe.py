"""Where a frame's milliseconds go, inside the worker (bench/telemetry.py --probe only).

Installed by bench/telemetry_urls.py when MC_BENCH_PROBE=1: it wraps the steps
of an ingest and of the hub's dispatch and records `time.perf_counter()` at
each. perf_counter is CLOCK_MONOTONIC on Linux, one clock for every process
of the machine, so bench/telemetry.py lines these stamps up with the
ingester's POST start and each subscriber's receipt. Never imported by the
product; the wrappers cost a few microseconds per ingest and one per dispatch.

Stamps of one ingest, keyed by the ingest ids it stored:
  begin      uvicorn's parser saw the request line (`on_message_begin`)
  token      the bearer token's user read (in the request's first thread)
  view       the view function entered (Django's handler and middleware done)
  thread     the request's thread runs the checks and store (`sync_to_async` hop)
  perm       the ingest permission checked
  rover      the rover read
  valid      the frames validated
  store      `telemetry_store` entered
  ids        ingest ids taken (the rover's row locked)
  known      stored seqs read
  rollups    the rollup upsert starts (frames inserted)
  rolled     the rollup upsert returned
  committed  `telemetry_store` returned (the transaction committed)
  published  `publish_stored` started (back on the event loop)
  answered   Redis answered the publish
  dispatch   the hub's delivery to local subscribers starts (`Hub._deliver`)
  written    that delivery returned (every idle stream written or queued)
  alarms     alarms evaluated
  response   the view returned its response
"""

from __future__ import annotations

import contextvars
import functools
import time
from typing import Any

_record: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "mc_probe_record", default=None
)
# ingest id -> the stamps of the ingest that stored it
RECORDS: dict[int, dict[str, Any]] = {}
_installed = False
# The token is read in the request's thread before the view sets the record up;
# asgiref carries context variables from that thread to the view's coroutine.
_token: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "mc_probe_token", default=None
)


def _stamp(name: str) -> None:
    record = _record.get()
    if record is not None and name not in record:
        record[name] = time.perf_counter()


def install() -> None:
    """Wrap the steps (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    from uvicorn.protocols.http import httptools_impl

    from accounts import middleware
    from rover.services import telemetry as services
    from rover.views import telemetry as views
    from streams.hub import Hub

    begin = httptools_impl.HttpToolsProtocol.on_message_begin

    def on_message_begin(self) -> None:
        at = time.perf_counter()
        begin(self)
        self.scope["mc_probe_begin"] = at

    httptools_impl.HttpToolsProtocol.on_message_begin = on_message_begin

    def stamped(module, name: str, stamp: str) -> None:
        original = getattr(module, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            _stamp(stamp)
            return result

        setattr(module, name, wrapper)

    token_user = middleware.token_user

    @functools.wraps(token_user)
    def token_user_stamped(raw):
        user = token_user(raw)
        _token.set(time.perf_counter())
        return user

    middleware.token_user = token_user_stamped
    stamped(views, "user_has_perm", "perm")
    stamped(views, "rover_get", "rover")
    stamped(services, "telemetry_validate", "valid")
    stamped(services, "_ingest_ids_take", "ids")
    stamped(services, "_seqs_known", "known")

    view = views.telemetry_ingest_view

    @functools.wraps(view)
    async def ingest_view(request, slug):
        record = {
            "begin": request.scope.get("mc_probe_begin"),
            "token": _token.get(),
            "view": time.perf_counter(),
        }
        _record.set(record)
        response = await view(request, slug)
        record["response"] = time.perf_counter()
        return response

    views.telemetry_ingest_view = ingest_view

    checked = views._ingest_checked_and_stored

    @functools.wraps(checked)
    def checked_and_stored(*args, **kwargs):
        _stamp("thread")
        return checked(*args, **kwargs)

    views._ingest_checked_and_stored = checked_and_stored

    store = services.telemetry_store

    @functools.wraps(store)
    def telemetry_store(**kwargs):
        _stamp("store")
        result, previous = store(**kwargs)
        _stamp("committed")
        record = _record.get()
        if record is not None:
            for frame in result.stored:
                RECORDS[frame.ingest_id] = record
        return result, previous

    services.telemetry_store = telemetry_store

    rollups = services.telemetry_rollups_add

    @functools.wraps(rollups)
    def rollups_add(**kwargs):
        _stamp("rollups")
        rollups(**kwargs)
        _stamp("rolled")

    services.telemetry_rollups_add = rollups_add

    publish = services.publish_stored

    @functools.wraps(publish)
    async def publish_stored(stream, events):
        _stamp("published")
        await publish(stream, events)
        _stamp("answered")

    services.publish_stored = publish_stored

    alarms = services.alarms_evaluate

    @functools.wraps(alarms)
    def alarms_evaluate(**kwargs):
        alarms(**kwargs)
        _stamp("alarms")

    services.alarms_evaluate = alarms_evaluate

    def stamp_writes(events, started: float, ended: float) -> None:
        for event in events:
            record = RECORDS.get(event.get("id")) if event.get("event") == "telemetry" else None
            if record is not None:
                record.setdefault("dispatch", started)
                record.setdefault("written", ended)

    if hasattr(Hub, "_deliver"):
        deliver = Hub._deliver

        def hub_deliver(self, stream, events):
            started = time.perf_counter()
            deliver(self, stream, events)
            stamp_writes(events, started, time.perf_counter())

        Hub._deliver = hub_deliver
    else:  # a checkout where only the reader's dispatch writes the streams
        dispatch = Hub._dispatch

        def hub_dispatch(self, message):
            started = time.perf_counter()
            dispatch(self, message)
            stamp_writes(message.get("events", ()), started, time.perf_counter())

        Hub._dispatch = hub_dispatch


def records() -> dict[int, dict[str, Any]]:
    """Return the stamps by ingest id, each ingest's first id only once per record."""
    return dict(RECORDS)
