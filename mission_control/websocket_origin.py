"""The WebSocket origin check: browsers from other sites are refused, wscat is not."""

from __future__ import annotations

from channels.security.websocket import OriginValidator
from django.conf import settings


class AllowedHostsOrNoOriginValidator(OriginValidator):
    """Refuse a handshake whose Origin is not one of ALLOWED_HOSTS; allow one without Origin.

    Browsers always send Origin on a WebSocket handshake, so a page on another site is
    still refused (cross-site WebSocket hijacking). Clients that are not browsers
    (wscat, the websockets library, scripts) send none and authenticate by `?token=`;
    Channels' AllowedHostsOriginValidator refused them with 403, which broke the seed's
    `wscat -c ws://.../ws/comms/<team>?token=...`.
    """

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def allowed_hosts_or_no_origin(application) -> AllowedHostsOrNoOriginValidator:
    """Wrap an ASGI application like Channels' AllowedHostsOriginValidator does."""
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return AllowedHostsOrNoOriginValidator(application, allowed_hosts)
