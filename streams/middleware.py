"""Bound how long an HTTP request waits for the publishes announcing what it stored.

Every write stores first, then publishes (`streams.hub`); the request waits for
its publishes so that, while Redis answers, live clients have the event by the
time the writer has its answer. A Redis that hangs (connections open, nothing
answered) must not hold the answer: within a request served on an event loop
(ASGI), its publishes wait `PUBLISH_WAIT_SECONDS` in all at most, then go on in
the background (`publish_wait_bounded`). One place for every write behind HTTP:
an ingest, an alarm acknowledged (API or admin), an image uploaded (multipart or
tus), a room message posted from the admin.

A request without an event loop behind it (Django's test `Client`) keeps the
unbounded wait: the loop `async_to_sync` makes for one publish ends with it,
and would cancel a publish left running in the background.
"""

from __future__ import annotations

from collections.abc import Callable

from asgiref.sync import iscoroutinefunction
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase

from .hub import publish_wait_bounded


def publish_wait_middleware(get_response: Callable) -> Callable:
    """Run each ASGI request's view inside `publish_wait_bounded` (module docstring)."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            if not isinstance(request, ASGIRequest):
                return await get_response(request)
            with publish_wait_bounded():
                return await get_response(request)

        return middleware

    def middleware(request: HttpRequest) -> HttpResponseBase:
        if not isinstance(request, ASGIRequest):
            return get_response(request)
        with publish_wait_bounded():
            return get_response(request)

    return middleware


publish_wait_middleware.sync_capable = True
publish_wait_middleware.async_capable = True
