"""WebSocket routes of the team rooms: `/ws/comms/<team>/`, trailing slash optional."""

from __future__ import annotations

from django.urls import re_path

from .consumers import TeamRoomConsumer

websocket_urlpatterns: list = [
    re_path(r"^ws/comms/(?P<team>[-\w]+)/?$", TeamRoomConsumer.as_asgi()),
]
