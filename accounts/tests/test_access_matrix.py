"""Every HTTP route and socket route, for every kind of caller, against one table.

The routes are read from the URLconf and from the ASGI application's WebSocket
router: a route without a row in `access_table.py` fails `test_every_route_has_a_row`, so a new
endpoint cannot ship without its access rules being written down and checked.

Callers: anonymous, a plain user, a team member, staff holding every view
permission but in no team, a superuser (all by session, with a CSRF token like
the dashboard's), a valid superuser token, a bad token and a revoked token (by
`Authorization: Bearer`, or `?token=` on sockets, never with a CSRF token). An
anonymous API call sends no CSRF token either, as curl does.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLResolver, get_resolver

from .access_table import (
    HTTP_ROUTES,
    IDENTITIES,
    ROVER,
    SESSION,
    SOCKET_ROUTES,
    TEAM,
    TOKENS,
    VIEW_PERMS,
    Case,
    expected_status,
    png,
)

CSRF_SECRET = "a" * 32  # the CSRF cookie's secret; the header may carry it unmasked

# --- the callers --------------------------------------------------------------------------


@dataclass
class World:
    users: dict[str, Any]
    tokens: dict[str, str]
    ids: dict[str, int]


def _make_world(user_factory, token_for) -> World:
    from accounts.models import ApiToken
    from accounts.services import token_revoke
    from comms.models import Membership, Team
    from rover.models import Alarm, Rover
    from rover.services.images import image_store

    team = Team.objects.create(slug=TEAM, name="Ops")
    rover = Rover.objects.create(slug=ROVER, name="Curiosity")
    users = {
        "user": user_factory("plain"),
        "member": user_factory("member"),
        "staff_viewer": user_factory("viewer", perms=VIEW_PERMS, is_staff=True),
        "superuser": user_factory("root", is_staff=True, is_superuser=True),
    }
    Membership.objects.create(team=team, user=users["member"])
    revoked_owner = user_factory("revoked", is_staff=True, is_superuser=True)
    revoked = token_for(revoked_owner)
    token_revoke(token=ApiToken.objects.get(user=revoked_owner))
    tokens = {
        "superuser_token": token_for(users["superuser"]),
        "bad_token": "mc_" + "x" * 43,
        "revoked_token": revoked,
    }
    image = image_store(rover=rover, fileobj=io.BytesIO(png()), original_name="a.png")
    alarm = Alarm.objects.create(rover=rover, kind="battery_low", message="Battery low")
    return World(users=users, tokens=tokens, ids={"image": image.pk, "alarm": alarm.pk})


def _client(world: World, identity: str, *, api: bool) -> tuple[Client, dict[str, str]]:
    client = Client(enforce_csrf_checks=True)
    headers: dict[str, str] = {}
    if identity in TOKENS:
        headers["Authorization"] = f"Bearer {world.tokens[identity]}"
        return client, headers
    if identity in SESSION:
        client.force_login(world.users[identity])
    if identity in SESSION or not api:
        # A browser holds the CSRF cookie from the page; curl (anonymous API) does not.
        client.cookies[settings.CSRF_COOKIE_NAME] = CSRF_SECRET
        headers["X-CSRFToken"] = CSRF_SECRET
    return client, headers


def _call(world: World, case: Case, identity: str):
    client, headers = _client(world, identity, api=case.access.startswith("api"))
    path = case.path.format(**world.ids)
    kwargs: dict[str, Any] = {"headers": {**headers, **case.headers}}
    if case.data is not None:
        kwargs["data"] = case.data(identity)
    if case.content_type is not None:
        kwargs["content_type"] = case.content_type
    response = getattr(client, case.method.lower())(path, **kwargs)
    return response


def _http_cases() -> list:
    return [
        pytest.param(case, id=f"{case.method} {route or '/'}")
        for route, cases in HTTP_ROUTES.items()
        for case in cases
    ]


# --- the tests ----------------------------------------------------------------------------


def _http_route_patterns() -> set[str]:
    def walk(patterns, prefix: str = "") -> Iterator[str]:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                if route == "admin/":
                    yield route  # the admin's generated routes are one row (see the table)
                else:
                    yield from walk(pattern.url_patterns, route)
            else:
                yield route

    return set(walk(get_resolver().url_patterns))


def _socket_route_patterns() -> set[str]:
    from mission_control.asgi import application

    app = application.application_mapping["websocket"]
    while not isinstance(app, URLRouter):
        app = getattr(app, "application", None) or app.inner

    def walk(router: URLRouter, prefix: str = "") -> Iterator[str]:
        for route in router.routes:
            inner = getattr(route.callback, "__wrapped__", route.callback)
            if isinstance(inner, URLRouter):
                yield from walk(inner, prefix + str(route.pattern))
            else:
                yield prefix + str(route.pattern)

    return set(walk(app))


def test_every_route_has_a_row():
    assert _http_route_patterns() == set(HTTP_ROUTES)
    assert _socket_route_patterns() == set(SOCKET_ROUTES)


@pytest.mark.django_db
@pytest.mark.parametrize("case", _http_cases())
def test_http_access(case, user_factory, token_for, settings):
    for name, value in case.settings.items():
        setattr(settings, name, value)
    world = _make_world(user_factory, token_for)
    expected, actual, problems = {}, {}, []
    for identity in IDENTITIES:
        response = _call(world, case, identity)
        expected[identity] = expected_status(case, identity)
        actual[identity] = response.status_code
        api = case.access.startswith("api")
        # Refusals on the API, and any refused token, are JSON: never an HTML page.
        refused = response.status_code in (401, 403) and (api or identity in TOKENS)
        if refused and response.get("Content-Type") != "application/json":
            problems.append(f"{identity}: {response.status_code} is not JSON")
        if response.status_code == 401 and "WWW-Authenticate" not in response:
            problems.append(f"{identity}: 401 without WWW-Authenticate")
    assert actual == expected
    assert problems == []
    made = set(
        get_user_model()
        .objects.filter(username__startswith="made-by-")
        .values_list("username", flat=True)
    )
    allowed_to_make = {f"made-by-{i}" for i in IDENTITIES if expected[i] == case.ok}
    assert made <= allowed_to_make


async def _socket_outcome(application, path: str, headers: list, client_id: str) -> Any:
    """Return the close code of a refused socket, or what answers a message it sends."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(5)
    assert connected  # refusals accept, then close with the reason
    try:
        first = await communicator.receive_output(5)
        if first["type"] == "websocket.close":
            return first["code"]
        await communicator.receive_json_from(5)  # presence
        await communicator.send_json_to(
            {"type": "message", "body": "hello", "client_id": client_id}
        )
        while True:
            answer = await communicator.receive_output(5)
            if answer["type"] == "websocket.close":
                return answer["code"]
            frame = json.loads(answer["text"])
            # Earlier callers' sockets leaving may still be announced (over Redis, late).
            if frame["type"] in ("message", "error"):
                return frame.get("code") or frame["type"]
    finally:
        # A receive that timed out has cancelled the application already.
        with contextlib.suppress(asyncio.CancelledError):
            await communicator.disconnect(timeout=5)


@pytest.mark.django_db(transaction=True)
async def test_socket_access(user_factory, token_for, close_thread_connections):
    """Members post; staff allowed to read any room read only; everyone else is refused."""
    from mission_control.asgi import application

    world = await sync_to_async(_make_world)(user_factory, token_for)
    for route, (path, expected) in SOCKET_ROUTES.items():
        actual = {}
        for identity in IDENTITIES:
            headers: list = []
            full = path
            if identity in TOKENS:
                full = f"{path}?token={world.tokens[identity]}"
            elif identity in SESSION:
                client = Client()
                await sync_to_async(client.force_login)(world.users[identity])
                session = client.cookies[settings.SESSION_COOKIE_NAME].value
                cookie = f"{settings.SESSION_COOKIE_NAME}={session}"
                headers = [(b"cookie", cookie.encode())]
            try:
                actual[identity] = await _socket_outcome(application, full, headers, identity)
            except TimeoutError:
                actual[identity] = "no answer"
        assert actual == expected, route
    from comms.models import Message

    authors = await sync_to_async(list)(Message.objects.values_list("author__username", flat=True))
    assert authors == ["member"]
