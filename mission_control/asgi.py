"""ASGI entry point: HTTP to Django, WebSockets to the comms consumers."""

from __future__ import annotations

import gc
import os

from mission_control.asgi_handler import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mission_control.settings.base")
# Django must be set up before anything imports models (the routing modules do).
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

from mission_control.database_deadline import arm  # noqa: E402

# Requests, streams and sockets: no round trip to a hung PostgreSQL waits past this.
arm(settings.DATABASE_QUERY_DEADLINE_SECONDS)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

import comms.routing  # noqa: E402
from accounts.websocket import QueryTokenAuthMiddleware  # noqa: E402
from mission_control.daphne_uploads import daphne_without_form_parsing  # noqa: E402
from mission_control.database_outage import close_1013_on_database_outage  # noqa: E402
from mission_control.lifespan import lifespan  # noqa: E402
from mission_control.websocket_origin import allowed_hosts_or_no_origin  # noqa: E402
from streams.backpressure import daphne_backpressure  # noqa: E402
from streams.handoff import stream_handoff  # noqa: E402

daphne_without_form_parsing()

application = ProtocolTypeRouter(
    {
        # daphne (runserver) writes bodies without back-pressure; uvicorn passes through.
        # SSE streams are written outside Django once their headers are sent.
        "http": daphne_backpressure(stream_handoff(django_asgi_app)),
        # Ends SSE streams when the worker is told to stop (see mission_control.lifespan).
        "lifespan": lifespan,
        # A database outage in the handshake (token, session) or later closes 1013.
        "websocket": close_1013_on_database_outage(
            # Like AllowedHostsOriginValidator, but wscat (no Origin header) may connect.
            allowed_hosts_or_no_origin(
                AuthMiddlewareStack(
                    QueryTokenAuthMiddleware(URLRouter(comms.routing.websocket_urlpatterns))
                )
            )
        ),
    }
)

# Live streams keep many long-lived objects per open connection, and a full
# garbage collection that walks them all stalled every stream at once: with
# 1,000 SSE subscribers p99 latency was 220 ms (bench/telemetry.py). Freezing
# what start-up loaded and collecting the oldest generation ten times less
# often brought it to ~60 ms. Young generations are collected as usual.
gc.freeze()
gc.set_threshold(700, 10, 100)
