"""Accept `?token=<token>` on WebSocket connections (wscat cannot send headers easily)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware

from .query import query_token
from .services import token_user


class QueryTokenAuthMiddleware(BaseMiddleware):
    """Set scope['user'] from a `token` query parameter, overriding the session user.

    A present but bad (or empty, or ambiguous) token leaves an anonymous user, so the
    consumer closes 4401. Which spellings count is `accounts.query.query_token`; the
    log filter redacts all of them and more.
    """

    async def __call__(self, scope, receive, send):
        raw = query_token(scope.get("query_string", b"").decode("latin-1"))
        if raw is not None:
            # Imported here: this module is imported by asgi.py before the apps are loaded.
            from django.contrib.auth.models import AnonymousUser

            user = await database_sync_to_async(token_user)(raw) if raw else None
            scope = dict(scope, user=user or AnonymousUser(), token_auth=True)
        return await super().__call__(scope, receive, send)
