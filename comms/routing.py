"""WebSocket routes of the team rooms."""

from __future__ import annotations

websocket_urlpatterns: list = []
