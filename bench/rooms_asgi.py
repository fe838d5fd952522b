"""The product's ASGI application plus the naive tutorial consumer, for bench/rooms.py only.

`/ws/naive/<team>/` is the Channels tutorial's chat consumer (every socket a member
of the team's channel-layer group, one `group_send` per message, the default
dispatch to a `chat_message` handler), storing each message exactly as the product
does so that only the fan-out differs. It is never mounted in the product.
"""

# Django must be set up (mission_control.asgi) before the app modules import models.
# ruff: noqa: I001
from __future__ import annotations

import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mission_control.settings.production")

from mission_control.asgi import django_asgi_app  # sets Django up first

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import re_path

import comms.routing
from accounts.websocket import QueryTokenAuthMiddleware
from comms.selectors import team_get
from comms.events import message_json
from comms.services import message_store


class NaiveRoomConsumer(AsyncWebsocketConsumer):
    """The tutorial pattern: one channel-layer group member per socket."""

    async def connect(self) -> None:
        user = self.scope["user"]
        self.team = await database_sync_to_async(team_get)(
            slug=self.scope["url_route"]["kwargs"]["team"]
        )
        if not user.is_authenticated or self.team is None:
            await self.close()
            return
        self.group = f"naive.{self.team.slug}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        data = json.loads(text_data)
        message, _ = await database_sync_to_async(message_store)(
            team=self.team,
            author=self.scope["user"],
            body=data["body"],
            client_id=data.get("client_id"),
        )
        text = json.dumps(message_json(message, team_slug=self.team.slug), separators=(",", ":"))
        await self.channel_layer.group_send(self.group, {"type": "chat.message", "text": text})

    async def chat_message(self, event: dict) -> None:
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                QueryTokenAuthMiddleware(
                    URLRouter(
                        [
                            re_path(r"^ws/naive/(?P<team>[-\w]+)/?$", NaiveRoomConsumer.as_asgi()),
                            *comms.routing.websocket_urlpatterns,
                        ]
                    )
                )
            )
        ),
    }
)
