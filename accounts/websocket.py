"""Accept `?token=<token>` on WebSocket connections (wscat cannot send headers easily)."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware

from .services import token_user


class QueryTokenAuthMiddleware(BaseMiddleware):
    """Set scope['user'] from a `token` query parameter, overriding the session user.

    A present but bad token leaves an anonymous user, so the consumer closes 4401.
    """

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        raw = (query.get("token") or [""])[0]
        if raw:
            from django.contrib.auth.models import AnonymousUser

            user = await database_sync_to_async(token_user)(raw)
            scope = dict(scope, user=user or AnonymousUser(), token_auth=True)
        return await super().__call__(scope, receive, send)
