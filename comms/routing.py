"""WebSocket routes of the team rooms: `/ws/comms/<team>/`, trailing slash optional.

Any other path is accepted and closed with 4404, as an unknown team is: channels'
URLRouter raises when nothing matches, which the server answered with an HTTP 500
(and a traceback in the log) for every stray upgrade.
"""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import re_path

from .consumers import TeamRoomConsumer
from .frames import CLOSE_UNKNOWN_TEAM


class NoRoomConsumer(AsyncWebsocketConsumer):
    """A WebSocket path that names no room: accepted, then closed with 4404 (see module)."""

    async def connect(self) -> None:
        # Accepted first: a close before accept reaches the client as HTTP 403, code 1006.
        await self.accept()
        await self.close(code=CLOSE_UNKNOWN_TEAM)


websocket_urlpatterns: list = [
    re_path(r"^ws/comms/(?P<team>[-\w]+)/?$", TeamRoomConsumer.as_asgi()),
    re_path(r"", NoRoomConsumer.as_asgi()),
]
