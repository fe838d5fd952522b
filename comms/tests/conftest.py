from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from accounts.tests.factories import UserFactory
from comms.models import Membership
from comms.tests.factories import MembershipFactory, TeamFactory
from streams.hub import subscribe


@pytest.fixture
def room(transactional_db):
    """A team 'ops' with members alice (lead) and bob, and an outsider carol."""
    team = TeamFactory(slug="ops", name="Ops")
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    MembershipFactory(team=team, user=alice, role=Membership.Role.LEAD)
    MembershipFactory(team=team, user=bob)
    carol = UserFactory(username="carol")
    return type("Room", (), {"team": team, "alice": alice, "bob": bob, "carol": carol})


@pytest.fixture
def ws_app():
    from comms.routing import websocket_urlpatterns

    return URLRouter(websocket_urlpatterns)


@pytest.fixture
async def join(ws_app):
    """Connect a user to a room; return the communicator, its history and presence frames.

    Each join waits until its "joined" event went through the room's stream (a probe
    subscribes to it too): over Redis pub/sub, publishing returns before delivery, and
    a late "joined" would otherwise reach sockets that connected after it.
    """
    opened: list[WebsocketCommunicator] = []
    probes: dict[str, object] = {}
    async with contextlib.AsyncExitStack() as stack:

        async def connect(user, slug: str = "ops", path: str | None = None):
            if slug not in probes:
                probes[slug] = await stack.enter_async_context(subscribe(f"room.{slug}"))
            communicator = WebsocketCommunicator(ws_app, path or f"/ws/comms/{slug}/")
            communicator.scope["user"] = user
            opened.append(communicator)
            connected, _ = await communicator.connect()
            assert connected
            history = await communicator.receive_json_from()
            presence = await communicator.receive_json_from()
            assert history["type"] == "history"
            assert presence["type"] == "presence"
            while True:
                event = await asyncio.wait_for(probes[slug].get(), 5)
                data = json.loads(event.get("data") or "{}")
                if data.get("joined", {}).get("id") == user.pk:
                    break
            return communicator, history, presence

        yield connect


@pytest.fixture(autouse=True)
def _forget_presence_of_earlier_tests(settings):
    """Clear this run's room keys in Redis: a closed test's sockets would linger until the TTL."""
    import redis

    client = redis.Redis.from_url(settings.TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        names = list(client.scan_iter(f"{settings.CHANNEL_LAYER_PREFIX}:rooms:*"))
        if names:
            client.delete(*names)
    except redis.ConnectionError:
        pass  # Redis is down: the tests that need it skip (or fail on CI) on their own.
    finally:
        client.close()
